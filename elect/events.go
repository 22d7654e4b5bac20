package elect

import "sync"

// eventQueue delivers events in order on a channel without ever blocking the
// election loop: pushes append to an unbounded slice that a pump goroutine
// drains. Until somebody asks for the channel, events are not kept at all.
type eventQueue struct {
	mu     sync.Mutex
	q      []Event
	out    chan Event
	wake   chan struct{}
	closed bool
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

func (e *eventQueue) channel() <-chan Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.out == nil {
		e.out = make(chan Event)
		go e.pump()
	}
	return e.out
}

func (e *eventQueue) push(ev Event) {
	e.mu.Lock()
	if e.out != nil && !e.closed {
		e.q = append(e.q, ev)
	}
	e.mu.Unlock()
	e.poke()
}

func (e *eventQueue) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.poke()
}

func (e *eventQueue) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) pump() {
	for {
		e.mu.Lock()
		if len(e.q) == 0 {
			closed := e.closed
			e.mu.Unlock()
			if closed {
				close(e.out)
				return
			}
			<-e.wake
			continue
		}
		ev := e.q[0]
		e.q[0] = Event{}
		e.q = e.q[1:]
		e.mu.Unlock()
		e.out <- ev
	}
}
