package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SkipIfShort skips t under `go test -short`, the fast unit-test loop: every
// test that needs a real Consul agent comes through Binary, so this is the
// one gate. The README's full test command runs them all.
func SkipIfShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("consultest: -short runs no Consul agent (the full test command does)")
	}
}

// consulVersion is the only Consul release the harness runs: CONSUL_API.md
// and leaderd's tests were checked against it.
const consulVersion = "1.16.3"

// binaryName is the cached build's file name inside the cache directory.
const binaryName = "consul-v" + consulVersion

// resolved caches Binary's answer, error included, for the whole test
// process: a failed 8-minute build must not be retried by every test.
var resolved struct {
	mu   sync.Mutex
	done bool
	path string
	err  error
}

// Binary returns the path of a consul v1.16.3 binary, building and caching
// it on first use (see the package doc for the lookup order). It fails the
// test when none can be found or built.
func Binary(t testing.TB) string {
	t.Helper()
	SkipIfShort(t)
	resolved.mu.Lock()
	defer resolved.mu.Unlock()
	if !resolved.done {
		resolved.path, resolved.err = findOrBuild(t)
		resolved.done = true
	}
	if resolved.err != nil {
		t.Fatalf("consultest: %v", resolved.err)
	}
	return resolved.path
}

func findOrBuild(t testing.TB) (string, error) {
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the consul build (set CONSUL_BIN): %w", err)
	}
	cacheDir := filepath.Join(cacheRoot, "leaderd")
	l := lookup{consulBin: os.Getenv("CONSUL_BIN"), cacheDir: cacheDir, logf: t.Logf}
	path, err := l.find()
	if err == nil || !errors.Is(err, errNotCached) {
		return path, err
	}
	return l.build(moduleDir())
}

// errNotCached means no usable binary exists yet and one should be built.
var errNotCached = errors.New("no cached consul build")

// lookup is the part of Binary that tests can point at fake binaries.
type lookup struct {
	consulBin string // value of $CONSUL_BIN
	cacheDir  string // <os.UserCacheDir>/leaderd
	logf      func(format string, args ...any)
}

func (l lookup) cached() string { return filepath.Join(l.cacheDir, binaryName) }

// find applies the lookup order short of building.
func (l lookup) find() (string, error) {
	if l.consulBin != "" {
		if err := checkExecutable(l.consulBin); err != nil {
			return "", fmt.Errorf("CONSUL_BIN=%s: %w", l.consulBin, err)
		}
		return l.consulBin, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		v, err := versionOf(p)
		switch {
		case err != nil:
			l.logf("consultest: ignoring %s: %v", p, err)
		case v != consulVersion:
			l.logf("consultest: ignoring %s: it is v%s, tests need v%s", p, v, consulVersion)
		default:
			return p, nil
		}
	}
	if checkExecutable(l.cached()) == nil {
		return l.cached(), nil
	}
	return "", errNotCached
}

// build compiles consul into the cache from the nested module in dir. It
// holds an exclusive flock while doing so because go test runs several
// package binaries at once and each may want the binary.
func (l lookup) build(dir string) (string, error) {
	if err := os.MkdirAll(l.cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("create consul cache directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(l.cacheDir, "consul.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("open consul build lock: %w", err)
	}
	defer lock.Close() // closing releases the flock
	l.logf("consultest: waiting for the consul build lock %s", lock.Name())
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	// Another process may have built it while we waited for the lock.
	if checkExecutable(l.cached()) == nil {
		return l.cached(), nil
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("cannot build consul: nested module not found at %s (set CONSUL_BIN): %w", dir, err)
	}
	l.logf("consultest: building consul v%s from the Go module proxy (first run takes ~8 minutes)...", consulVersion)
	tmp := l.cached() + ".tmp"
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/hashicorp/consul")
	cmd.Dir = dir
	// The nested module stands alone; a go.work above it must not pull it in.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build github.com/hashicorp/consul in %s: %w\n%s", dir, err, lastLines(out, 30))
	}
	if err := os.Rename(tmp, l.cached()); err != nil {
		return "", fmt.Errorf("install consul build: %w", err)
	}
	l.logf("consultest: built %s in %s", l.cached(), time.Since(start).Round(time.Second))
	return l.cached(), nil
}

// moduleDir is integration/consulbuild, found next to this source file.
// Under -trimpath the path is module-relative and the build reports it.
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "integration/consulbuild"
	}
	return filepath.Join(filepath.Dir(file), "..", "consulbuild")
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("not executable (mode %v)", fi.Mode().Perm())
	}
	return nil
}

// versionOf runs `consul version` and returns the version from its first
// line, "Consul v1.16.3".
func versionOf(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	if err != nil {
		return "", fmt.Errorf("consul version: %w", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	v, ok := strings.CutPrefix(strings.TrimSpace(first), "Consul v")
	if !ok {
		return "", fmt.Errorf("consul version printed %q, want \"Consul v…\"", first)
	}
	return v, nil
}

// lastLines returns at most n final lines of b.
func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
