package consulhttp

import (
	"fmt"
	"strings"
)

// SettingError is a bad connection setting. It names the setting by the
// environment variables that set it (Env*), as the consul CLI's users know
// them; a caller that took the setting from somewhere else (leaderd's
// -ca-file flag) names it its own way with Named instead of rewriting the
// text. Vars lists each variable the message names, in order.
type SettingError struct {
	Vars []string
	Err  error // the cause, if any (an *fs.PathError, ...)

	parts []string // the message: text, var, text, var, ..., text
}

func (e *SettingError) Error() string { return e.Named(func(v string) string { return v }) }

func (e *SettingError) Unwrap() error { return e.Err }

// Named is the message with name(v) in place of each variable v.
func (e *SettingError) Named(name func(env string) string) string {
	var b strings.Builder
	for i, p := range e.parts {
		if i%2 == 1 {
			p = name(p)
		}
		b.WriteString(p)
	}
	return b.String()
}

// envVar marks an argument of settingErrorf as a variable's name.
type envVar string

// settingErrorf formats a SettingError: the envVar arguments are the
// variables it names, the other arguments format as in fmt. A %w verb
// names the cause.
func settingErrorf(format string, a ...any) *SettingError {
	e := &SettingError{}
	args := make([]any, len(a))
	for i, arg := range a {
		switch v := arg.(type) {
		case envVar:
			e.Vars = append(e.Vars, string(v))
			args[i] = varMark
		case error:
			if e.Err == nil {
				e.Err = v
			}
			args[i] = v
		default:
			args[i] = v
		}
	}
	msg := fmt.Sprintf(strings.ReplaceAll(format, "%w", "%v"), args...)
	for i, p := range strings.Split(msg, varMark) {
		if i > 0 && i <= len(e.Vars) {
			e.parts = append(e.parts, e.Vars[i-1])
		}
		e.parts = append(e.parts, p)
	}
	return e
}

// varMark stands for a variable while the message is formatted; no value
// leaderd formats holds a NUL (paths and environment values can't).
const varMark = "\x00"
