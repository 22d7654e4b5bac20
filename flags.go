package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// envPrefix names the environment twin of every leaderd flag: -lock-delay
// is LEADERD_LOCK_DELAY. Consul connection flags have the consul CLI's
// CONSUL_* variables as twins instead, read by consulhttp.ConfigFromEnv.
const envPrefix = "LEADERD_"

// envName is the environment twin of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// usageError is bad input: the command exits 2 and prints it as one line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// durationValue is a flag.Value that keeps time.ParseDuration's error, so
// "-ttl abc" says why instead of the flag package's bare "parse error".
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

// Get makes it a flag.Getter of a time.Duration: help shows "duration".
func (v durationValue) Get() any { return *v.d }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

// listValue is a comma-separated list; each Set replaces the list, so a
// flag given on the command line replaces its environment twin.
type listValue struct{ l *[]string }

func (v listValue) String() string {
	if v.l == nil {
		return ""
	}
	return strings.Join(*v.l, ",")
}

func (v listValue) Set(s string) error {
	*v.l = nil
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*v.l = append(*v.l, item)
		}
	}
	return nil
}

// flagSet is a flag.FlagSet that knows which flags read an environment
// twin and where each setting finally came from, so errors can name the
// flag or the variable the user actually wrote.
type flagSet struct {
	*flag.FlagSet
	noEnv  map[string]bool   // flags without a LEADERD_ twin
	consul map[string]bool   // Consul connection flags (CONSUL_* twins)
	source map[string]string // flag name → "-ttl" or "LEADERD_TTL"
}

func newFlagSet(name string) *flagSet {
	fs := &flagSet{
		FlagSet: flag.NewFlagSet(name, flag.ContinueOnError),
		noEnv:   map[string]bool{},
		consul:  map[string]bool{},
		source:  map[string]string{},
	}
	// The flag package would print usage on every error; we print one
	// line ourselves and the full help only for -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args, then fills every flag not given on the command line
// from its environment twin. Errors are usageErrors naming the setting.
func (fs *flagSet) parse(args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	fs.Visit(func(f *flag.Flag) { fs.source[f.Name] = "-" + f.Name })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if fs.noEnv[f.Name] || fs.source[f.Name] != "" {
			return
		}
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				err = errors.New("want true or false")
			}
			errs = append(errs, usagef("invalid value %q for %s: %v", v, name, err))
			return
		}
		fs.source[f.Name] = name
	})
	return errors.Join(errs...)
}

// name is how to call a setting in an error: the flag, or its twin when
// the value came from the environment.
func (fs *flagSet) name(flagName string) string {
	if s := fs.source[flagName]; s != "" {
		return s
	}
	return "-" + flagName
}

// registerConsulFlags declares consulhttp's connection flags on fs. They
// have no LEADERD_ twins (the CONSUL_* variables are) and their own
// section in the help.
func registerConsulFlags(fs *flagSet) *consulhttp.Flags {
	cf := new(consulhttp.Flags)
	for _, name := range cf.Register(fs.FlagSet) {
		fs.noEnv[name], fs.consul[name] = true, true
	}
	return cf
}

// consulConfig reads the CONSUL_* environment, lays the flags over it and
// checks the result by building a client once, so a bad file or value is
// bad input now. A bad setting is named as the user gave it: the flag, or
// the variable.
func consulConfig(cf *consulhttp.Flags, getenv func(string) string) (consulhttp.Config, error) {
	env, err := consulhttp.ConfigFromEnv(getenv)
	if err != nil {
		return consulhttp.Config{}, usagef("%s", oneLine(err))
	}
	if err := cf.Check(); err != nil {
		return consulhttp.Config{}, usagef("%v", err)
	}
	cfg := env.Merge(cf.Override())
	if _, err := consulhttp.NewClient(cfg); err != nil {
		var lines []string
		for _, e := range joined(err) {
			var se *consulhttp.SettingError
			if errors.As(e, &se) && e == error(se) {
				lines = append(lines, se.Named(cf.Name))
				continue
			}
			lines = append(lines, oneLine(e))
		}
		return consulhttp.Config{}, usagef("consul settings: %s", strings.Join(lines, "; "))
	}
	return cfg, nil
}

// joined is err's leaves when it is an errors.Join tree, else err alone.
func joined(err error) []error {
	u, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var leaves []error
	for _, e := range u.Unwrap() {
		leaves = append(leaves, joined(e)...)
	}
	return leaves
}

// oneLine joins the lines of a (possibly errors.Join-ed) error with "; "
// so bad input is reported as one line.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// printUsage writes a command's help: synopsis, flags with their
// environment twins, Consul connection flags, then examples.
func printUsage(w io.Writer, fs *flagSet, synopsis, examples string) {
	fmt.Fprintf(w, "%s\n\nFlags (a flag wins over its [LEADERD_*] twin):\n", strings.TrimSpace(synopsis))
	section := func(consul bool) {
		fs.VisitAll(func(f *flag.Flag) {
			if fs.consul[f.Name] != consul {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			switch v := f.Value.(type) {
			case listValue:
				name = "list"
			case flag.Getter:
				if _, ok := v.Get().(time.Duration); ok {
					name = "duration"
				}
			}
			line := "  -" + f.Name
			if name != "" {
				line += " " + name
			}
			fmt.Fprintf(w, "%s\n    \t%s", line, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			if !fs.noEnv[f.Name] {
				fmt.Fprintf(w, " [%s]", envName(f.Name))
			}
			fmt.Fprintln(w)
		})
	}
	section(false)
	fmt.Fprintf(w, "\nConsul connection (a flag wins over its CONSUL_* variable):\n")
	section(true)
	if examples != "" {
		fmt.Fprintf(w, "\nExamples:\n%s\n", strings.Trim(examples, "\n"))
	}
}
