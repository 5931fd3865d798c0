package jobs

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Job intake. Each served server has one loop (pull) that asks the server's
// durable consumer for as many jobs as the worker has free call slots for
// the server (at least one, at most maxBatch), starts each job it can get a
// slot for at once, and heart-beats the rest while they wait for a slot.
// A batch costs one pull request for up to maxBatch jobs, instead of one per
// job; and since a worker asks only for what it can start, the jobs it
// cannot run stay in the stream for the other workers. With no free slot it
// still holds one job (heart-beaten, so not redelivered), to start it the
// moment a slot frees.

// maxBatch bounds the jobs one pull request asks for.
const maxBatch = 64

// maxFetchWait bounds how long one pull request waits for jobs to arrive;
// it is also how long Stop may wait for the last pull to end.
const maxFetchWait = time.Second

// tryNow is an ended context: acquire with it only takes a free slot.
var tryNow = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// pull takes server's jobs from cons until the runner stops (nil) or the
// consumer fails (its error).
func (r *Runner) pull(server string, cons jetstream.Consumer) error {
	wait := min(maxFetchWait, r.beat)
	for r.life.Err() == nil {
		n := min(max(r.free(server), 1), maxBatch)
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(wait))
		if err != nil {
			return err
		}
		// Jobs that found no free slot, in delivery order. They wait at most
		// until the batch ends (at most wait, a third of the ack wait) before
		// they are heart-beaten.
		var waiting []jetstream.Msg
		for msg := range batch.Messages() {
			if len(waiting) > 0 || !r.start(server, msg, tryNow) {
				waiting = append(waiting, msg)
			}
		}
		r.startWaiting(server, waiting)
		if err := batch.Error(); err != nil {
			return err
		}
	}
	return nil
}

// start takes a call slot for msg's job with ctx (tryNow: only a free one)
// and runs the job in a goroutine of its own. It returns false, leaving msg
// unsettled, when it got no slot. Once the runner stops, it gives msg back
// (nak) instead, so another worker takes it at once.
func (r *Runner) start(server string, msg jetstream.Msg, ctx context.Context) bool {
	if r.life.Err() != nil || !r.callbacks.Add() {
		r.settle(msg, settleGiveBack(), nil)
		return true
	}
	defer r.callbacks.Done()
	share, ok := r.shares.take(server, msg.Subject())
	if !ok {
		// The job's key runs its share of this server's jobs here already:
		// the job waits a little, and the next one (another key's) goes.
		r.settle(msg, settleRetry(deferDelay), nil)
		return true
	}
	release, ok := r.acquire(ctx, server)
	if !ok {
		share()
		if r.life.Err() != nil {
			r.settle(msg, settleGiveBack(), nil)
			return true
		}
		return false
	}
	if !r.runs.Add() {
		release()
		share()
		r.settle(msg, settleGiveBack(), nil)
		return true
	}
	go func() {
		defer r.runs.Done()
		defer share()
		defer release()
		r.handle(server, msg)
	}()
	return true
}

// startWaiting starts the jobs of msgs in order, each as soon as a call slot
// is free, sending InProgress for every job still waiting each heartbeat
// period. When the runner stops, the jobs still waiting are given back.
func (r *Runner) startWaiting(server string, msgs []jetstream.Msg) {
	for len(msgs) > 0 {
		ctx, cancel := context.WithTimeout(r.life, r.beat)
		started := r.start(server, msgs[0], ctx)
		cancel()
		if started {
			msgs = msgs[1:]
			continue
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

// free is how many jobs of server could start now.
func (r *Runner) free(server string) int {
	if r.freeSlots == nil {
		return maxBatch
	}
	return r.freeSlots(server)
}
