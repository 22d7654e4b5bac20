package main

import (
	"log/slog"
	"os"
	"strings"

	"github.com/leaderd/leaderd/elect/child"
)

// newSupervisor starts the keeper of `leaderd run`'s command (package
// elect/child): it runs the command while this instance leads and
// enforces the lease even when leaderd can't.
func newSupervisor(cfg runConfig, log *slog.Logger) (*child.Supervisor, error) {
	var stdin *os.File // nil: /dev/null
	if cfg.PassStdin {
		stdin = os.Stdin
	}
	return child.New(child.Config{
		Stdin:       stdin,
		Command:     cfg.Command,
		ID:          cfg.ID,
		Env:         os.Environ(),
		Pass:        cfg.PassEnv,
		KillTimeout: cfg.KillTimeout,
		LogFormat:   cfg.LogFormat,
		LogLevel:    cfg.LogLevel,
		Logger:      log.With("component", "child"),
	})
}

var passEnvUsage = "`names` of leaderd's secrets the child gets anyway, comma list of: " +
	strings.Join(child.Withheld, ", ") + " (by default it gets none of them)"

// passEnvValue is -pass-env: a list of child.Withheld names only, so a
// typo is bad input rather than a secret silently withheld.
type passEnvValue struct{ l *[]string }

func (v passEnvValue) String() string { return listValue(v).String() }

func (v passEnvValue) Set(s string) error {
	var names []string
	_ = listValue{&names}.Set(s)
	if err := child.CheckPass(names); err != nil {
		return err
	}
	*v.l = names
	return nil
}
