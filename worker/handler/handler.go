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

// Handler turns one request message into one reply message. It is safe for
// concurrent use.
type Handler struct {
	file      *config.File
	opener    *contracts.Opener
	replay    *contracts.ReplayGuard
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
		file: c.File, opener: c.Opener, replay: c.Replay, up: c.Upstream, log: c.Logger, now: c.Now,
		publish: c.Publish, subscribe: c.Subscribe, running: newRunning(),
		metrics: c.Metrics, tracer: c.Tracer,
	}
}

// maxLoggedFP bounds a token fingerprint taken from a message for logging.
const maxLoggedFP = 32

// outcome is what one request's log line reports.
type outcome struct {
	op, requestID, keyID, server, tool, tokenFP string
	start                                       time.Time
	err                                         *contracts.Error
	reason                                      string // why, for logs only (never a secret)
}

func (h *Handler) logOutcome(o *outcome) {
	ev := h.log.Info()
	status := "ok"
	if o.err != nil {
		status = string(o.err.Code)
		ev = h.log.Warn()
		if o.err.Code == contracts.CodeUnknownTool || o.err.Code == contracts.CodeUpstreamUnauthorized || o.err.Code == contracts.CodeForbidden {
			ev = h.log.Info()
		}
	}
	if len(o.tokenFP) > maxLoggedFP {
		o.tokenFP = o.tokenFP[:maxLoggedFP]
	}
	if o.err != nil {
		h.metrics.Request(o.op, o.server, o.tool, string(o.err.Code))
	} else {
		h.metrics.Request(o.op, o.server, o.tool, "")
	}
	ev = ev.Str("op", o.op).
		Str("request_id", o.requestID).
		Str("key_id", o.keyID).
		Str("server", o.server).
		Str("tool", o.tool).
		Str("status", status).
		Float64("duration_ms", float64(h.now().Sub(o.start).Microseconds())/1000).
		Str("token_fp", o.tokenFP)
	if o.reason != "" {
		ev = ev.Str("reason", o.reason)
	}
	ev.Msg("request")
}

// HandleCall handles a CallRequest received on subject with reply subject
// reply, and returns the encoded CallResponse, or nil when the message is too
// malformed to answer (no request id). ctx bounds the call further.
func (h *Handler) HandleCall(ctx context.Context, subject, reply string, data []byte) []byte {
	o := &outcome{op: contracts.OpCall, start: h.now()}
	defer h.logOutcome(o)
	subjectServer, subjectOK := contracts.ServerFromCallSubject(subject)
	o.server = subjectServer

	req, err := contracts.DecodeCallRequest(data)
	if err != nil {
		o.requestID = salvageRequestID(data)
		o.err, o.reason = contracts.NewError(contracts.CodeInvalidRequest, "malformed call request"), clip(err.Error())
		if o.requestID == "" {
			return nil
		}
		return encodeCall(o.requestID, nil, o.err)
	}
	o.requestID, o.keyID, o.tool, o.tokenFP = req.RequestID, req.KeyID, req.Tool, req.TokenFP

	// A cancellation announced on contracts.CancelSubject(request id) ends
	// the call (see Cancel).
	ctx, cancelCall := context.WithCancelCause(ctx)
	defer cancelCall(nil)
	defer h.running.add(req.RequestID, cancelCall)()
	result, e := h.call(ctx, o, req, subjectServer, subjectOK, reply)
	o.err = e
	return encodeCall(req.RequestID, result, e)
}

func (h *Handler) call(ctx context.Context, o *outcome, req *contracts.CallRequest, subjectServer string, subjectOK bool, reply string) (_ json.RawMessage, e *contracts.Error) {
	srv, e := h.server(o, req.Server, subjectServer, subjectOK, req.Token != nil)
	if e != nil {
		return nil, e
	}
	if !srv.ToolAllowed(req.Tool) {
		return nil, contracts.NewError(contracts.CodeForbidden, "tool %q is not allowed on server %q", req.Tool, srv.Name)
	}
	token, e := h.open(o, srv, req.Token, req.Binding(reply), req.Expires())
	if e != nil {
		return nil, e
	}
	ctx, cancel := context.WithTimeout(ctx, boundTimeout(req.Timeout(), srv))
	defer cancel()
	ctx, obs := h.metrics.StartUpstream(ctx, h.tracer, contracts.OpCall, srv.Name, req.Tool)
	defer func() { obs.End(e) }()
	result, err := h.up.CallTool(ctx, srv, token, req.Tool, req.Arguments, h.eventOptions(req, token)...)
	if cause := context.Cause(ctx); errors.Is(cause, ErrCallCancelled) && err != nil {
		o.reason = "cancelled by the caller"
		return nil, contracts.NewError(contracts.CodeCancelled, "the call was cancelled by its caller")
	}
	if err != nil {
		return nil, h.upstreamError(o, err)
	}
	return result, nil
}

// HandleList handles a ListRequest as HandleCall handles a CallRequest, and
// returns the encoded ListResponse (or nil).
func (h *Handler) HandleList(ctx context.Context, subject, reply string, data []byte) []byte {
	o := &outcome{op: contracts.OpList, start: h.now()}
	defer h.logOutcome(o)
	subjectServer, subjectOK := contracts.ServerFromListSubject(subject)
	o.server = subjectServer

	req, err := contracts.DecodeListRequest(data)
	if err != nil {
		o.requestID = salvageRequestID(data)
		o.err, o.reason = contracts.NewError(contracts.CodeInvalidRequest, "malformed list request"), clip(err.Error())
		if o.requestID == "" {
			return nil
		}
		return encodeList(o.requestID, nil, o.err)
	}
	o.requestID, o.keyID, o.tokenFP = req.RequestID, req.KeyID, req.TokenFP

	tools, e := h.list(ctx, o, req, subjectServer, subjectOK, reply)
	o.err = e
	return encodeList(req.RequestID, tools, e)
}

func (h *Handler) list(ctx context.Context, o *outcome, req *contracts.ListRequest, subjectServer string, subjectOK bool, reply string) (_ json.RawMessage, e *contracts.Error) {
	srv, e := h.server(o, req.Server, subjectServer, subjectOK, req.Token != nil)
	if e != nil {
		return nil, e
	}
	token, e := h.open(o, srv, req.Token, req.Binding(reply), req.Expires())
	if e != nil {
		return nil, e
	}
	ctx, cancel := context.WithTimeout(ctx, boundTimeout(req.Timeout(), srv))
	defer cancel()
	ctx, obs := h.metrics.StartUpstream(ctx, h.tracer, contracts.OpList, srv.Name, "")
	defer func() { obs.End(e) }()
	tools, err := h.up.ListTools(ctx, srv, token)
	if err != nil {
		return nil, h.upstreamError(o, err)
	}
	return tools, nil
}

// server resolves the server a request addresses. The subject decides: a
// message whose server field names another server was moved to this subject
// (or forged), which with a sealed token is an attempt to redirect it.
func (h *Handler) server(o *outcome, reqServer, subjectServer string, subjectOK, sealed bool) (*config.Server, *contracts.Error) {
	if !subjectOK || reqServer != subjectServer {
		o.server = reqServer
		o.reason = "server field does not match the subject"
		if sealed {
			h.metrics.SealFailed(reqServer, o.reason)
			return nil, contracts.NewError(contracts.CodeSealInvalid, "sealed token refused: sent on another server's subject")
		}
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "request sent on another server's subject")
	}
	srv := h.file.MCPServers[reqServer]
	if srv == nil {
		return nil, contracts.NewError(contracts.CodeUnknownServer, "no server %q on this worker", reqServer)
	}
	return srv, nil
}

// open returns the user's credential for srv: none for auth none servers
// (the sealed field is not even opened) or requests without one; otherwise
// the opened token, which must match binding, be unexpired and be new to
// this worker.
func (h *Handler) open(o *outcome, srv *config.Server, sealed *contracts.Sealed, binding contracts.Binding, expires time.Time) (contracts.Token, *contracts.Error) {
	if srv.Auth == config.AuthNone || sealed == nil {
		return contracts.Token{}, nil
	}
	now := h.now()
	v, err := h.opener.Open(sealed, binding, now)
	if err == nil {
		err = h.replay.Check(sealed, expires, now)
	}
	if err != nil {
		o.reason = sealReason(err)
		h.metrics.SealFailed(srv.Name, o.reason)
		return contracts.Token{}, contracts.NewError(contracts.CodeSealInvalid, "sealed token refused: %s", o.reason)
	}
	token := contracts.NewToken(v)
	o.tokenFP = token.Fingerprint()
	return token, nil
}

// sealReason names why a sealed token was refused, without detail.
func sealReason(err error) string {
	switch {
	case errors.Is(err, contracts.ErrSealExpired):
		return "expired"
	case errors.Is(err, contracts.ErrSealReplayed):
		return "replayed"
	case errors.Is(err, contracts.ErrSealUnknownKey):
		return "unknown key"
	default:
		return "does not open for this request"
	}
}

func (h *Handler) upstreamError(o *outcome, err error) *contracts.Error {
	var ue *upstream.Error
	if errors.As(err, &ue) {
		o.reason = ue.Detail
		return ue.Wire
	}
	// Not from the pool: report the class only, never err's text.
	o.reason = "unclassified upstream failure"
	return upstream.Classify(err, "")
}

// boundTimeout is the request's timeout within the server's maximum.
func boundTimeout(requested time.Duration, srv *config.Server) time.Duration {
	if limit := srv.MaxTimeout.D(); limit > 0 && requested > limit {
		return limit
	}
	return requested
}

// RejectCall returns a CallResponse carrying e for the request in data, or
// nil when data has no request id to answer to. The pool uses it to refuse
// work it has no room for.
func RejectCall(data []byte, e *contracts.Error) []byte {
	id := salvageRequestID(data)
	if id == "" {
		return nil
	}
	return encodeCall(id, nil, e)
}

// RejectList is RejectCall for a ListRequest.
func RejectList(data []byte, e *contracts.Error) []byte {
	id := salvageRequestID(data)
	if id == "" {
		return nil
	}
	return encodeList(id, nil, e)
}

// clip bounds a decoding error's text for the log.
func clip(s string) string {
	const maxReason = 200
	if len(s) > maxReason {
		return s[:maxReason]
	}
	return s
}

// maxRequestID matches the contracts limit on request ids.
const maxRequestID = 128

// salvageRequestID returns the request_id of a message that failed to
// decode or validate, if it has a usable one.
func salvageRequestID(data []byte) string {
	var probe struct {
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(data, &probe) != nil || len(probe.RequestID) > maxRequestID {
		return ""
	}
	return probe.RequestID
}

func encodeCall(requestID string, result json.RawMessage, e *contracts.Error) []byte {
	resp := contracts.CallResponse{Type: contracts.TypeCallResponse, RequestID: requestID, Error: e}
	if e == nil {
		resp.Result = result
	}
	return mustEncode(resp, requestID, contracts.TypeCallResponse)
}

func encodeList(requestID string, tools json.RawMessage, e *contracts.Error) []byte {
	resp := contracts.ListResponse{Type: contracts.TypeListResponse, RequestID: requestID, Error: e}
	if e == nil {
		resp.Tools = tools
	}
	return mustEncode(resp, requestID, contracts.TypeListResponse)
}

// mustEncode encodes a response. Only an invalid result from upstream could
// fail; the caller then gets an upstream_error instead.
func mustEncode(v any, requestID, typ string) []byte {
	b, err := json.Marshal(v)
	if err == nil {
		return b
	}
	b, _ = json.Marshal(struct {
		Type      string           `json:"type"`
		RequestID string           `json:"request_id"`
		Error     *contracts.Error `json:"error"`
	}{typ, requestID, contracts.NewError(contracts.CodeUpstreamError, "the MCP server's answer could not be encoded")})
	return b
}
