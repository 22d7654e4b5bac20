package child

import (
	"fmt"
	"slices"
	"strings"
)

// Withheld are the variables of leaderd's environment that neither the
// command nor the keeper gets unless they are passed on (Config.Pass):
// leaderd's own credentials for Consul and Nomad.
var Withheld = []string{"CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_AUTH", "NOMAD_TOKEN"}

// CheckPass reports a name that is not in Withheld: only those can be
// passed on, every other variable is passed anyway.
func CheckPass(names []string) error {
	for _, n := range names {
		if !slices.Contains(Withheld, n) {
			return fmt.Errorf("%q is not withheld from the command; only %s are", n, strings.Join(Withheld, ", "))
		}
	}
	return nil
}

// splitEnv splits env into what the keeper gets (kept: everything but the
// withheld variables) and the withheld variables named in pass, which only
// the command gets, through the start message.
func splitEnv(env, pass []string) (kept, passed []string) {
	kept = []string{} // never nil: exec.Cmd reads a nil Env as "inherit"
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case !slices.Contains(Withheld, name):
			kept = append(kept, kv)
		case slices.Contains(pass, name):
			passed = append(passed, kv)
		}
	}
	return kept, passed
}

// mergeEnv is base with add laid over it: a variable in add replaces the
// one of the same name in base (execve keeps duplicates, and getenv reads
// the first).
func mergeEnv(base, add []string) []string {
	names := make(map[string]bool, len(add))
	for _, kv := range add {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	out := make([]string, 0, len(base)+len(add))
	for _, kv := range base {
		if name, _, _ := strings.Cut(kv, "="); !names[name] {
			out = append(out, kv)
		}
	}
	return append(out, add...)
}
