package jobs

import (
	"context"

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
		if !r.callbacks.Add() {
			_ = msg.Nak()
			return
		}
		defer r.callbacks.Done()

		release, ok := r.waitSlot(server, msg)
		if !ok {
			_ = msg.Nak() // stopping: another worker takes it at once
			return
		}
		if !r.runs.Add() {
			release()
			_ = msg.Nak()
			return
		}
		go func() {
			defer r.runs.Done()
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
