package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
)

// heartbeat keeps a running job's message from being redelivered
// (InProgress every ack wait / 3) and, at the same pace, reads the job's
// record: when it is cancelled, gone, or another attempt's, the job is
// cancelled. (Cancellations are also announced on the cancel subject; this
// catches one announced while this worker was disconnected.)
type heartbeat struct {
	quit chan struct{}
	done chan struct{}
}

func (r *Runner) startHeartbeat(msg jetstream.Msg, st *jobState, cancel context.CancelCauseFunc) *heartbeat {
	kv, key, attempt := st.kv, st.key, st.attempt
	return r.beatEvery(func() {
		_ = msg.InProgress()
		ctx, done := context.WithTimeout(context.Background(), r.beat)
		rec, _, err := loadRecord(ctx, kv, key)
		done()
		switch {
		case errors.Is(err, errNoRecord):
			cancel(errNotOwned)
		case err != nil:
		case rec.Status == contracts.JobCancelled:
			cancel(errCancelled)
		case rec.Status != contracts.JobRunning || rec.Attempts != attempt:
			cancel(errNotOwned)
		}
	})
}

// keepInProgress keeps the message from being redelivered while a
// finished job's outcome is written (a large result into a loaded store
// can take longer than the ack wait); the job can no longer be cancelled.
func (r *Runner) keepInProgress(msg jetstream.Msg) *heartbeat {
	return r.beatEvery(func() { _ = msg.InProgress() })
}

// beatEvery runs beat every r.beat until stop.
func (r *Runner) beatEvery(beat func()) *heartbeat {
	h := &heartbeat{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(r.beat)
		defer t.Stop()
		for {
			select {
			case <-h.quit:
				return
			case <-t.C:
			}
			beat()
		}
	}()
	return h
}

func (h *heartbeat) stop() {
	close(h.quit)
	<-h.done
}
