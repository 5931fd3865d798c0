package jobs

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// onMessage returns the consumer callback of server. JetStream runs it for
// one message at a time, and the consumer asks for the next message only
// when it returns. So the callback hands its job to a goroutine once it
// holds a call slot (waiting as long as it takes, heart-beating the message
// meanwhile), and then returns only once a slot is free again: a worker at
// its limit holds at most the one job it is waiting to start, and other
// workers take the rest. Nothing is dropped or nak'ed for lack of capacity;
// only Stop makes a waiting callback give its job back.
func (r *Runner) onMessage(server string) jetstream.MessageHandler {
	return func(msg jetstream.Msg) {
		if !r.callbacks.add() {
			_ = msg.Nak()
			return
		}
		defer r.callbacks.done()

		release, ok := r.waitSlot(server, msg)
		if !ok {
			_ = msg.Nak() // stopping: another worker takes it at once
			return
		}
		if !r.runs.add() {
			release()
			_ = msg.Nak()
			return
		}
		go func() {
			defer r.runs.done()
			defer release()
			r.handle(server, msg)
		}()
		r.waitFree(server)
	}
}

// waitSlot takes a call slot for server, sending InProgress for msg every
// heartbeat period while it waits. It fails only when the runner stops.
func (r *Runner) waitSlot(server string, msg jetstream.Msg) (func(), bool) {
	for {
		ctx, cancel := context.WithTimeout(r.life, r.beat)
		release, ok := r.acquire(ctx, server)
		cancel()
		if ok {
			return release, true
		}
		if r.life.Err() != nil {
			return nil, false
		}
		_ = msg.InProgress()
	}
}

// waitFree returns once a call slot for server is free (without keeping
// it), or the runner stops.
func (r *Runner) waitFree(server string) {
	if release, ok := r.acquire(r.life, server); ok {
		release()
	}
}

// tracker counts running work and lets Stop wait for it; once closed it
// admits nothing new.
type tracker struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed when closed and n is 0
}

func newTracker() *tracker { return &tracker{idle: make(chan struct{})} }

func (t *tracker) add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.closed && t.n == 0 {
		close(t.idle)
	}
}

// closeAndWait stops admitting work and waits for what runs until ctx ends;
// it returns how much still runs.
func (t *tracker) closeAndWait(ctx context.Context) int {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		if t.n == 0 {
			close(t.idle)
		}
	}
	t.mu.Unlock()
	select {
	case <-t.idle:
		return 0
	case <-ctx.Done():
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.n
	}
}
