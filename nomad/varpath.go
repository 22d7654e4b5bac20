package nomad

import (
	"errors"
	"fmt"
	"strings"
)

// MaxVariablePath is the longest path Nomad accepts for a variable.
const MaxVariablePath = 128

// variablePathRule is Nomad's rule for variable paths, in words and as the
// regular expression Nomad applies (validVariablePath in
// nomad/structs/variables.go, unchanged from 1.5.0 to 1.11.0).
const variablePathRule = "Nomad Variable paths are 1 to 128 letters, digits, '-', '_', '~' or '/' (^[a-zA-Z0-9-_~/]{1,128}$)"

// ValidateVariablePath reports whether Nomad accepts p as a variable path:
// the characters and length of variablePathRule, and below "nomad/" only
// nomad/jobs… and nomad/job-templates/<name> (Nomad's
// structs.ValidatePath). Nomad itself says no only when the variable is
// written (400 since 1.7.0, 500 before), after reads of the same path
// answered 404, so leaderd checks at start.
func ValidateVariablePath(p string) error {
	if p == "" {
		return errors.New("variable path is empty; " + variablePathRule)
	}
	if r, ok := firstBadPathRune(p); ok {
		return fmt.Errorf("variable path %q has %q; %s", p, r, variablePathRule)
	}
	if len(p) > MaxVariablePath { // ASCII by now: bytes are characters
		return fmt.Errorf("variable path %q is %d characters long; %s", p, len(p), variablePathRule)
	}
	parts := strings.Split(p, "/")
	switch {
	case parts[0] != "nomad":
		return nil
	case len(parts) > 1 && parts[1] == "jobs",
		len(parts) == 3 && parts[1] == "job-templates":
		return nil
	default:
		return fmt.Errorf(`variable path %q: below "nomad/" Nomad allows only "nomad/jobs" and below, and "nomad/job-templates/<name>"`, p)
	}
}

// firstBadPathRune returns the first character of s that Nomad Variable
// paths don't allow.
func firstBadPathRune(s string) (rune, bool) {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '-', r == '_', r == '~', r == '/':
		default:
			return r, true
		}
	}
	return 0, false
}

// identityPathError explains why the default record path built from a
// task's job and group is no valid variable path, naming the culprit. No
// other path would do: Nomad's implicit workload policy lets the group's
// tasks read nomad/jobs/<job>/<group> only, and the jobspec's template
// reads it there, so leaderd refuses to start rather than map the name.
func identityPathError(id Identity) error {
	path := id.VariablePath()
	if err := ValidateVariablePath(path); err == nil {
		return nil
	}
	const fix = "rename the job or group, or publish leader status with consul-tags instead"
	var bad []string
	for _, f := range [][2]string{{"job", id.VariableJob()}, {"group", id.Group}} {
		if f[1] == "" {
			bad = append(bad, fmt.Sprintf("%s name is empty", f[0]))
		} else if r, ok := firstBadPathRune(f[1]); ok {
			bad = append(bad, fmt.Sprintf("%s %q has %q", f[0], f[1], r))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("leader record path %q: %s; %s; the record must live at nomad/jobs/<job>/<group>, where the group's tasks may read it: %s",
			path, strings.Join(bad, ", "), variablePathRule, fix)
	}
	return fmt.Errorf("leader record path %q is %d characters long (job %q: %d, group %q: %d); %s: %s",
		path, len(path), id.VariableJob(), len(id.VariableJob()), id.Group, len(id.Group), variablePathRule, fix)
}
