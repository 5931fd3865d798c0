// Package dispatch sends tool calls and tool lists to the workers over NATS
// request-reply and waits for their answers.
//
// Requests and replies use wire format v2 (contracts/wire.go): the small
// fields in one NATS header, the payload - a call's arguments, a relayed
// request's params, a reply's result - as the message body, which this
// package never re-encodes or re-scans.
//
// It keeps its own reply inbox: one wildcard subscription per connection and
// a reply subject per request, chosen before the user's token is sealed, so
// that the seal binds the reply subject too and a captured request cannot be
// replayed with its answer sent elsewhere.
//
// For the MCP endpoint it also relays other MCP requests (RPC, on
// contracts.RPCSubject), receives a call's events for the life of its
// request (OpenEvents, below the same inbox and through the same
// subscription), sends MCP clients' answers to the upstream's requests
// (Answer), subscribes callers' resource updates (Notifications), and
// announces the cancellation of a call (CancelCall) and of a resource
// subscription (Unsubscribe).
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/metrics"
)

// Timing allowances around the caller's budget.
const (
	// replyGrace is how much longer than the upstream budget the ingress
	// waits, so that a worker's own upstream_timeout reply arrives first.
	replyGrace = 2 * time.Second
	// clockSkew is added to a seal's expiry for clocks that differ between
	// machines.
	clockSkew = 5 * time.Second
)

// Dispatcher sends requests to workers. Safe for concurrent use.
type Dispatcher struct {
	nc     *nats.Conn
	sealer *contracts.Sealer
	log    zerolog.Logger
	now    func() time.Time

	inbox string // "<prefix>." + request id is each request's reply subject
	sub   *nats.Subscription

	mu      sync.Mutex
	pending map[string]chan *nats.Msg // replies, by request id
	events  map[string]chan *nats.Msg // call events (OpenEvents), by request id

	// callSubjects are the call subjects of the servers called so far
	// (contracts.CallSubject), at most maxCachedSubjects.
	subjectsMu   sync.RWMutex
	callSubjects map[string]string

	metrics *metrics.Metrics  // nil: none
	tracer  *telemetry.Tracer // nil: no spans (a caller's trace context still goes on)
	admit   Admission         // nil: every call is admitted
}

// Admission decides whether a call of the gateway key keyID, by the caller
// identity caller, to server may be sent now; release ends it.
// ingress/limits's call slots per key and per identity are one.
type Admission func(keyID, caller, server string) (release func(), e *contracts.Error)

// WithAdmission asks admit before sending each Call (once, whatever its
// retries), and releases when Call returns.
func WithAdmission(admit Admission) Option { return func(d *Dispatcher) { d.admit = admit } }

// Option adjusts a Dispatcher.
type Option func(*Dispatcher)

// WithMetrics records round trips, sealing failures and the tools calls
// succeeded with in m.
func WithMetrics(m *metrics.Metrics) Option { return func(d *Dispatcher) { d.metrics = m } }

// WithTracer records a client span per round trip; its context goes to the
// worker in the request's NATS headers.
func WithTracer(t *telemetry.Tracer) Option { return func(d *Dispatcher) { d.tracer = t } }

// New subscribes the reply inbox on nc. sealer may be nil only if no request
// will ever carry a token (it is an error to send one then).
func New(nc *nats.Conn, sealer *contracts.Sealer, log zerolog.Logger, opts ...Option) (*Dispatcher, error) {
	d := &Dispatcher{
		nc: nc, sealer: sealer, log: log, now: time.Now,
		inbox:        nats.NewInbox(),
		pending:      make(map[string]chan *nats.Msg),
		events:       make(map[string]chan *nats.Msg),
		callSubjects: make(map[string]string),
	}
	for _, opt := range opts {
		opt(d)
	}
	// One subscription for replies (<inbox>.<id>) and call events
	// (<inbox>.ev.<id>): one callback sees both in the order they arrived,
	// so a call's events are queued before its reply is handed over.
	sub, err := nc.Subscribe(d.inbox+".>", d.deliver)
	if err != nil {
		return nil, err
	}
	// Replies can be large (tool results); never drop them for a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	d.sub = sub
	return d, nil
}

// Close stops the reply subscription. Requests still waiting time out.
func (d *Dispatcher) Close() error { return d.sub.Unsubscribe() }

func (d *Dispatcher) deliver(m *nats.Msg) {
	rest := m.Subject[len(d.inbox)+1:]
	routes := d.pending
	if id, ok := strings.CutPrefix(rest, eventsToken); ok {
		rest, routes = id, d.events
	}
	// The hand-over is under the lock: once a round trip has taken its
	// channel out of pending, nothing is sent to it any more, and the
	// channel can serve another round trip (waiter).
	d.mu.Lock()
	if ch, ok := routes[rest]; ok {
		select {
		case ch <- m:
		default: // a duplicate reply (the first one won), or events nobody reads
		}
	}
	d.mu.Unlock()
}

// maxCachedSubjects bounds callSubjects (servers come from the
// configuration, so the bound is not reached in practice).
const maxCachedSubjects = 1024

// callSubject is contracts.CallSubject(server), built once per server.
func (d *Dispatcher) callSubject(server string) string {
	d.subjectsMu.RLock()
	subject, ok := d.callSubjects[server]
	d.subjectsMu.RUnlock()
	if ok {
		return subject
	}
	subject = contracts.CallSubject(server)
	d.subjectsMu.Lock()
	if len(d.callSubjects) < maxCachedSubjects {
		d.callSubjects[server] = subject
	}
	d.subjectsMu.Unlock()
	return subject
}

// Call is one tools/call.
type Call struct {
	KeyID  string
	Server string
	Tool   string
	// Arguments travel as the request's body exactly as given (the seal
	// binds these bytes): a JSON object the caller has already read, never
	// re-encoded or re-validated here.
	Arguments json.RawMessage
	Token     contracts.Token
	// TokenFP, if set, is Token.Fingerprint() (a caller that has it
	// already saves computing it again); else it is computed here.
	TokenFP string
	// Caller is the caller's identity (contracts.RequestHeader.Caller).
	Caller  string
	Timeout time.Duration
	// EventsTo, if set, asks the worker to publish the upstream's progress
	// and log notifications there (see OpenEvents); the seal binds it.
	EventsTo string
	// ClientRequests are the requests (contracts.ClientRequestMethods) the
	// caller's MCP client answers during the call; they arrive as events
	// and the answers go back with Answer. Needs EventsTo.
	ClientRequests []string
	// Events and OnEvent, when both are set (Events from OpenEvents, its
	// Subject in EventsTo), have the call's events handed to OnEvent while
	// Call waits for the reply, on Call's own goroutine, so that no other
	// goroutine is needed to relay them. Events still unread when the
	// reply arrives stay in Events: read them with Pending.
	Events  *Events
	OnEvent func(*contracts.CallEvent)
}

// eventSink is where a round trip hands the call's events while it waits
// (the zero value: nowhere).
type eventSink struct {
	events *Events
	fn     func(*contracts.CallEvent)
}

// callMessages are an attempt's request and reply, allocated together.
type callMessages struct {
	req  contracts.CallRequest
	resp contracts.CallResponse
}

// call is one attempt of Call (retry.go).
func (d *Dispatcher) call(ctx context.Context, requestID string, c Call) (json.RawMessage, *contracts.Error) {
	msgs := &callMessages{req: contracts.CallRequest{Tool: c.Tool, Arguments: c.Arguments, EventsTo: c.EventsTo, ClientRequests: c.ClientRequests}}
	result, cerr := d.roundTrip(ctx, trip{
		subject: d.callSubject(c.Server), typ: contracts.TypeCallRequest, requestID: requestID,
		keyID: c.KeyID, server: c.Server, token: c.Token, tokenFP: c.TokenFP, caller: c.Caller, timeout: c.Timeout,
		sink: eventSink{c.Events, c.OnEvent},
	}, &msgs.req, &msgs.resp)
	if cerr == nil {
		d.metrics.LearnTool(c.Server, c.Tool) // the tool exists: a bounded label value
	}
	return result, cerr
}

// List is one tools/list.
type List struct {
	KeyID   string
	Server  string
	Token   contracts.Token
	Timeout time.Duration
}

// list is one attempt of List (retry.go).
func (d *Dispatcher) list(ctx context.Context, requestID string, l List) (json.RawMessage, *contracts.Error) {
	var resp contracts.ListResponse
	return d.roundTrip(ctx, trip{
		subject: contracts.ListSubject(l.Server), typ: contracts.TypeListRequest, requestID: requestID,
		keyID: l.KeyID, server: l.Server, token: l.Token, timeout: l.Timeout,
	}, &contracts.ListRequest{}, &resp)
}

// expires is a request's seal expiry: the ingress's wait plus clock skew.
func (d *Dispatcher) expires(wait time.Duration) int64 {
	return d.now().Add(wait + clockSkew).UnixMilli()
}

func (d *Dispatcher) unreadable(requestID string, err error) *contracts.Error {
	d.log.Error().Str("request_id", requestID).Err(err).Msg("bad reply from worker")
	return contracts.NewError(contracts.CodeInternal, "a worker sent an unreadable reply")
}

func (d *Dispatcher) replySubject(requestID string) string { return d.inbox + "." + requestID }

func (d *Dispatcher) seal(token contracts.Token, b contracts.Binding) (*contracts.Sealed, *contracts.Error) {
	if d.sealer == nil {
		return nil, contracts.NewError(contracts.CodeInternal, "no sealing key configured")
	}
	sealed, err := d.sealer.Seal(token, b)
	if err != nil {
		d.metrics.SealFailed()
		d.log.Error().Err(err).Msg("sealing failed")
		return nil, contracts.NewError(contracts.CodeInternal, "sealing the credential failed")
	}
	return sealed, nil
}

// trip is what a round trip needs besides the message: where it goes, the
// header's common fields and where the call's events go while it waits.
type trip struct {
	subject, typ, requestID string
	keyID, server           string
	token                   contracts.Token // the zero Token seals nothing
	tokenFP                 string          // token's fingerprint, if known
	caller                  string          // the caller's identity, if named
	timeout                 time.Duration
	sink                    eventSink
}

// request is a request message whose sealed token is bound to its reply
// subject (every request a round trip sends).
type request interface {
	contracts.Request
	Binding(replyTo string) contracts.Binding
}

// roundTrip is the one round trip of every request kind. It fills req's
// header from t, seals t.token to req's binding (its reply subject
// included), publishes req on t.subject and waits up to the budget plus
// replyGrace (and ctx) for the answer, which it decodes into reply; it
// returns the reply's payload, or its error. The request's trace context
// (the caller's, or the round trip's span) goes in its NATS headers.
func (d *Dispatcher) roundTrip(ctx context.Context, t trip, req request, reply contracts.Reply) (json.RawMessage, *contracts.Error) {
	wait := t.timeout + replyGrace
	h := req.Header()
	*h = contracts.RequestHeader{
		Type: t.typ, RequestID: t.requestID, Server: t.server, KeyID: t.keyID,
		TimeoutMS: t.timeout.Milliseconds(), ExpiresUnixMS: d.expires(wait), Caller: t.caller,
	}
	replyTo := d.replySubject(t.requestID)
	if !t.token.IsZero() {
		sealed, cerr := d.seal(t.token, req.Binding(replyTo))
		if cerr != nil {
			return nil, cerr
		}
		if h.Token, h.TokenFP = sealed, t.tokenFP; h.TokenFP == "" {
			h.TokenFP = t.token.Fingerprint()
		}
		telemetry.Step(ctx, telemetry.StepSealed)
	}
	w, err := contracts.EncodeRequest(req)
	if err != nil {
		d.log.Error().Str("request_id", t.requestID).Err(err).Msg("encoding the request failed")
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "the request's fields are too large to send")
	}
	telemetry.Step(ctx, telemetry.StepEncoded)
	m, cerr := d.traced(ctx, t, replyTo, w, wait)
	if cerr != nil {
		return nil, cerr
	}
	if err := contracts.DecodeReply(contracts.Wire{Header: contracts.HeaderValue(m.Header[contracts.HeaderReply]), Body: m.Data}, reply); err != nil {
		return nil, d.unreadable(t.requestID, err)
	}
	telemetry.Step(ctx, telemetry.StepReplyDecoded)
	if rh := reply.Reply(); rh.RequestID != t.requestID {
		return nil, d.unreadable(t.requestID, errors.New("reply for another request"))
	} else if rh.Error != nil {
		return nil, rh.Error
	}
	return reply.Payload(), nil
}

// traced is exchange inside the round trip's span and metrics.
func (d *Dispatcher) traced(ctx context.Context, t trip, replyTo string, w contracts.Wire, wait time.Duration) (*nats.Msg, *contracts.Error) {
	sub, _ := contracts.ParseSubject(t.subject)
	ctx, span := d.tracer.Start(ctx, dispatchSpanName(sub.Kind), trace.SpanKindClient)
	start := time.Now()
	m, result, cerr := d.exchange(ctx, t.subject, t.requestID, replyTo, w, wait, t.sink)
	d.metrics.RoundTrip(string(sub.Kind), sub.Server, result, time.Since(start))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", t.subject),
			attribute.String("toolbus.request_id", t.requestID),
			attribute.String("toolbus.round_trip", result),
		)
		if cerr != nil {
			span.SetAttributes(attribute.String("toolbus.error_code", string(cerr.Code)))
			span.SetStatus(codes.Error, string(cerr.Code))
		}
		span.End()
	}
	return m, cerr
}

// dispatchSpanName names the round trip's span, without allocating.
func dispatchSpanName(kind contracts.SubjectKind) string {
	switch kind {
	case contracts.SubjectCall:
		return "toolbus.dispatch call"
	case contracts.SubjectList:
		return "toolbus.dispatch list"
	case contracts.SubjectRPC:
		return "toolbus.dispatch rpc"
	default:
		return "toolbus.dispatch"
	}
}

// exchange publishes the request w (its header value in
// contracts.HeaderRequest, its body as the message's data, next to the
// trace context) with replyTo as its reply subject, and waits for the
// answer, handing the call's events to sink meanwhile; result says how the
// round trip ended (a metrics.Result value).
func (d *Dispatcher) exchange(ctx context.Context, subject, requestID, replyTo string, w contracts.Wire, wait time.Duration, sink eventSink) (*nats.Msg, string, *contracts.Error) {
	wt := getWaiter()
	defer putWaiter(wt)
	d.mu.Lock()
	d.pending[requestID] = wt.ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, requestID)
		d.mu.Unlock()
	}()

	wt.value[0] = w.Header
	wt.header[contracts.HeaderRequest] = wt.value[:]
	out := &nats.Msg{Subject: subject, Reply: replyTo, Data: w.Body, Header: telemetry.InjectNATS(ctx, wt.header)}
	if err := d.nc.PublishMsg(out); err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return nil, metrics.ResultUnavailable, contracts.NewError(contracts.CodeRequestTooLarge, "the request exceeds the bus's message size limit")
		}
		return nil, metrics.ResultUnavailable, contracts.NewError(contracts.CodeNoWorkers, "the message bus is unavailable")
	}
	telemetry.Step(ctx, telemetry.StepPublished)
	timeout := wt.start(wait)
	var events <-chan *nats.Msg
	if sink.events != nil && sink.fn != nil {
		events = sink.events.ch
	}
	for {
		select {
		case m := <-wt.ch:
			if isNoResponders(m) {
				return nil, metrics.ResultNoWorkers, contracts.NewError(contracts.CodeNoWorkers, "no worker serves this server right now")
			}
			return m, metrics.ResultReply, nil
		case m := <-events:
			if ev := sink.events.Decode(m); ev != nil {
				sink.fn(ev)
			}
		case <-timeout:
			return nil, metrics.ResultTimeout, contracts.NewError(contracts.CodeTimeout, "no answer from a worker within %s", wait.Round(time.Millisecond))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, metrics.ResultCancelled, contracts.NewError(contracts.CodeTimeout, "the request's deadline passed")
			}
			return nil, metrics.ResultCancelled, contracts.NewError(contracts.CodeTimeout, "the caller went away")
		}
	}
}

// waiter is what a round trip waits with, reused from one round trip to
// the next (waiters): its reply channel, the timer that bounds the wait,
// and its request's NATS header. Nothing of it outlives the round trip:
// deliver sends to the channel only while it is in pending, and NATS has
// copied the header into its buffer once PublishMsg returns.
type waiter struct {
	ch     chan *nats.Msg
	timer  *time.Timer
	header nats.Header
	value  [1]string
}

var waiters = sync.Pool{New: func() any {
	return &waiter{ch: make(chan *nats.Msg, 1), header: make(nats.Header, 3)}
}}

func getWaiter() *waiter { return waiters.Get().(*waiter) }

// putWaiter readies wt for another round trip: its timer stopped, its
// channel emptied (a reply that came too late), its header cleared.
func putWaiter(wt *waiter) {
	if wt.timer != nil && !wt.timer.Stop() {
		select { // a timer channel of Go before 1.23 (asynctimerchan=1)
		case <-wt.timer.C:
		default:
		}
	}
	select {
	case <-wt.ch:
	default:
	}
	clear(wt.header)
	wt.value[0] = ""
	waiters.Put(wt)
}

// start starts wt's timer for d and returns its channel.
func (wt *waiter) start(d time.Duration) <-chan time.Time {
	if wt.timer == nil {
		wt.timer = time.NewTimer(d)
	} else {
		wt.timer.Reset(d)
	}
	return wt.timer.C
}

// isNoResponders recognises the server's "503 no responders" status message,
// sent at once when nothing subscribes to the subject.
func isNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") == "503"
}

// NewRequestID returns a unique request id.
func NewRequestID() string { return nuid.Next() }
