package devconsul

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Version is the only Consul release leaderd runs: CONSUL_API.md and
// leaderd's tests were checked against it, and integration/consulbuild
// pins it. It is written nowhere else.
const Version = "1.16.3"

// binaryName is the cached build's file name inside the cache directory.
const binaryName = "consul-v" + Version

// Find returns the path of a consul v1.16.3 binary (see the package doc for
// the lookup order), building it into the cache when none is found.
// getenv reads CONSUL_BIN; logf gets what a user should see: a consul on
// PATH that is ignored, and the build's progress.
func Find(ctx context.Context, getenv func(string) string, logf func(format string, args ...any)) (string, error) {
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the consul build (set CONSUL_BIN): %w", err)
	}
	l := lookup{consulBin: getenv("CONSUL_BIN"), cacheDir: filepath.Join(cacheRoot, "leaderd"), logf: logf}
	path, err := l.find()
	if err == nil || !errors.Is(err, errNotCached) {
		return path, err
	}
	return l.build(ctx, ModuleDir())
}

// errNotCached means no usable binary exists yet and one should be built.
var errNotCached = errors.New("no cached consul build")

// lookup is the part of Find that tests can point at fake binaries.
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
		v, err := VersionOf(context.Background(), p)
		switch {
		case err != nil:
			l.logf("ignoring %s: %v", p, err)
		case v != Version:
			l.logf("ignoring %s: it is v%s, leaderd runs only v%s", p, v, Version)
		default:
			return p, nil
		}
	}
	if checkExecutable(l.cached()) == nil {
		return l.cached(), nil
	}
	return "", errNotCached
}

// buildProgressEvery is how often a build reports how far it got: the first
// build takes minutes and must be seen to move.
const buildProgressEvery = 10 * time.Second

// build compiles consul into the cache from the nested module in dir. It
// holds an exclusive flock while doing so because several processes (go
// test's package binaries, the demo, the benchmark) may want the binary at
// once.
func (l lookup) build(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(l.cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("create consul cache directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(l.cacheDir, "consul.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("open consul build lock: %w", err)
	}
	defer lock.Close() // closing releases the flock
	l.logf("waiting for the consul build lock %s", lock.Name())
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	// Another process may have built it while we waited for the lock.
	if checkExecutable(l.cached()) == nil {
		return l.cached(), nil
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("cannot build consul: nested module not found at %s (set CONSUL_BIN, or run from a leaderd clone): %w", dir, err)
	}
	l.logf("building consul v%s from the Go module proxy into %s (first time only; ~5-8 minutes on 2 cores)...", Version, l.cached())
	tmp := l.cached() + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-o", tmp, "github.com/hashicorp/consul")
	cmd.Dir = dir
	// The nested module stands alone; a go.work above it must not pull it in.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	start := time.Now()
	out, err := l.runCounting(cmd, start)
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build github.com/hashicorp/consul in %s: %w\n%s", dir, err, lastLines(out, 30))
	}
	if err := os.Rename(tmp, l.cached()); err != nil {
		return "", fmt.Errorf("install consul build: %w", err)
	}
	l.logf("built %s in %s", l.cached(), time.Since(start).Round(time.Second))
	return l.cached(), nil
}

// runCounting runs `go build -v`, which names each package as it compiles
// it, reporting the count every buildProgressEvery. It returns the output.
func (l lookup) runCounting(cmd *exec.Cmd, start time.Time) ([]byte, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	var out bytes.Buffer
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
			lines <- struct{}{}
		}
	}()
	tick := time.NewTicker(buildProgressEvery)
	defer tick.Stop()
	n := 0
	for done := false; !done; {
		select {
		case _, ok := <-lines:
			done = !ok
			if ok {
				n++
			}
		case <-tick.C:
			l.logf("building consul: %d packages compiled, %s", n, time.Since(start).Round(time.Second))
		}
	}
	return out.Bytes(), cmd.Wait()
}

// ModuleDir is integration/consulbuild: found next to this source file
// (a clone, `go test`, `go run`), else under the working directory (a
// leaderd installed with go install and run from a clone: the module
// proxy's copy has no nested module). When neither has it, the first is
// returned, so an error names it.
func ModuleDir() string {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "consulbuild"))
	}
	candidates = append(candidates, filepath.Join("integration", "consulbuild"))
	for _, d := range candidates {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			abs, err := filepath.Abs(d)
			if err != nil {
				return d
			}
			return abs
		}
	}
	return candidates[0]
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

// VersionOf runs `consul version` and returns the version from its first
// line, "Consul v1.16.3": "1.16.3".
func VersionOf(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", path, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	v, ok := strings.CutPrefix(strings.TrimSpace(first), "Consul v")
	if !ok {
		return "", fmt.Errorf("%s version printed %q, want \"Consul v…\"", path, first)
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
