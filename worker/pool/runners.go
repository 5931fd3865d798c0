package pool

import (
	"context"
	"sync"
	"time"
)

// runnerIdle is how long an idle runner waits for the next call before it
// exits.
const runnerIdle = 10 * time.Second

// runners runs the pool's calls on reused goroutines. A call's goroutine
// grows its stack to what an upstream call needs (decoding JSON goes deep),
// and a fresh goroutine per call pays for that growth, stack copy by stack
// copy, every time; a runner keeps its stack from one call to the next. A
// call goes to an idle runner if there is one, else to a new one: there are
// never more runners than calls running at once (the pool's slots bound
// them), and an idle runner exits after runnerIdle.
type runners struct {
	work chan task
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// task is what a runner runs (a *request: no allocation for a func value).
type task interface{ run() }

func newRunners() *runners {
	return &runners{work: make(chan task), quit: make(chan struct{})}
}

// run runs t on a runner.
func (r *runners) run(t task) {
	select {
	case r.work <- t:
	default:
		r.wg.Add(1)
		go r.loop(t)
	}
}

func (r *runners) loop(t task) {
	defer r.wg.Done()
	idle := time.NewTimer(runnerIdle)
	defer idle.Stop()
	for {
		t.run()
		t = nil // not kept while idle
		idle.Reset(runnerIdle)
		select {
		case t = <-r.work:
		case <-idle.C:
			return
		case <-r.quit:
			return
		}
	}
}

// stop ends the idle runners, and the busy ones once their call returns;
// it waits for them until ctx ends. run must not be called after stop.
func (r *runners) stop(ctx context.Context) {
	r.once.Do(func() { close(r.quit) })
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
