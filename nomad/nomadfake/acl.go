package nomadfake

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Variable capabilities, as in Nomad ACL policies.
const (
	CapRead    = "read"
	CapWrite   = "write"
	CapList    = "list"
	CapDestroy = "destroy"
	CapDeny    = "deny"
)

// Rule grants capabilities on variable paths matching PathGlob in
// Namespace ("*" for any), like a `namespace "…" { variables { path "…" {
// capabilities = […] } } }` block.
type Rule struct {
	Namespace    string
	PathGlob     string // "*" wildcards, as Nomad policies allow
	Capabilities []string
}

// WorkloadRules are the rules of Nomad's implicit workload policy for a
// task: read and list on its job's, group's and task's variables — and no
// write, which is why leaderd's jobspecs ship a policy.
func WorkloadRules(namespace, job, group, task string) []Rule {
	rl := []string{CapRead, CapList}
	return []Rule{
		{Namespace: namespace, PathGlob: "nomad/jobs", Capabilities: rl},
		{Namespace: namespace, PathGlob: "nomad/jobs/" + job, Capabilities: rl},
		{Namespace: namespace, PathGlob: "nomad/jobs/" + job + "/" + group, Capabilities: rl},
		{Namespace: namespace, PathGlob: "nomad/jobs/" + job + "/" + group + "/" + task, Capabilities: rl},
	}
}

// allowed decides like Nomad's ACL: rules with the same path pattern merge
// (their capabilities add up, as policies do, the implicit workload policy
// included), the most specific matching pattern (exact beats a glob, a
// longer glob beats a shorter one) says what is allowed, and "deny" denies
// everything.
func allowed(rules []Rule, ns, varPath, capability string) bool {
	var caps []string
	bestScore := -1
	for _, r := range rules {
		if r.Namespace != "*" && r.Namespace != ns {
			continue
		}
		ok, _ := path.Match(r.PathGlob, varPath)
		if !ok && strings.HasSuffix(r.PathGlob, "*") {
			// Nomad globs match across "/", path.Match doesn't.
			ok = strings.HasPrefix(varPath, strings.TrimSuffix(r.PathGlob, "*"))
		}
		if !ok {
			continue
		}
		score := len(r.PathGlob)
		if !strings.Contains(r.PathGlob, "*") {
			score += 1 << 20
		}
		switch {
		case score > bestScore:
			bestScore, caps = score, slices.Clone(r.Capabilities)
		case score == bestScore:
			caps = append(caps, r.Capabilities...)
		}
	}
	if slices.Contains(caps, CapDeny) {
		return false
	}
	return slices.Contains(caps, capability)
}

// validVariablePath is Nomad's rule for variable paths (validVariablePath in
// nomad/structs/variables.go, unchanged from 1.5.0 to 1.11.0).
var validVariablePath = regexp.MustCompile(`^[a-zA-Z0-9-_~/]{1,128}$`)

// validatePath rejects what Nomad rejects (with its texts): bad characters
// or length, and paths under "nomad/" other than nomad/jobs… and
// nomad/job-templates/<name>.
func validatePath(p string) error {
	if !validVariablePath.MatchString(p) {
		return fmt.Errorf("invalid path %q", p)
	}
	parts := strings.Split(p, "/")
	if parts[0] != "nomad" {
		return nil
	}
	switch {
	case len(parts) == 1:
		return errors.New(`"nomad" is a reserved top-level directory path, but you may write variables to "nomad/jobs", "nomad/job-templates", or below`)
	case parts[1] == "jobs":
		return nil
	case parts[1] == "job-templates" && len(parts) == 3:
		return nil
	case parts[1] == "job-templates":
		return errors.New(`"nomad/job-templates" is a reserved directory path, but you may write variables at the level below it, for example, "nomad/job-templates/template-name"`)
	default:
		return errors.New(`only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths under the top-level "nomad" directory`)
	}
}
