// Package dispatch sends tool calls and tool lists to the workers over NATS
// request-reply and waits for their answers.
//
// It keeps its own reply inbox: one wildcard subscription per connection and
// a reply subject per request, chosen before the user's token is sealed, so
// that the seal binds the reply subject too and a captured request cannot be
// replayed with its answer sent elsewhere.
//
// For the MCP endpoint it also relays other MCP requests (RPC, on
// contracts.RPCSubject), subscribes a call's progress and log events for the
// life of its request (OpenEvents, below the same inbox), and announces the
// cancellation of a call (CancelCall, on contracts.CancelSubject).
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
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
	pending map[string]chan *nats.Msg
}

// New subscribes the reply inbox on nc. sealer may be nil only if no request
// will ever carry a token (it is an error to send one then).
func New(nc *nats.Conn, sealer *contracts.Sealer, log zerolog.Logger) (*Dispatcher, error) {
	d := &Dispatcher{
		nc: nc, sealer: sealer, log: log, now: time.Now,
		inbox:   nats.NewInbox(),
		pending: make(map[string]chan *nats.Msg),
	}
	sub, err := nc.Subscribe(d.inbox+".*", d.deliver)
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
	id := m.Subject[len(d.inbox)+1:]
	d.mu.Lock()
	ch, ok := d.pending[id]
	d.mu.Unlock()
	if ok {
		select {
		case ch <- m:
		default: // a duplicate reply; the first one won
		}
	}
}

// Call is one tools/call.
type Call struct {
	KeyID     string
	Server    string
	Tool      string
	Arguments json.RawMessage
	Token     contracts.Token
	Timeout   time.Duration
	// EventsTo, if set, asks the worker to publish the upstream's progress
	// and log notifications there (see OpenEvents); the seal binds it.
	EventsTo string
	// ClientRequests are the requests (contracts.ClientRequestMethods) the
	// caller's MCP client answers during the call; they arrive as events
	// and the answers go back with Answer. Needs EventsTo.
	ClientRequests []string
}

// call is one attempt of Call (retry.go).
func (d *Dispatcher) call(ctx context.Context, requestID string, c Call) (json.RawMessage, *contracts.Error) {
	wait := c.Timeout + replyGrace
	req := contracts.CallRequest{
		Type: contracts.TypeCallRequest, RequestID: requestID, Server: c.Server, Tool: c.Tool,
		Arguments: c.Arguments, KeyID: c.KeyID, TimeoutMS: c.Timeout.Milliseconds(),
		EventsTo: c.EventsTo, ClientRequests: c.ClientRequests, ExpiresUnixMS: d.expires(wait),
	}
	var cerr *contracts.Error
	if req.Token, req.TokenFP, cerr = d.sealFor(c.Token, req.Binding(d.replySubject(requestID))); cerr != nil {
		return nil, cerr
	}
	m, cerr := d.roundTrip(ctx, contracts.CallSubject(c.Server), requestID, &req, wait)
	if cerr != nil {
		return nil, cerr
	}
	resp, err := contracts.DecodeCallResponse(m.Data)
	if err != nil {
		return nil, d.unreadable(requestID, err)
	}
	return d.outcome(requestID, resp.RequestID, resp.Result, resp.Error)
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
	wait := l.Timeout + replyGrace
	req := contracts.ListRequest{
		Type: contracts.TypeListRequest, RequestID: requestID, Server: l.Server,
		KeyID: l.KeyID, TimeoutMS: l.Timeout.Milliseconds(), ExpiresUnixMS: d.expires(wait),
	}
	var cerr *contracts.Error
	if req.Token, req.TokenFP, cerr = d.sealFor(l.Token, req.Binding(d.replySubject(requestID))); cerr != nil {
		return nil, cerr
	}
	m, cerr := d.roundTrip(ctx, contracts.ListSubject(l.Server), requestID, &req, wait)
	if cerr != nil {
		return nil, cerr
	}
	resp, err := contracts.DecodeListResponse(m.Data)
	if err != nil {
		return nil, d.unreadable(requestID, err)
	}
	return d.outcome(requestID, resp.RequestID, resp.Tools, resp.Error)
}

// expires is a request's seal expiry: the ingress's wait plus clock skew.
func (d *Dispatcher) expires(wait time.Duration) int64 {
	return d.now().Add(wait + clockSkew).UnixMilli()
}

// sealFor seals token to b; no token seals nothing.
func (d *Dispatcher) sealFor(token contracts.Token, b contracts.Binding) (*contracts.Sealed, string, *contracts.Error) {
	if token.IsZero() {
		return nil, "", nil
	}
	sealed, err := d.seal(token, b)
	if err != nil {
		return nil, "", err
	}
	return sealed, token.Fingerprint(), nil
}

// outcome checks a decoded reply answers requestID and returns its result
// or its error.
func (d *Dispatcher) outcome(requestID, answered string, result json.RawMessage, e *contracts.Error) (json.RawMessage, *contracts.Error) {
	if answered != requestID {
		return nil, d.unreadable(requestID, errors.New("reply for another request"))
	}
	if e != nil {
		return nil, e
	}
	return result, nil
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
	sealed, err := d.sealer.Seal(token.Reveal(), b)
	if err != nil {
		d.log.Error().Err(err).Msg("sealing failed")
		return nil, contracts.NewError(contracts.CodeInternal, "sealing the credential failed")
	}
	return sealed, nil
}

// roundTrip publishes msg on subject with the request's reply subject and
// waits up to wait (and ctx) for the answer.
func (d *Dispatcher) roundTrip(ctx context.Context, subject, requestID string, msg any, wait time.Duration) (*nats.Msg, *contracts.Error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, contracts.NewError(contracts.CodeInternal, "encoding the request failed")
	}
	ch := make(chan *nats.Msg, 1)
	d.mu.Lock()
	d.pending[requestID] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, requestID)
		d.mu.Unlock()
	}()

	if err := d.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: d.replySubject(requestID), Data: data}); err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return nil, contracts.NewError(contracts.CodeRequestTooLarge, "the request exceeds the bus's message size limit")
		}
		return nil, contracts.NewError(contracts.CodeNoWorkers, "the message bus is unavailable")
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case m := <-ch:
		if isNoResponders(m) {
			return nil, contracts.NewError(contracts.CodeNoWorkers, "no worker serves this server right now")
		}
		return m, nil
	case <-timer.C:
		return nil, contracts.NewError(contracts.CodeTimeout, "no answer from a worker within %s", wait.Round(time.Millisecond))
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, contracts.NewError(contracts.CodeTimeout, "the request's deadline passed")
		}
		return nil, contracts.NewError(contracts.CodeTimeout, "the caller went away")
	}
}

// isNoResponders recognises the server's "503 no responders" status message,
// sent at once when nothing subscribes to the subject.
func isNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") == "503"
}

// NewRequestID returns a unique request id.
func NewRequestID() string { return nuid.Next() }
