package devconsul

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before returning, so another process may take it first:
// whoever binds it must be ready to retry (Start does).
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// agentPorts are the listeners an agent needs; the others are disabled.
type agentPorts struct {
	http   int // HTTP API
	server int // server RPC (raft)
	serf   int // serf LAN, TCP and UDP
}

// pickPorts chooses distinct free ports for one agent. Every listener stays
// open until all are chosen so the kernel can't hand out one twice; the serf
// port must be free for UDP as well, gossip uses both.
func pickPorts() (agentPorts, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	take := func(udp bool) (int, error) {
		for range 20 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
			}
			held = append(held, ln)
			port := ln.Addr().(*net.TCPAddr).Port
			if !udp {
				return port, nil
			}
			pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue // taken for UDP only; try another
			}
			held = append(held, pc)
			return port, nil
		}
		return 0, errors.New("find a port free for both TCP and UDP on 127.0.0.1: gave up after 20 tries")
	}
	var p agentPorts
	var err error
	if p.http, err = take(false); err != nil {
		return p, err
	}
	if p.server, err = take(false); err != nil {
		return p, err
	}
	p.serf, err = take(true)
	return p, err
}
