package consulhttp

import (
	"errors"
	"flag"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSettingErrorNamed: a bad setting names its variables, and a caller
// can name them its own way without touching the rest of the message.
func TestSettingErrorNamed(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := NewClient(Config{TLS: TLSConfig{CAFile: missing}})
	var se *SettingError
	if !errors.As(err, &se) {
		t.Fatalf("NewClient with a missing CA file: %v, want a *SettingError", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v: the cause is lost", err)
	}
	if diff := cmp.Diff([]string{EnvCACert}, se.Vars); diff != "" {
		t.Errorf("Vars (-want +got):\n%s", diff)
	}
	want := "CA file (CONSUL_CACERT): open " + missing + ": no such file or directory"
	if got := se.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var f Flags
	f.Register(flag.NewFlagSet("x", flag.ContinueOnError))
	f.caFile = missing
	want = "CA file (-ca-file): open " + missing + ": no such file or directory"
	if got := se.Named(f.Name); got != want {
		t.Errorf("Named(flag) = %q, want %q", got, want)
	}

	se = settingErrorf("%s and %s must be set together (%q)", envVar(EnvClientCert), envVar(EnvClientKey), "x%s")
	if got, want := se.Named(func(v string) string { return "<" + v + ">" }), `<CONSUL_CLIENT_CERT> and <CONSUL_CLIENT_KEY> must be set together ("x%s")`; got != want {
		t.Errorf("two variables: %q, want %q", got, want)
	}
}
