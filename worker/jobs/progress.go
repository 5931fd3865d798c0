package jobs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/worker/upstream"
)

// Pace of the progress writer.
const (
	// progressInterval is the least time between two progress writes of a job.
	progressInterval = 250 * time.Millisecond
	// progressWriteTimeout bounds one progress write.
	progressWriteTimeout = 5 * time.Second
)

// progressWriter writes a running job's latest MCP progress into its record,
// at most every progressInterval, with compare-and-set: it never writes over
// a record that stopped being its attempt's (it cancels the job instead).
type progressWriter struct {
	st     *jobState
	cancel context.CancelCauseFunc // the job's

	mu     sync.Mutex
	latest *contracts.JobProgress

	wake chan struct{}
	quit context.Context
	stop func()
	done chan struct{}
}

// startProgress starts the writer of st's progress. Its st is the
// writer's until stop returns.
func (r *Runner) startProgress(st *jobState, cancel context.CancelCauseFunc) *progressWriter {
	quit, stop := context.WithCancel(context.Background())
	w := &progressWriter{st: st, cancel: cancel, wake: make(chan struct{}, 1), quit: quit, stop: stop, done: make(chan struct{})}
	go w.run()
	return w
}

// report is the upstream's progress callback: it keeps the latest report
// and wakes the writer, without blocking.
func (w *progressWriter) report(p upstream.Progress) {
	w.mu.Lock()
	w.latest = &contracts.JobProgress{Progress: p.Progress, Total: p.Total, Message: p.Message}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *progressWriter) run() {
	defer close(w.done)
	var last time.Time
	var written *contracts.JobProgress
	for {
		select {
		case <-w.wake:
		case <-w.quit.Done():
			return
		}
		if wait := progressInterval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-w.quit.Done():
				t.Stop()
				return
			}
		}
		w.mu.Lock()
		p := w.latest
		w.mu.Unlock()
		if p == written {
			continue
		}
		ctx, cancel := context.WithTimeout(w.quit, progressWriteTimeout)
		owned, cur, err := w.st.update(ctx, func(rec *contracts.JobRecord) { rec.Progress = p })
		cancel()
		last, written = time.Now(), p
		if err == nil && !owned {
			if cur != nil && cur.Status == contracts.JobCancelled {
				w.cancel(errCancelled)
			} else {
				w.cancel(errNotOwned)
			}
			return
		}
		if errors.Is(err, errConflict) {
			return
		}
	}
}

// end stops the writer and returns the latest progress, written or not.
func (w *progressWriter) end() *contracts.JobProgress {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest
}
