# Least-privilege Consul ACL policy for `leaderd run`, tested against
# Consul 1.16.3 by integration/security_acl_test.go (TestACLLeastPrivilege):
# leaderd with its default flags works with exactly these rules, and without
# any one of them it exits 1 naming the permission Consul reported.
#
# Replace SERVICE with the -service name (if you set -key, use that key in
# the key_prefix rule instead of services/SERVICE/leader) and NODE with the
# node name of the Consul agent leaderd talks to (CONSUL_HTTP_ADDR, usually
# the local agent). For a fleet whose node names vary, `session_prefix ""`
# and `node_prefix ""` grant the same on every node.
# `leaderd leader` needs only `key "services/SERVICE/leader" { policy = "read" }`,
# `leaderd leader -candidates` the same as a key_prefix rule, and
# `leaderd transfer` the key_prefix rule below.

# The election key and what lives under it: the candidate registry
# (services/SERVICE/leader/candidates/<id>) and transfer requests
# (services/SERVICE/leader/transfer). Watch them (read); acquire, release,
# register and hand over (write). With a `key` rule for the election key
# only, leaderd still elects but logs a warning and runs without a registry
# entry: no transfers to it or by it, no rank.
key_prefix "services/SERVICE/leader" {
  policy = "write"
}

# Sessions live on the agent's node: create, renew, destroy.
session "NODE" {
  policy = "write"
}

# The session's TTL check (fast crash detection, on by default: -check-ttl
# 3s): register, pass and deregister it on the node. Not needed with
# -check-ttl 0 (a TTL-only session: a crashed leader is then replaced after
# up to 2×ttl + lock-delay instead of check-ttl + lock-delay).
node "NODE" {
  policy = "write"
}

# Only with -publish consul-tags: register this instance with its
# leader/follower tag, and deregister it on exit.
service "SERVICE" {
  policy = "write"
}
