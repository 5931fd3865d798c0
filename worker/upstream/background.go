package upstream

import "sync"

// backgroundWork counts the pool's work that runs apart from any call:
// token requests and role assumptions, which concurrent calls share. Close
// waits for it; once the pool is closing none starts (enter reports false),
// so a late call never adds to a WaitGroup that Close is already waiting
// on.
type backgroundWork struct {
	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

// enter counts one piece of work, which must leave; false once the pool
// is closing.
func (b *backgroundWork) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return false
	}
	b.wg.Add(1)
	return true
}

func (b *backgroundWork) leave() { b.wg.Done() }

// errBackgroundClosed is the failure of work refused by a closing pool.
func errBackgroundClosed() *Error { return &Error{Wire: errPoolClosed, Detail: "pool closed"} }

// close stops new work and waits for the work running.
func (b *backgroundWork) close() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.wg.Wait()
}
