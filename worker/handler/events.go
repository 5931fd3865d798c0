package handler

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/worker/upstream"
)

// ErrCallCancelled is the cause of a call's context cancellation when its
// caller cancelled it (see Handler.Cancel).
var ErrCallCancelled = errors.New("the call was cancelled by its caller")

// maxEventsPerCall bounds the events one call publishes; an upstream that
// sends more has the rest dropped.
const maxEventsPerCall = 10000

// running is the calls in progress on this worker, by request id, with the
// function that cancels each. Request ids are unique per ingress request;
// the same id twice (a misbehaving client reusing one) is kept apart by a
// sequence number and cancelled together.
type running struct {
	mu    sync.Mutex
	seq   uint64
	calls map[string]map[uint64]context.CancelCauseFunc
}

func newRunning() *running {
	return &running{calls: make(map[string]map[uint64]context.CancelCauseFunc)}
}

// add registers a running call and returns the function that removes it.
func (r *running) add(id string, cancel context.CancelCauseFunc) func() {
	r.mu.Lock()
	r.seq++
	seq := r.seq
	m := r.calls[id]
	if m == nil {
		m = make(map[uint64]context.CancelCauseFunc, 1)
		r.calls[id] = m
	}
	m[seq] = cancel
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(m, seq)
		if len(m) == 0 { // every call of m has ended; m is still r.calls[id]
			delete(r.calls, id)
		}
		r.mu.Unlock()
	}
}

func (r *running) cancel(id string) bool {
	r.mu.Lock()
	var fns []context.CancelCauseFunc
	for _, fn := range r.calls[id] {
		fns = append(fns, fn)
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn(ErrCallCancelled)
	}
	return len(fns) > 0
}

// Running returns how many calls are registered (for tests and metrics).
func (h *Handler) Running() int {
	h.running.mu.Lock()
	defer h.running.mu.Unlock()
	n := 0
	for _, m := range h.running.calls {
		n += len(m)
	}
	return n
}

// Cancel cancels the synchronous call with request id requestID if this
// worker runs it, and reports whether it did. The upstream call's context
// ends, which mcp-go turns into an MCP notifications/cancelled or an aborted
// HTTP request; the caller is answered with the cancelled error code. Every
// worker hears contracts.CancelSubject announcements; only the one running
// the call acts.
func (h *Handler) Cancel(requestID string) bool {
	if h.running.cancel(requestID) {
		h.log.Debug().Str("request_id", requestID).Msg("call cancellation received")
		return true
	}
	return false
}

// eventOptions returns the upstream call options that relay the upstream's
// progress and log notifications as contracts.CallEvents on the request's
// EventsTo subject, when it names a usable one.
func (h *Handler) eventOptions(req *contracts.CallRequest) []upstream.CallOption {
	if req.EventsTo == "" || h.publish == nil || !validEventsSubject(req.EventsTo) {
		return nil
	}
	var sent atomic.Int64
	publish := func(ev *contracts.CallEvent) {
		if sent.Add(1) > maxEventsPerCall {
			return
		}
		ev.Type, ev.RequestID = contracts.TypeCallEvent, req.RequestID
		data, err := json.Marshal(ev)
		if err != nil {
			return
		}
		// Best effort: a lost event must not fail the call.
		_ = h.publish(req.EventsTo, data)
	}
	return []upstream.CallOption{
		upstream.WithProgress(func(p upstream.Progress) {
			publish(&contracts.CallEvent{Progress: &contracts.JobProgress{Progress: p.Progress, Total: p.Total, Message: p.Message}})
		}),
		upstream.WithLogs(func(params json.RawMessage) {
			publish(&contracts.CallEvent{Log: params})
		}),
	}
}

// validEventsSubject refuses events subjects that are not a plain subject
// (wildcards, spaces) or that lie in toolbus's own namespace: events go to
// an ingress's inbox, never onto a call, job or cancel subject.
func validEventsSubject(s string) bool {
	if s == "" || strings.HasPrefix(s, contracts.SubjectRoot+".") || s == contracts.SubjectRoot {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}
