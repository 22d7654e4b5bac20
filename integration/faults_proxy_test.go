package integration

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyMode is what a tcpProxy does with a candidate's traffic to Consul.
type proxyMode int

const (
	proxyPass      proxyMode = iota // forward both ways
	proxyDrop                       // close every connection, accept-and-close new ones
	proxyBlackhole                  // accept and hold connections, forward nothing either way
)

func (m proxyMode) String() string {
	return [...]string{"pass", "drop", "blackhole"}[m]
}

// tcpProxy sits between one candidate and its Consul agent on loopback, so
// a test can cut that candidate off without touching anyone else.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]struct{} // both ends of every open connection
}

// startTCPProxy listens on a free loopback port and forwards to target.
func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
	})
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// set switches the mode. Entering drop closes every connection; leaving
// blackhole closes them too: bytes were lost, the streams are garbage.
func (p *tcpProxy) set(m proxyMode) {
	p.mu.Lock()
	old := p.mode
	p.mode = m
	p.mu.Unlock()
	if m == proxyDrop || old == proxyBlackhole {
		p.closeAll()
	}
}

func (p *tcpProxy) current() proxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (p *tcpProxy) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (p *tcpProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	p.mu.Unlock()
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *tcpProxy) handle(c net.Conn) {
	switch p.current() {
	case proxyDrop:
		c.Close()
		return
	case proxyBlackhole:
		p.track(c)
		io.Copy(io.Discard, c) // hold it until the client gives up or we heal
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.track(c, up)
	go p.pipe(up, c)
	p.pipe(c, up)
}

// pipe copies src to dst while the mode is pass; in blackhole mode it reads
// and drops. It closes both when src ends.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.current() == proxyPass {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// httpFault is an HTTP answer a faultProxy gives instead of forwarding.
type httpFault struct {
	code int
	body string
}

// consulErrors are the errors a sick Consul answers with: a 500, a rate
// limit, and the 500 a server without a raft leader gives.
var consulErrors = []httpFault{
	{http.StatusInternalServerError, "rpc error making call: EOF"},
	{http.StatusTooManyRequests, "rate limit exceeded"},
	{http.StatusInternalServerError, "No cluster leader"},
}

// faultProxy is an HTTP reverse proxy in front of a Consul agent that can
// answer errors instead, for some requests or all, and counts requests.
type faultProxy struct {
	srv      *http.Server
	addr     string
	rp       *httputil.ReverseProxy
	requests atomic.Int64
	faults   atomic.Int64
	mu       sync.Mutex
	fail     func(*http.Request) bool // nil: forward everything
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{addr: ln.Addr().String(), rp: httputil.NewSingleHostReverseProxy(u)}
	// Canceled blocking queries are routine here: answer 502 quietly
	// instead of logging each.
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln) // returns when closed at cleanup
	t.Cleanup(func() { p.srv.Close() })
	return p
}

// failWhen makes the proxy answer a Consul error to the requests f
// selects (nil: none).
func (p *faultProxy) failWhen(f func(*http.Request) bool) {
	p.mu.Lock()
	p.fail = f
	p.mu.Unlock()
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	fail := p.fail
	p.mu.Unlock()
	if fail != nil && fail(r) {
		f := consulErrors[int(p.faults.Add(1))%len(consulErrors)]
		http.Error(w, f.body, f.code)
		return
	}
	p.rp.ServeHTTP(w, r)
}

func isRead(r *http.Request) bool   { return r.Method == http.MethodGet }
func everything(*http.Request) bool { return true }
