package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// consulVersion is the Consul release leaderd pins (integration/consulbuild).
const consulVersion = "1.16.3"

// findConsul returns a consul binary for the demo: $CONSUL_BIN, consul on
// PATH, the cached build (<user cache>/leaderd/consul-v1.16.3, shared with
// the tests), else it builds the pinned Consul from integration/consulbuild
// (present in a clone), printing progress to out.
func findConsul(ctx context.Context, getenv func(string) string, out io.Writer) (string, error) {
	if p := getenv("CONSUL_BIN"); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("CONSUL_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no consul on PATH and no cache directory: set CONSUL_BIN: %w", err)
	}
	cacheDir := filepath.Join(cacheRoot, "leaderd")
	cached := filepath.Join(cacheDir, "consul-v"+consulVersion)
	if isExecutable(cached) == nil {
		return cached, nil
	}
	return buildConsul(ctx, cacheDir, cached, out)
}

// buildConsul compiles the pinned Consul into the cache, under the same
// lock file as the test harness so the two never build at once.
func buildConsul(ctx context.Context, cacheDir, dst string, out io.Writer) (string, error) {
	dir := consulBuildDir()
	if dir == "" {
		return "", errors.New("consul not found: set CONSUL_BIN, put consul on PATH, or run the demo from a leaderd clone (go run . demo) so it can build the pinned Consul")
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir, "consul.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	fmt.Fprintf(out, "consul not found (CONSUL_BIN, PATH, %s): building Consul v%s once from the Go module proxy.\n", dst, consulVersion)
	fmt.Fprintf(out, "This takes a few minutes; later runs start at once.\n")
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if isExecutable(dst) == nil { // built by someone else while we waited
		return dst, nil
	}
	tmp := dst + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-o", tmp, "github.com/hashicorp/consul")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	// go build -v names each package as it compiles it: count them so the
	// user sees it move.
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var n int
	var tail []string
	for lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			n++
			tail = append(tail[max(0, len(tail)-19):], l)
		case <-tick.C:
			fmt.Fprintf(out, "  building consul: %d packages compiled, %s\n", n, time.Since(start).Round(time.Second))
		}
	}
	if err := cmd.Wait(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build github.com/hashicorp/consul in %s: %w\n%s", dir, err, strings.Join(tail, "\n"))
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "built %s in %s\n", dst, time.Since(start).Round(time.Second))
	return dst, nil
}

// consulBuildDir finds integration/consulbuild: under the working
// directory (go run . demo in a clone), else next to this source file.
func consulBuildDir() string {
	candidates := []string{filepath.Join("integration", "consulbuild")}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "integration", "consulbuild"))
	}
	for _, d := range candidates {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			abs, _ := filepath.Abs(d)
			return abs
		}
	}
	return ""
}

func isExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("not an executable file")
	}
	return nil
}

// demoAgent is a throwaway consul dev agent on loopback.
type demoAgent struct {
	Addr    string
	node    string
	cmd     *exec.Cmd
	done    chan error
	logPath string
}

// startAgent starts `consul agent -dev` on free loopback ports with
// session_ttl_min lowered to 1s, and waits until it can serve sessions.
func startAgent(ctx context.Context, bin, logPath string) (*demoAgent, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	a := &demoAgent{Addr: "127.0.0.1:" + strconv.Itoa(ports[0]), node: "leaderd-demo", logPath: logPath}
	a.cmd = exec.Command(bin, "agent", "-dev", "-node="+a.node, "-bind=127.0.0.1", "-client=127.0.0.1",
		"-http-port="+strconv.Itoa(ports[0]), "-server-port="+strconv.Itoa(ports[1]), "-serf-lan-port="+strconv.Itoa(ports[2]),
		"-serf-wan-port=-1", "-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1", "-log-level=info",
		"-hcl", `session_ttl_min = "1s"`)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C at the terminal reaches leaderd, which
	// then stops the agent in order. Pdeathsig: it dies with us.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if a.done, err = startLocked(a.cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := a.ready(rctx)
		if err == nil {
			return a, nil
		}
		select {
		case werr := <-a.done:
			a.done <- werr
			return nil, fmt.Errorf("consul agent exited (%v); see %s", werr, logPath)
		case <-rctx.Done():
			a.Stop()
			return nil, fmt.Errorf("consul agent not ready: %w (log: %s)", err, logPath)
		case <-tick.C:
		}
	}
}

// ready: a raft leader is known and the node's serfHealth passes (else
// session create can fail with "Missing node registration").
func (a *demoAgent) ready(ctx context.Context) error {
	var leader string
	if err := getJSON(ctx, "http://"+a.Addr+"/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no raft leader yet")
	}
	var checks []struct{ CheckID, Status string }
	if err := getJSON(ctx, "http://"+a.Addr+"/v1/health/node/"+a.node, &checks); err != nil {
		return err
	}
	for _, c := range checks {
		if c.CheckID == "serfHealth" && c.Status == "passing" {
			return nil
		}
	}
	return errors.New("serfHealth not passing yet")
}

// Stop stops the agent: SIGINT, then SIGKILL after 5s.
func (a *demoAgent) Stop() {
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		a.done <- <-a.done
	}
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// freePorts asks the kernel for n free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startLocked starts cmd from a goroutine locked to its OS thread and waits
// for it there, so Pdeathsig (tied to the creating thread) lasts as long as
// the process. The returned channel yields Wait's result once (and may be
// refilled by readers that peek).
func startLocked(cmd *exec.Cmd) (chan error, error) {
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}
