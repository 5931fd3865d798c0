// Package admit is the worker's one admission of a request, whichever way
// it came - a synchronous tools/call, tools/list or relayed MCP request, or
// an async job: before anything goes upstream, the request must pass, in
// this order,
//
//  1. the subject: it arrived on a subject of its kind for the server its
//     header names. A message whose server field names another server was
//     moved (or forged): with a sealed token that is an attempt to redirect
//     the token (seal_invalid), without one invalid_request.
//  2. the server: it is configured on this worker (unknown_server).
//  3. the tool, for a call or a job: the server allows it (forbidden).
//  4. the seal: for a server that takes anything of the caller's (not
//     auth none), the sealed credential set opens for exactly this request (its binding is rebuilt
//     from the message, never taken from the sealed field), is unexpired,
//     and - with a replay guard - was not seen before by this worker
//     (seal_invalid). Servers with auth none never open it.
//  5. the budget: the request's timeout, bounded by the server's
//     max_timeout.
package admit

import (
	"errors"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	workermetrics "github.com/toolbus/toolbus/worker/metrics"
)

// Admitter admits requests. Safe for concurrent use.
type Admitter struct {
	// File holds the servers (mcp_servers).
	File *config.File
	// Opener opens sealed tokens with the worker's private keys.
	Opener *contracts.Opener
	// Replay rejects a sealed token seen before; nil checks no replay (a
	// redelivered job legitimately opens its token again).
	Replay *contracts.ReplayGuard
	// Metrics, if set, counts sealed tokens refused.
	Metrics *workermetrics.Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Request is what admission looks at.
type Request struct {
	Header *contracts.RequestHeader
	// Kind is the kind of subject the request must arrive on, Subject the
	// one it arrived on.
	Kind    contracts.SubjectKind
	Subject string
	// Tool is the tool a call or job calls; "" checks no tool.
	Tool string
	// Binding is what the request's sealed token must be bound to.
	Binding contracts.Binding
}

// Admitted is a request that passed: its server, the caller's credential
// (zero for none) and its bounded budget.
type Admitted struct {
	Server  *config.Server
	Token   contracts.Token
	Timeout time.Duration
}

// Refusal is why a request did not pass: the error its caller gets, and a
// reason for the worker's log (never a secret).
type Refusal struct {
	Err    *contracts.Error
	Reason string
}

// Admit runs the checks on r, in the order of the package comment.
func (a *Admitter) Admit(r Request) (Admitted, *Refusal) {
	h := r.Header
	if sub, ok := contracts.ParseSubject(r.Subject); !ok || sub.Kind != r.Kind || sub.Server != h.Server {
		const reason = "server field does not match the subject"
		if h.Token != nil {
			a.Metrics.SealFailed(h.Server, reason)
			return Admitted{}, &Refusal{contracts.NewError(contracts.CodeSealInvalid, "sealed token refused: sent on another server's subject"), reason}
		}
		return Admitted{}, &Refusal{contracts.NewError(contracts.CodeInvalidRequest, "request sent on another server's subject"), reason}
	}
	srv := a.File.MCPServers[h.Server]
	if srv == nil {
		return Admitted{}, &Refusal{contracts.NewError(contracts.CodeUnknownServer, "no server %q on this worker", h.Server), "unknown server"}
	}
	if r.Tool != "" && !srv.ToolAllowed(r.Tool) {
		return Admitted{}, &Refusal{contracts.NewError(contracts.CodeForbidden, "tool %q is not allowed on server %q", r.Tool, srv.Name), "tool not allowed"}
	}
	token, refusal := a.open(srv, h, r.Binding)
	if refusal != nil {
		return Admitted{}, refusal
	}
	return Admitted{Server: srv, Token: token, Timeout: BoundTimeout(h.Timeout(), srv)}, nil
}

// open returns the caller's credential set for srv: none for servers with
// auth none (the sealed field is not even opened) or requests without one;
// otherwise the opened set, without Authorization for a server with a
// credential of its own. (The upstream pool checks what goes upstream
// again.)
func (a *Admitter) open(srv *config.Server, h *contracts.RequestHeader, binding contracts.Binding) (contracts.Token, *Refusal) {
	if srv.Auth == config.AuthNone || srv.AuthType == config.AuthTypeNone || h.Token == nil {
		return contracts.Token{}, nil
	}
	now := a.now()
	token, err := a.Opener.Open(h.Token, binding, now)
	if err == nil && a.Replay != nil {
		err = a.Replay.Check(h.Token, h.Expires(), now)
	}
	if err != nil {
		reason := sealReason(err)
		a.Metrics.SealFailed(srv.Name, reason)
		return contracts.Token{}, &Refusal{contracts.NewError(contracts.CodeSealInvalid, "sealed token refused: %s", reason), reason}
	}
	if !srv.ReceivesCaller() {
		// A server with a credential of its own never takes the caller's
		// Authorization, even one sealed for it by a faulty ingress.
		token = token.Without(contracts.HeaderAuthorization)
	}
	return token, nil
}

func (a *Admitter) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
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

// BoundTimeout is a requested timeout within the server's maximum.
func BoundTimeout(requested time.Duration, srv *config.Server) time.Duration {
	if limit := srv.MaxTimeout.D(); limit > 0 && requested > limit {
		return limit
	}
	return requested
}
