package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// consulVersion is the release the benchmark runs, the one CONSUL_API.md
// and the integration tests were checked against.
const consulVersion = "1.16.3"

// findConsul returns a consul v1.16.3 binary in consultest's lookup order:
// $CONSUL_BIN; consul on $PATH if it is v1.16.3; the cached build in
// <os.UserCacheDir>/leaderd; else it builds that file from the nested
// module integration/consulbuild. consultest.Binary does the same but takes
// a testing.TB, which a program can't provide.
func findConsul(ctx context.Context, moduleRoot string, logf func(string, ...any)) (string, error) {
	if p := os.Getenv("CONSUL_BIN"); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("CONSUL_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		if v, err := versionOf(ctx, p); err == nil && v == consulVersion {
			return p, nil
		}
		logf("ignoring %s: not consul v%s", p, consulVersion)
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the consul build (set CONSUL_BIN): %w", err)
	}
	dir := filepath.Join(cacheRoot, "leaderd")
	cached := filepath.Join(dir, "consul-v"+consulVersion)
	if checkExecutable(cached) == nil {
		return cached, nil
	}
	return buildConsul(ctx, filepath.Join(moduleRoot, "integration", "consulbuild"), dir, cached, logf)
}

// buildConsul builds consul into cached under the same flock consultest
// takes, so a test run building it at the same time isn't duplicated.
func buildConsul(ctx context.Context, modDir, dir, cached string, logf func(string, ...any)) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create consul cache directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "consul.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("open consul build lock: %w", err)
	}
	defer lock.Close() // releases the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if checkExecutable(cached) == nil { // built while we waited
		return cached, nil
	}
	logf("building consul v%s from the Go module proxy into %s (first time only; ~5-8 minutes on 2 cores)", consulVersion, cached)
	start := time.Now()
	tmp := cached + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, "github.com/hashicorp/consul")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build github.com/hashicorp/consul in %s: %w\n%s", modDir, err, out)
	}
	if err := os.Rename(tmp, cached); err != nil {
		return "", fmt.Errorf("install consul build: %w", err)
	}
	logf("built consul in %s", time.Since(start).Round(time.Second))
	return cached, nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// versionOf returns "1.16.3" from `consul version`'s "Consul v1.16.3".
func versionOf(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", bin, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	v, ok := strings.CutPrefix(strings.TrimSpace(first), "Consul v")
	if !ok {
		return "", fmt.Errorf("%s version printed %q", bin, first)
	}
	return v, nil
}

// agentHCL raises the per-client connection limit: every candidate reaches
// the agent through the benchmark's proxy, so all connections come from
// 127.0.0.1, and 500 candidates each hold a blocking query (default 200).
const agentHCL = `limits { http_max_conns_per_client = 8192 }`

// agent is the dev agent every measurement shares.
type agent struct {
	Addr string // "127.0.0.1:port"
	node string
	cmd  *exec.Cmd
	done chan struct{}
}

// startAgent starts `consul agent -dev` with CONSUL_API.md's loopback flags
// on free ports and waits until it can serve sessions. Its output goes to
// logPath.
func startAgent(ctx context.Context, bin, logPath string) (*agent, error) {
	var lastErr error
	for try := 0; try < 3; try++ { // a lost port race is retried on new ports
		a, err := launchAgent(ctx, bin, logPath)
		if err == nil {
			return a, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func launchAgent(ctx context.Context, bin, logPath string) (*agent, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	a := &agent{Addr: "127.0.0.1:" + strconv.Itoa(ports[0]), node: "leaderd-bench"}
	a.cmd = exec.Command(bin, "agent", "-dev", "-node="+a.node, "-bind=127.0.0.1", "-client=127.0.0.1",
		"-http-port="+strconv.Itoa(ports[0]), "-server-port="+strconv.Itoa(ports[1]),
		"-serf-lan-port="+strconv.Itoa(ports[2]), "-serf-wan-port=-1", "-dns-port=-1",
		"-grpc-port=-1", "-grpc-tls-port=-1", "-log-level=warn", "-hcl", agentHCL)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	done, err := startLocked(a.cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	a.done = done
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
		case <-a.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("consul agent exited before it was ready: %s", lastLines(string(b), 5))
		case <-rctx.Done():
			a.stop()
			return nil, fmt.Errorf("consul agent not ready after 60s: %w (log %s)", err, logPath)
		case <-tick.C:
		}
	}
}

// ready: a raft leader is known and the node's serfHealth passes; before
// that, session create can fail with "Missing node registration".
func (a *agent) ready(ctx context.Context) error {
	var leader string
	if err := getJSON(ctx, "http://"+a.Addr+"/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no raft leader yet")
	}
	var checks []struct{ CheckID, Status string }
	if err := getJSON(ctx, "http://"+a.Addr+"/v1/health/node/"+url.PathEscape(a.node), &checks); err != nil {
		return err
	}
	for _, c := range checks {
		if c.CheckID == "serfHealth" && c.Status == "passing" {
			return nil
		}
	}
	return errors.New("serfHealth not passing yet")
}

// stop sends SIGINT and waits, killing after 10s.
func (a *agent) stop() {
	a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago; all listeners stay open until every port is chosen.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
