// Package demo is `leaderd demo`: a live election, graceful handover and
// failover among three candidates in one process, on a throwaway Consul
// v1.16.3 dev agent started through package devconsul, with the measured
// times printed as they happen. It lives under integration/ because it
// needs the launcher (and, on a fresh machine, the nested module that
// builds the pinned Consul), which the leaderd command itself does not.
package demo
