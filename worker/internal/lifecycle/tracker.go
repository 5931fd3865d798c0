// Package lifecycle has what the worker's parts share to stop cleanly.
package lifecycle

import (
	"context"
	"sync"
)

// Tracker counts running work and lets a Stop wait for it; once closed it
// admits nothing new. Safe for concurrent use.
type Tracker struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed when closed and n is 0
}

// NewTracker returns an open Tracker with nothing running.
func NewTracker() *Tracker { return &Tracker{idle: make(chan struct{})} }

// Add admits one more piece of work; false once the Tracker is closed.
func (t *Tracker) Add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

// Done marks one admitted piece of work finished.
func (t *Tracker) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.closed && t.n == 0 {
		close(t.idle)
	}
}

// CloseAndWait stops admitting work and waits for what runs until ctx ends;
// it returns how much still runs.
func (t *Tracker) CloseAndWait(ctx context.Context) int {
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
