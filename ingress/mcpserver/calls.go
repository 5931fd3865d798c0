package mcpserver

import (
	"bytes"
	"encoding/json"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// callParams are the params of tools/call.
type callParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	// Task asks for the call to run as a task (MCP 2025-11-25).
	Task json.RawMessage `json:"task"`
	Meta *callMeta       `json:"_meta"`
}

// callMeta is the _meta of tools/call's params.
type callMeta struct {
	ProgressToken json.RawMessage `json:"progressToken"`
}

// read reads the params object obj - valid JSON, scanned as the value of
// members[parent] (which starts at base in the message) in a scan that was
// not Aliased, so that its keys are plain ASCII without escapes - into p,
// as encoding/json would; the arguments are skipped by their scanned span.
// It reports false, p partly filled, when obj holds what it leaves to
// encoding/json: a key matching a field in other letter case, a name or
// _meta repeated, a name that is not a string without escapes in valid
// UTF-8, a _meta that is not an object of plain keys.
func (p *callParams) read(obj []byte, base int, members []contracts.JSONMember, parent int) bool {
	var seen uint8
	ok := true
	scanned := func(start int) int { return scannedEnd(members, parent, start, base) }
	contracts.EachJSONMember(obj, scanned, func(key, v []byte) bool {
		var bit uint8
		switch string(key) {
		case "name":
			p.Name, ok = plainString(v)
			bit = 1
		case "arguments":
			p.Arguments = v
		case "task":
			p.Task = v
		case "_meta":
			ok, bit = p.readMeta(v), 2
		default:
			ok = !foldsTo(key, "name", "arguments", "task", "_meta")
		}
		if seen&bit != 0 {
			ok = false
		}
		seen |= bit
		return ok
	})
	return ok
}

// readMeta reads the _meta value v (valid JSON, not scanned: its keys may
// have escapes) into p.Meta: null, or an object whose keys are plain ASCII
// without escapes and name progressToken at most once (false otherwise).
func (p *callParams) readMeta(v []byte) bool {
	if string(v) == "null" {
		return true
	}
	p.Meta = &callMeta{}
	seen, ok := false, true
	isObject := contracts.EachJSONMember(v, nil, func(key, value []byte) bool {
		for _, c := range key {
			if c >= 0x80 || c == '\\' {
				ok = false
				return false
			}
		}
		switch {
		case string(key) == "progressToken":
			ok = !seen
			p.Meta.ProgressToken, seen = value, true
		case foldsTo(key, "progressToken"):
			ok = false
		}
		return ok
	})
	return isObject && ok
}

// callTool answers tools/call: a synchronous call through a worker, with
// the upstream's progress and log notifications relayed while it runs, or a
// task (a durable job) when params.task is set.
func (x *exchange) callTool(m *message) answer {
	p, scanned, e := m.toolCallParams()
	if e != nil {
		return answer{err: e}
	}
	if p.Name == "" {
		return answer{err: newRPCError(codeInvalidParams, "tools/call needs a tool name")}
	}
	args := bytes.TrimSpace(p.Arguments)
	switch {
	case len(args) == 0 || string(args) == "null":
		args, scanned = []byte("{}"), nil
	case args[0] != '{':
		return answer{err: newRPCError(codeInvalidParams, "arguments must be an object")}
	}
	resolved, cerr := x.s.policy.ResolveCall(requestCtx(x.c), x.caller, frontdoor.CallInput{
		Server: x.endpointName(), Within: x.within, Name: p.Name, Naming: frontdoor.Prefixed, Arguments: args,
		Scanned: scanned,
	})
	if cerr != nil {
		return answer{err: wireError(cerr, m.Method)}
	}
	x.record().Record(resolved)
	if t := bytes.TrimSpace(p.Task); len(t) > 0 && string(t) != "null" {
		return x.createTask(m, resolved, args)
	}
	srv, call := resolved.Server, resolved.Dispatch(args)

	id, release := x.s.acquireID(x.callID(m.ID))
	defer release()
	var progressToken json.RawMessage
	if p.Meta != nil && validID(p.Meta.ProgressToken) {
		progressToken = p.Meta.ProgressToken
	}
	relay := func(ev *contracts.CallEvent) { x.relayEvent(ev, progressToken, srv.Name, id) }
	var events *dispatch.Events
	if x.emit != nil {
		ev, err := x.s.d.OpenEvents(id)
		if err != nil {
			x.s.log.Warn().Err(err).Msg("call events not subscribed; the call runs without them")
		} else {
			defer ev.Close()
			events, call.EventsTo = ev, ev.Subject
			call.Events, call.OnEvent = ev, relay // relayed on this goroutine while Call waits
			call.ClientRequests = sessionClientRequests(x.session)
		}
	}

	ctx := requestCtx(x.c)
	result, cerr := x.s.d.Call(ctx, id, call)
	if events != nil {
		for _, ev := range events.Pending() {
			relay(ev)
		}
	}
	if ctx.Err() != nil {
		// The client went away: its answer can no longer be delivered (the
		// endpoint does not resume streams), so the upstream call is
		// cancelled rather than left running.
		_ = x.s.d.CancelCall(id)
	}
	if cerr != nil {
		return x.toolFailure(cerr, m.Method)
	}
	return answer{result: result}
}

// relayEvent sends an event of the call requestID on server to the client:
// progress as notifications/progress with the client's token (only if it
// gave one), upstream log messages as notifications/message, the
// upstream's requests as requests (see relayClientRequest).
func (x *exchange) relayEvent(ev *contracts.CallEvent, progressToken json.RawMessage, server, requestID string) {
	switch {
	case ev.Request != nil:
		x.relayClientRequest(server, requestID, ev.Request)
	case ev.Progress != nil && progressToken != nil:
		params := map[string]any{"progressToken": progressToken, "progress": ev.Progress.Progress}
		if ev.Progress.Total != nil {
			params["total"] = *ev.Progress.Total
		}
		if ev.Progress.Message != "" {
			params["message"] = ev.Progress.Message
		}
		x.emit(encodeNotification("notifications/progress", params))
	case len(ev.Log) > 0 && ev.Log[0] == '{':
		x.emit(encodeNotification("notifications/message", ev.Log))
	}
}

// toolFailure is the answer for a failed tool call. Protocol errors (an
// unknown or forbidden tool, invalid arguments) are JSON-RPC errors; the
// upstream refusing the user's credential is, on a per-server endpoint, an
// HTTP 401 with its WWW-Authenticate challenge (while nothing was streamed
// yet); every other failure (the upstream failed, timed out, no worker,
// overloaded, cancelled; on /mcp, refused the credential) is a tool result
// with isError set, so that the model sees it, with the toolbus error in
// _meta.
func (x *exchange) toolFailure(e *contracts.Error, method string) answer {
	switch e.Code {
	case contracts.CodeInvalidRequest, contracts.CodeUnknownTool, contracts.CodeForbidden, contracts.CodeForbiddenParam,
		contracts.CodeUnknownServer, contracts.CodeRequestTooLarge:
		return answer{err: wireError(e, method)}
	case contracts.CodeUpstreamUnauthorized:
		if x.only != nil {
			return x.failure(e, method)
		}
		// On the aggregated endpoint one server refusing the user's
		// credential must not look like the whole endpoint refusing it: a
		// tool error, with the challenge in _meta.
	}
	return answer{result: errorResult(e)}
}

// errorResult is a CallToolResult that reports e.
func errorResult(e *contracts.Error) json.RawMessage {
	out, _ := json.Marshal(map[string]any{
		"content": []map[string]string{{"type": "text", "text": "toolbus: " + string(e.Code) + ": " + e.Message}},
		"isError": true,
		"_meta":   map[string]any{"io.toolbus/error": e},
	})
	return out
}
