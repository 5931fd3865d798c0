package handler

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/worker/internal/admit"
	workermetrics "github.com/toolbus/toolbus/worker/metrics"
	"github.com/toolbus/toolbus/worker/upstream"
)

// Config is what a Handler needs.
type Config struct {
	// File holds the servers (mcp_servers) the handler may call.
	File *config.File
	// Opener opens sealed tokens with the worker's private keys.
	Opener *contracts.Opener
	// Replay rejects a sealed token seen before; nil means a new guard.
	Replay *contracts.ReplayGuard
	// Upstream makes the calls.
	Upstream *upstream.Pool
	// Logger receives one line per request.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Publish sends a call's progress and log events to its EventsTo
	// subject (the pool passes its NATS connection's Publish). nil: calls
	// that ask for events run without them.
	Publish func(subject string, data []byte) error
	// Subscribe receives the messages on subject until the returned
	// function is called: the client's answers to the upstream's sampling
	// and elicitation requests (the pool passes its NATS connection's).
	// nil: such requests are refused.
	Subscribe func(subject string, fn func(data []byte)) (unsubscribe func(), err error)
	// Metrics, if set, counts requests, upstream calls and sealed tokens
	// refused; Tracer, if set, records a span per upstream call.
	Metrics *workermetrics.Metrics
	Tracer  *telemetry.Tracer
}

// Handler handles requests: each one is admitted (package admit), sent
// upstream, and its outcome returned as a result and a classified error.
// It is safe for concurrent use.
type Handler struct {
	admit     *admit.Admitter
	up        *upstream.Pool
	log       zerolog.Logger
	now       func() time.Time
	publish   func(subject string, data []byte) error
	subscribe func(subject string, fn func(data []byte)) (func(), error)
	running   *running
	metrics   *workermetrics.Metrics
	tracer    *telemetry.Tracer
}

// New returns a Handler.
func New(c Config) *Handler {
	if c.Replay == nil {
		c.Replay = contracts.NewReplayGuard()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Handler{
		admit: &admit.Admitter{File: c.File, Opener: c.Opener, Replay: c.Replay, Metrics: c.Metrics, Now: c.Now},
		up:    c.Upstream, log: c.Logger, now: c.Now,
		publish: c.Publish, subscribe: c.Subscribe, running: newRunning(),
		metrics: c.Metrics, tracer: c.Tracer,
	}
}

// Op is one kind of synchronous request: a row of the table every request
// goes through - its subject, its message, what admission checks besides
// the header, its upstream call and its reply.
type Op struct {
	// Kind is the kind of subject it arrives on.
	Kind contracts.SubjectKind
	// Subject is its subject for a server.
	Subject func(server string) string
	// request returns a Request whose Msg is an empty request message of
	// the op's type to decode into.
	request func() *Request
	// name is the op in logs and metrics (the RPC's method).
	name func(contracts.Request) string
	// route is what admission checks besides the header: the tool ("" for
	// none) and the binding of the sealed token, given the reply subject.
	route func(msg contracts.Request, reply string) (tool string, binding contracts.Binding)
	// call makes the admitted request's upstream call.
	call func(h *Handler, ctx context.Context, msg contracts.Request, a admit.Admitted) (json.RawMessage, error)
	// cancellable requests are cancelled by an announcement on
	// contracts.CancelSubject(request id) (see Cancel).
	cancellable bool
	// reply is its reply message.
	reply func(requestID string, payload json.RawMessage, e *contracts.Error) contracts.Reply
}

// The ops: tools/call, tools/list and the relayed MCP requests.
var (
	CallOp = &Op{Kind: contracts.SubjectCall, Subject: contracts.CallSubject, request: request[contracts.CallRequest],
		name: func(contracts.Request) string { return contracts.OpCall }, route: callRoute, call: (*Handler).callTool,
		cancellable: true, reply: reply(contracts.NewCallResponse)}
	ListOp = &Op{Kind: contracts.SubjectList, Subject: contracts.ListSubject, request: request[contracts.ListRequest],
		name: func(contracts.Request) string { return contracts.OpList }, route: listRoute, call: (*Handler).listTools,
		reply: reply(contracts.NewListResponse)}
	RPCOp = &Op{Kind: contracts.SubjectRPC, Subject: contracts.RPCSubject, request: request[contracts.RPCRequest],
		name: rpcName, route: rpcRoute, call: (*Handler).relay, reply: reply(contracts.NewRPCResponse)}
)

// request returns a new Request with an empty message of type T, both in
// one allocation.
func request[T any, P interface {
	*T
	contracts.Request
}]() *Request {
	r := new(struct {
		in  Request
		msg T
	})
	r.in.Msg = P(&r.msg)
	return &r.in
}

// reply adapts a reply constructor of contracts to the table.
func reply[R contracts.Reply](newReply func(string, json.RawMessage, *contracts.Error) R) func(string, json.RawMessage, *contracts.Error) contracts.Reply {
	return func(id string, p json.RawMessage, e *contracts.Error) contracts.Reply { return newReply(id, p, e) }
}

// Ops is every op, in the order the pool subscribes them.
var Ops = []*Op{CallOp, ListOp, RPCOp}

// Request is one request as it arrived, decoded once.
type Request struct {
	Op *Op
	// Subject and Reply are the subjects it arrived on and is answered on.
	Subject, Reply string
	// Msg is what decoded, even when Err is set.
	Msg contracts.Request
	// Err is why the message does not decode or validate; nil when it does.
	Err error
	// call registers a cancellable request while it runs (run).
	call runningCall
}

// Decode decodes w (wire format v2: the header value and the body), a
// request of op's kind that arrived on subject with reply subject reply.
// Only the header is decoded: the body becomes the request's payload as is.
func (op *Op) Decode(subject, reply string, w contracts.Wire) *Request {
	in := op.request()
	in.Op, in.Subject, in.Reply = op, subject, reply
	in.Err = contracts.DecodeRequest(w, in.Msg)
	return in
}

// maxRequestID matches the contracts limit on request ids.
const maxRequestID = 128

// ID is the request id the reply goes to: "" when the message names none
// usable, and then there is no reply.
func (in *Request) ID() string {
	if id := in.Msg.Header().RequestID; len(id) <= maxRequestID {
		return id
	}
	return ""
}

// Budget is the request's timeout, 0 when it names none.
func (in *Request) Budget() time.Duration {
	return max(in.Msg.Header().Timeout(), 0)
}

// Encode returns the reply (wire format v2) carrying payload as its body,
// unchanged, or e when set; ok is false when the request has no id to
// answer to. This is the one place a reply is encoded.
func (in *Request) Encode(payload json.RawMessage, e *contracts.Error) (w contracts.Wire, ok bool) {
	id := in.ID()
	if id == "" {
		return contracts.Wire{}, false
	}
	w, err := contracts.EncodeReply(in.Op.reply(id, payload, e))
	if err == nil {
		return w, true
	}
	// Only an error too long for the reply header fails to encode.
	w, _ = contracts.EncodeReply(in.Op.reply(id, nil, contracts.NewError(contracts.CodeInternal, "the worker's answer could not be encoded")))
	return w, true
}

// errPanicked is the error of a request whose handling panicked.
func errPanicked() *contracts.Error {
	return contracts.NewError(contracts.CodeInternal, "the worker failed while handling the request")
}

// panicObserved is what the observation of an upstream call that panicked
// records (run): shared, never returned to a caller, never changed.
var panicObserved = errPanicked()

// Handle runs the request and returns the payload of its reply (the
// CallToolResult, the tools, the RPC's result) or the classified error.
// ctx bounds the request further. A panic while handling it is recovered:
// the caller gets internal, and the worker keeps serving.
func (h *Handler) Handle(ctx context.Context, in *Request) (payload json.RawMessage, e *contracts.Error) {
	hdr := in.Msg.Header()
	// The server logged is the message's (a moved message shows where it
	// was meant to go), or the subject's when the message does not decode.
	o := &outcome{op: in.Op.name(in.Msg), start: h.now(), requestID: in.ID(), keyID: hdr.KeyID, tokenFP: hdr.TokenFP, server: hdr.Server}
	defer h.logOutcome(o)
	if in.Err != nil {
		// Only the request id (bounded) is taken from a message that does
		// not validate; its other fields may be anything.
		o.keyID, o.tokenFP, o.server = "", "", ""
		if sub, ok := contracts.ParseSubject(in.Subject); ok {
			o.server = sub.Server
		}
		o.err, o.reason = contracts.NewError(contracts.CodeInvalidRequest, "malformed %s request", in.Op.Kind), clip(in.Err.Error())
		return nil, o.err
	}
	defer func() {
		if v := recover(); v != nil {
			h.logPanic(o, v)
			payload, e = nil, errPanicked()
			o.err, o.reason = e, "panic"
		}
	}()
	payload, e = h.run(ctx, in, o)
	o.err = e
	return payload, e
}

// run admits the request (package admit) and makes its upstream call within
// the admitted budget, observed (metrics, span).
func (h *Handler) run(ctx context.Context, in *Request, o *outcome) (_ json.RawMessage, e *contracts.Error) {
	hdr := in.Msg.Header()
	tool, binding := in.Op.route(in.Msg, in.Reply)
	o.tool = tool
	var rc *runningCall
	if in.Op.cancellable {
		// Registered before admission, so that a cancellation that comes
		// meanwhile is not lost; its context (the budget's) comes after.
		in.call = runningCall{}
		rc = &in.call
		h.running.add(hdr.RequestID, rc)
		defer h.running.remove(hdr.RequestID, rc)
	}
	a, refusal := h.admit.Admit(admit.Request{Header: hdr, Kind: in.Op.Kind, Subject: in.Subject, Tool: tool, Binding: binding})
	if refusal != nil {
		o.reason = refusal.Reason
		return nil, refusal.Err
	}
	telemetry.Step(ctx, telemetry.StepOpened)
	if !a.Token.IsZero() {
		o.tokenFP = a.Token.Fingerprint()
	}
	// One context for the call: its budget, and its caller's cancellation.
	callCtx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	if rc != nil {
		h.running.start(rc, cancel)
	}
	callCtx, obs := h.metrics.StartUpstream(callCtx, h.tracer, o.op, a.Server.Name, tool)
	e = panicObserved // what the observation records if the call panics
	defer func() { obs.End(e) }()
	result, err := in.Op.call(h, callCtx, in.Msg, a)
	switch {
	case err != nil && rc != nil && h.running.cancelledByCaller(rc):
		o.reason = "cancelled by the caller"
		return nil, contracts.NewError(contracts.CodeCancelled, "the call was cancelled by its caller")
	case err != nil:
		return nil, h.upstreamError(o, err)
	}
	return result, nil
}

func callRoute(msg contracts.Request, reply string) (string, contracts.Binding) {
	req := msg.(*contracts.CallRequest)
	return req.Tool, req.Binding(reply)
}

func (h *Handler) callTool(ctx context.Context, msg contracts.Request, a admit.Admitted) (json.RawMessage, error) {
	req := msg.(*contracts.CallRequest)
	return h.up.CallTool(ctx, a.Server, a.Token, req.Tool, req.Arguments, h.eventOptions(req, a.Token)...)
}

func listRoute(msg contracts.Request, reply string) (string, contracts.Binding) {
	return "", msg.(*contracts.ListRequest).Binding(reply)
}

func (h *Handler) listTools(ctx context.Context, _ contracts.Request, a admit.Admitted) (json.RawMessage, error) {
	return h.up.ListTools(ctx, a.Server, a.Token)
}

// upstreamError classifies an upstream call's failure. A *contracts.Error
// is the handler's own refusal, made inside the call.
func (h *Handler) upstreamError(o *outcome, err error) *contracts.Error {
	if ce, ok := err.(*contracts.Error); ok {
		return ce
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		o.reason = ue.Detail
		return ue.Wire
	}
	// Not from the pool: report the class only, never err's text.
	o.reason = "unclassified upstream failure"
	return upstream.Classify(err, "")
}

// clip bounds a decoding error's text for the log.
func clip(s string) string {
	const maxReason = 200
	if len(s) > maxReason {
		return s[:maxReason]
	}
	return s
}
