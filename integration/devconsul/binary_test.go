package devconsul

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeScript writes an executable shell script printing version for
// `consul version`.
func writeScript(t *testing.T, path, version string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho 'Consul v" + version + "'\necho 'Revision fake'\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// Not parallel: each case sets PATH.
func TestLookupOrder(t *testing.T) {
	type setup struct {
		consulBin  string // "missing", "noexec", "exec" or ""
		pathConsul string // version of consul on PATH, "" for none
		cached     bool   // an executable cached build exists
	}
	tests := []struct {
		name     string
		setup    setup
		want     string // "consulbin", "path" or "cache"
		wantErr  string // substring of the error
		notCache bool   // want errNotCached
		wantLog  string // substring of a logged line
	}{
		{name: "CONSUL_BIN wins over everything", setup: setup{consulBin: "exec", pathConsul: Version, cached: true}, want: "consulbin"},
		{name: "CONSUL_BIN missing fails naming it", setup: setup{consulBin: "missing", cached: true}, wantErr: "CONSUL_BIN="},
		{name: "CONSUL_BIN not executable fails", setup: setup{consulBin: "noexec", cached: true}, wantErr: "not executable"},
		{name: "PATH consul of the right version", setup: setup{pathConsul: Version, cached: true}, want: "path"},
		{name: "PATH consul of another version is ignored", setup: setup{pathConsul: "1.15.0", cached: true}, want: "cache", wantLog: "it is v1.15.0"},
		{name: "nothing usable means build", setup: setup{pathConsul: "1.17.0"}, notCache: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pathDir := filepath.Join(dir, "bin")
			os.MkdirAll(pathDir, 0o755)
			t.Setenv("PATH", pathDir)
			if tt.setup.pathConsul != "" {
				writeScript(t, filepath.Join(pathDir, "consul"), tt.setup.pathConsul)
			}
			l := lookup{cacheDir: filepath.Join(dir, "cache")}
			if tt.setup.cached {
				writeScript(t, l.cached(), Version)
			}
			consulBin := filepath.Join(dir, "my-consul")
			switch tt.setup.consulBin {
			case "missing":
				l.consulBin = consulBin
			case "noexec":
				l.consulBin = consulBin
				os.WriteFile(consulBin, nil, 0o644)
			case "exec":
				l.consulBin = consulBin
				writeScript(t, consulBin, Version)
			}
			var logged []string
			l.logf = func(format string, args ...any) {
				logged = append(logged, fmt.Sprintf(format, args...))
			}

			got, err := l.find()

			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), consulBin) {
					t.Fatalf("find() error = %v, want one containing %q and %s", err, tt.wantErr, consulBin)
				}
				return
			case tt.notCache:
				if !errors.Is(err, errNotCached) {
					t.Fatalf("find() = %q, %v; want errNotCached", got, err)
				}
				return
			case err != nil:
				t.Fatalf("find() error: %v", err)
			}
			want := map[string]string{
				"consulbin": consulBin,
				"path":      filepath.Join(pathDir, "consul"),
				"cache":     l.cached(),
			}[tt.want]
			if got != want {
				t.Errorf("find() = %s, want %s", got, want)
			}
			if tt.wantLog != "" && !strings.Contains(strings.Join(logged, "\n"), tt.wantLog) {
				t.Errorf("logged %q, want a line containing %q", logged, tt.wantLog)
			}
		})
	}
}

// A process that waited for the build lock must use what the lock holder
// built rather than build again. The module dir doesn't exist, so any
// attempt to build fails the test.
func TestBuildRechecksCacheAfterLock(t *testing.T) {
	t.Parallel()
	l := lookup{cacheDir: t.TempDir()}
	lock, err := os.OpenFile(filepath.Join(l.cacheDir, "consul.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	l.logf = func(format string, args ...any) {
		if strings.HasPrefix(format, "waiting for the consul build lock") {
			close(waiting)
		}
	}
	type result struct {
		path string
		err  error
	}
	done := make(chan result)
	go func() {
		p, err := l.build(t.Context(), filepath.Join(t.TempDir(), "no-such-module"))
		done <- result{p, err}
	}()
	<-waiting
	// We are the "other process": finish our build, then let go.
	writeScript(t, l.cached(), Version)
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	r := <-done
	if r.err != nil || r.path != l.cached() {
		t.Fatalf("build() = %q, %v; want %s, nil", r.path, r.err, l.cached())
	}
}

func TestBuildWithoutModuleNamesIt(t *testing.T) {
	t.Parallel()
	l := lookup{cacheDir: t.TempDir(), logf: t.Logf}
	missing := filepath.Join(t.TempDir(), "consulbuild")
	_, err := l.build(t.Context(), missing)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("build() error = %v, want one naming %s", err, missing)
	}
}

func TestModuleDirHoldsTheConsulPin(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(ModuleDir(), "go.mod"))
	if err != nil {
		t.Fatalf("nested module: %v", err)
	}
	for _, want := range []string{"tool github.com/hashicorp/consul", "github.com/hashicorp/consul v" + Version} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s/go.mod lacks %q", ModuleDir(), want)
		}
	}
}
