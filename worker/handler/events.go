package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nuid"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/worker/upstream"
)

// maxEventsPerCall bounds the events one call publishes; an upstream that
// sends more has the rest dropped.
const maxEventsPerCall = 10000

// running is the calls in progress on this worker, by request id, each with
// the function that cancels it. Request ids are unique per ingress request;
// the same id twice (a misbehaving client reusing one) is kept apart, the
// calls chained, and cancelled together.
type running struct {
	mu    sync.Mutex
	calls map[string]*runningCall
}

// runningCall is one call in progress. Its fields are guarded by
// running.mu.
type runningCall struct {
	next *runningCall // another call with the same request id
	// cancel ends the call's context; nil until the context exists (start).
	cancel context.CancelFunc
	// cancelled is set when its caller cancelled it (running.cancel).
	cancelled bool
}

func newRunning() *running {
	return &running{calls: make(map[string]*runningCall)}
}

// add registers a call that is about to run, before its context exists:
// a cancellation from then on is not lost.
func (r *running) add(id string, c *runningCall) {
	r.mu.Lock()
	c.next = r.calls[id]
	r.calls[id] = c
	r.mu.Unlock()
}

// start gives c its context's cancel function, calling it at once if the
// caller cancelled c already.
func (r *running) start(c *runningCall, cancel context.CancelFunc) {
	r.mu.Lock()
	c.cancel = cancel
	cancelled := c.cancelled
	r.mu.Unlock()
	if cancelled {
		cancel()
	}
}

// remove unregisters c, which ran with request id id.
func (r *running) remove(id string, c *runningCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	head := r.calls[id]
	switch {
	case head == c && c.next == nil:
		delete(r.calls, id)
	case head == c:
		r.calls[id] = c.next
	default:
		for p := head; p != nil; p = p.next {
			if p.next == c {
				p.next = c.next
				break
			}
		}
	}
	c.next = nil
}

// cancelledByCaller reports whether c's caller cancelled it.
func (r *running) cancelledByCaller(c *runningCall) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.cancelled
}

// cancel cancels the calls with request id id and reports whether there
// were any.
func (r *running) cancel(id string) bool {
	r.mu.Lock()
	var fns []context.CancelFunc
	found := false
	for c := r.calls[id]; c != nil; c = c.next {
		found, c.cancelled = true, true
		if c.cancel != nil {
			fns = append(fns, c.cancel)
		}
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	return found
}

// Running returns how many calls are registered (for tests and metrics).
func (h *Handler) Running() int {
	h.running.mu.Lock()
	defer h.running.mu.Unlock()
	n := 0
	for _, c := range h.running.calls {
		for ; c != nil; c = c.next {
			n++
		}
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
// progress and log notifications, and its requests to the client, as
// contracts.CallEvents on the request's EventsTo subject, when it names a
// usable one. token is the call's opened credential.
func (h *Handler) eventOptions(req *contracts.CallRequest, token contracts.Token) []upstream.CallOption {
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
	opts := []upstream.CallOption{
		upstream.WithProgress(func(p upstream.Progress) {
			publish(&contracts.CallEvent{Progress: &contracts.JobProgress{Progress: p.Progress, Total: p.Total, Message: p.Message}})
		}),
		upstream.WithLogs(func(params json.RawMessage) {
			publish(&contracts.CallEvent{Log: params})
		}),
	}
	if caps := clientCaps(req.ClientRequests); caps != 0 && h.subscribe != nil {
		opts = append(opts, upstream.WithClientRequests(caps, h.askClient(req, subscriber(&req.RequestHeader, token), publish)))
	}
	return opts
}

// subscriber names the caller of a request, to whom its subscriptions and
// answers belong: the identity the request names (h.Caller, bound by the
// seal); for a request that names none (an older ingress), the gateway key
// and the fingerprint of the caller's credential - the opened token's, or
// for a server that takes no credential the one the ingress named.
func subscriber(h *contracts.RequestHeader, token contracts.Token) string {
	if h.Caller != "" {
		return h.Caller
	}
	fp := h.TokenFP
	if !token.IsZero() {
		fp = token.Fingerprint()
	}
	return contracts.Subscriber(h.KeyID, fp)
}

// clientCaps are the capabilities of a caller that answers methods.
func clientCaps(methods []string) upstream.ClientCaps {
	var caps upstream.ClientCaps
	for _, m := range methods {
		switch m {
		case "sampling/createMessage":
			caps |= upstream.CapSampling
		case "elicitation/create":
			caps |= upstream.CapElicitation
		}
	}
	return caps
}

// errAnswerUnavailable is what the upstream hears when the client's answer
// cannot be awaited.
var errAnswerUnavailable = errors.New("toolbus: the gateway cannot wait for the client's answer")

// askClient returns the function that relays one request of the upstream
// to the caller's MCP client: a CallEvent with the request on EventsTo, then
// the wait for a contracts.ClientAnswer on its own answer subject, bounded by
// the call's context (and mcp-go's own limit on a request's handling). Only
// an answer from the call's own caller (its identity, caller: subscriber)
// and gateway key is taken; others are dropped.
func (h *Handler) askClient(req *contracts.CallRequest, caller string, publish func(*contracts.CallEvent)) upstream.ClientRequests {
	// answerer names who answered, as subscriber names the call's caller.
	answerer := func(a *contracts.ClientAnswer) string {
		if req.Caller != "" {
			return a.Caller
		}
		return contracts.Subscriber(a.KeyID, a.TokenFP)
	}
	return func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
		id := nuid.Next()
		answers := make(chan *contracts.ClientAnswer, 1)
		unsubscribe, err := h.subscribe(contracts.AnswerSubject(req.RequestID, id), func(data []byte) {
			a, err := contracts.DecodeClientAnswer(data)
			if err != nil || a.RequestID != req.RequestID || a.ID != id || a.KeyID != req.KeyID || answerer(a) != caller {
				h.log.Warn().Str("request_id", req.RequestID).Str("method", method).Msg("client answer refused: malformed or not from the call's caller")
				return
			}
			select {
			case answers <- a:
			default: // one answer per request
			}
		})
		if err != nil {
			return nil, errAnswerUnavailable
		}
		defer unsubscribe()
		publish(&contracts.CallEvent{Request: &contracts.ClientRequest{ID: id, Method: method, Params: params}})
		select {
		case a := <-answers:
			if a.Error != nil {
				return nil, fmt.Errorf("the client answered with an error: %s", clip(a.Error.Message))
			}
			return a.Result, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
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
