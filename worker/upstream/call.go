package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// CallTool calls tool on srv with args (a JSON object, or empty for none)
// and returns the MCP CallToolResult. A result with isError set is a result,
// not an error. token is sent as the Authorization header (or the stdio
// server's auth_env variable) when srv passes credentials through, and never
// otherwise. Errors are *Error. ctx bounds the call; when it ends, the call
// is cancelled upstream (stdio: notifications/cancelled; HTTP: the request is
// aborted). See WithProgress and WithLogs for the upstream's notifications.
func (p *Pool) CallTool(ctx context.Context, srv *config.Server, token contracts.Token, tool string, args json.RawMessage, opts ...CallOption) (json.RawMessage, error) {
	o := applyCallOptions(opts)
	var caps ClientCaps
	if o.clientRequests != nil {
		caps = o.caps
	}
	var out json.RawMessage
	err := p.do(ctx, srv, token, caps, func(ctx context.Context, e *entry) error {
		var progressToken string
		if o.progress != nil {
			var unregister func()
			progressToken, unregister = e.progress.register(o.progress)
			defer unregister()
		}
		if o.logs != nil {
			defer e.progress.registerLogs(o.logs)()
		}
		if caps != 0 {
			var unregister func()
			ctx, unregister = e.clientReqs.register(ctx, o.clientRequests)
			defer unregister()
		}
		if srv.Transport == config.TransportHTTP && !mcp.IsModernProtocol(e.protocol) {
			res, err := callRaw(ctx, e, tool, args, progressToken)
			out = res
			return err
		}
		// A fresh request: mcp-go drops the headers of one with Method set.
		var req mcp.CallToolRequest
		req.Params.Name = tool
		if len(args) > 0 {
			req.Params.Arguments = args
		}
		if progressToken != "" {
			req.Params.Meta = &mcp.Meta{ProgressToken: progressToken}
		}
		res, err := e.c.CallTool(ctx, req)
		if err != nil {
			return err
		}
		out, err = json.Marshal(res)
		return err
	})
	return out, err
}

// rawCallSeq numbers the requests callRaw sends: string ids, which cannot
// collide with the mcp-go client's own numeric ones on the same session.
var rawCallSeq atomic.Uint64

// callRaw sends a tools/call on e's streamable HTTP transport itself and
// returns the result object exactly as the upstream sent it. mcp-go's
// client would decode it into a CallToolResult for toolbus to encode again
// (two JSON passes per call, which also reorder it and add fields); on a
// 2025-11-25 session the client adds nothing else to the request. The
// transport still carries the session, the credential, the progress and
// log notifications and the upstream's requests to the client, and an
// ended context still aborts the request. The params are spliced into the
// request by the pool's RoundTripper, and a JSON answer is read there in
// one pass (fastcall.go), so the arguments and the result are each scanned
// once.
func callRaw(ctx context.Context, e *entry, tool string, args json.RawMessage, progressToken string) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, transport.NewError(err)
	}
	// The fast call lives in the call attempt's scope (do); a context
	// without one gets a scope of its own, keeping what it carried.
	fc := scopeOf(ctx).fc
	if fc == nil || fc.ready {
		sc := scopeOf(ctx)
		sc.fc = new(fastCall)
		ctx, fc = withScope(ctx, &sc), sc.fc
	}
	var id [32]byte
	req, err := fc.prepare(string(strconv.AppendUint(append(id[:0], "toolbus-"...), rawCallSeq.Add(1), 10)), tool, args, progressToken)
	if err != nil {
		return nil, transport.NewError(err)
	}
	resp, err := e.c.GetTransport().SendRequest(ctx, req)
	if err != nil {
		return nil, transport.NewError(err)
	}
	if resp.Error != nil {
		return nil, resp.Error.AsError()
	}
	if !fc.sent {
		// The transport answered without sending it: never the case.
		return nil, errors.New("the tools/call request was not sent")
	}
	result := resp.Result
	if fc.result != nil {
		// The answer was read in one pass (fastcall.go): resp has {}.
		result = fc.result
	}
	if trimmed := bytes.TrimSpace(result); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("the tools/call result is not a JSON object")
	}
	return result, nil
}

// appendCallParams appends the params object of a tools/call, as mcp-go's
// CallToolParams encodes it (name, arguments when there are any, the
// progress token in _meta when there is one), built around the arguments'
// bytes, to b. The arguments go in as they are (fastcall.go checks them
// once, with contracts.ScanJSON); CallToolParams would have them checked
// three times, and copied as often.
func appendCallParams(b []byte, tool string, args json.RawMessage, progressToken string) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, tool)
	if len(args) > 0 {
		b = append(b, `,"arguments":`...)
		b = append(b, args...)
	}
	if progressToken != "" {
		b = append(b, `,"_meta":{"progressToken":`...)
		b = appendJSONString(b, progressToken)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ListTools returns srv's tools, as a JSON array of MCP Tool objects, that
// srv's allowed_tools and disallowed_tools let through. Credentials and
// errors are as for CallTool.
func (p *Pool) ListTools(ctx context.Context, srv *config.Server, token contracts.Token) (json.RawMessage, error) {
	var out json.RawMessage
	err := p.do(ctx, srv, token, 0, func(ctx context.Context, e *entry) error {
		res, err := e.c.ListTools(ctx, mcp.ListToolsRequest{})
		if err != nil {
			return err
		}
		tools := make([]mcp.Tool, 0, len(res.Tools))
		for _, t := range res.Tools {
			if srv.ToolAllowed(t.Name) {
				tools = append(tools, t)
			}
		}
		out, err = json.Marshal(tools)
		return err
	})
	return out, err
}

// do runs fn with the pooled client of (srv, token). When the upstream has
// ended the client's session (404), the client is replaced and fn runs once
// more: the request was refused, not executed.
func (p *Pool) do(ctx context.Context, srv *config.Server, token contracts.Token, caps ClientCaps, fn func(context.Context, *entry) error) error {
	cred := credential(srv, token)
	for attempt := 1; ; attempt++ {
		e, err := p.acquire(ctx, srv, cred, caps)
		if err != nil {
			return err
		}
		sc := newCallScope(srv.MaxResultBytes)
		ch, lim := sc.scope.ch, sc.scope.lim
		err = fn(withScope(ctx, &sc.scope), e)
		if err == nil {
			if e.borrowed() && !e.answered.Load() {
				e.answered.Store(true)
			}
			p.release(e)
			return nil
		}
		if lim.exceeded() || e.limit.exceeded() {
			// The answer was cut at max_result_bytes: the session is
			// fine (an SSE stream that was cut has already left the pool).
			p.release(e)
			return p.upstreamError(srv, errResultTooLarge, "")
		}
		status := ch.status.Load()
		refused := false // the request was refused unread, not executed
		switch {
		case e.borrowed() && contextErr(ctx) == nil && !isAuthRequired(err) &&
			(!e.answered.Load() || status == http.StatusBadRequest || status == http.StatusNotFound):
			// A client that took its handshake from another's (it skipped
			// it, see stateless, or reused a server/discover result, see
			// discovered) failed its first call for a reason other than
			// its credential or the caller's deadline, or was refused later
			// (the server may have changed): perhaps the server wants a
			// handshake of its own. The next new client makes one and
			// learns again; after a request the server refused (400, 404),
			// which is sent once more that way, every client makes one.
			refused = status == http.StatusBadRequest || status == http.StatusNotFound
			p.forgetBorrowed(srv, e, refused)
			p.discard(e)
		case unusable(err):
			p.discard(e)
		}
		p.release(e)
		if attempt == 1 && ctx.Err() == nil && (refused || errors.Is(err, transport.ErrSessionTerminated)) {
			continue
		}
		return p.upstreamError(srv, withContextErr(ctx, p.exchangeRefusal(srv, cred, p.serviceRefusal(srv, err))), ch.get())
	}
}

// unusable reports whether a client that failed with err must not be used
// again: its session is gone, its credential was refused, or its transport
// (a stdio process, an SSE stream) has ended.
func unusable(err error) bool {
	return errors.Is(err, transport.ErrSessionTerminated) ||
		isAuthRequired(err) ||
		errors.Is(err, transport.ErrTransportClosed) ||
		isUnreachable(err) && !errors.Is(err, context.DeadlineExceeded)
}

// withContextErr adds ctx's error (see contextErr) to err, so that Classify
// reports the timeout.
func withContextErr(ctx context.Context, err error) error {
	ctxErr := contextErr(ctx)
	if ctxErr == nil || errors.Is(err, ctxErr) {
		return err
	}
	return errors.Join(ctxErr, err)
}

// contextErr is ctx.Err(), or DeadlineExceeded when ctx's deadline has passed
// but its timer has yet to fire (mcp-go's SSE transport races its own timer
// against the deadline).
func contextErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}
