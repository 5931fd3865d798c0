package mcpserver

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// request answers one JSON-RPC request.
func (x *exchange) request(m *message) answer {
	switch m.Method {
	case "initialize":
		return x.initialize(m)
	case "ping":
		if x.only == nil {
			return answer{result: json.RawMessage("{}")}
		}
		return x.relay(m)
	case "logging/setLevel":
		// Upstream log messages are relayed as they come; the level is the
		// client's to filter (it is not kept: the endpoint is stateless).
		var p struct {
			Level string `json:"level"`
		}
		if e := asParams(m.Params, &p); e != nil || p.Level == "" {
			return answer{err: newRPCError(codeInvalidParams, "logging/setLevel needs a level")}
		}
		return answer{result: json.RawMessage("{}")}
	case "tools/list":
		return x.listTools(m)
	case "tools/call":
		return x.callTool(m)
	case "tasks/get", "tasks/result", "tasks/list", "tasks/cancel":
		return x.tasks(m)
	case "resources/unsubscribe":
		if x.only != nil {
			return x.unsubscribe(m)
		}
	}
	if contracts.RPCMethodAllowed(m.Method) && x.only != nil {
		return x.relay(m)
	}
	return answer{err: newRPCError(codeMethodNotFound, "method not found: "+clip(m.Method))}
}

// notification handles a client notification: notifications/cancelled
// cancels the named call wherever it runs; others need nothing.
func (x *exchange) notification(m *message) {
	if m.Method != "notifications/cancelled" {
		return
	}
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
	}
	if asParams(m.Params, &p) != nil || !validID(p.RequestID) {
		return
	}
	id := x.callID(p.RequestID)
	if err := x.s.d.CancelCall(id); err != nil {
		x.s.log.Warn().Str("request_id", id).Err(err).Msg("cancellation not published")
	}
}

// initialize answers the handshake: the negotiated version, the
// capabilities of this endpoint and a session id.
func (x *exchange) initialize(m *message) answer {
	var p struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
	}
	_ = asParams(m.Params, &p)
	version := protocolVersions[0]
	if slices.Contains(protocolVersions, p.ProtocolVersion) {
		version = p.ProtocolVersion
	}
	caps := map[string]any{
		"tools":   map[string]any{"listChanged": false},
		"logging": map[string]any{},
	}
	if x.s.jobs != nil {
		caps["tasks"] = map[string]any{
			"list": map[string]any{}, "cancel": map[string]any{},
			"requests": map[string]any{"tools": map[string]any{"call": map[string]any{}}},
		}
	}
	info := map[string]any{"name": ServerName, "version": x.s.version}
	instructions := "toolbus gateway: the tools of every MCP server this key may use, named <server>" + x.s.policy.Separator() + "<tool>."
	if x.only != nil {
		caps["resources"] = map[string]any{"subscribe": true}
		caps["prompts"] = map[string]any{}
		caps["completions"] = map[string]any{}
		info["name"] = ServerName + "/" + x.only.Name
		instructions = "toolbus gateway in front of the MCP server " + x.only.Name + "."
		if x.only.Description != "" {
			instructions += " " + x.only.Description
		}
	}
	result, _ := json.Marshal(map[string]any{
		"protocolVersion": version,
		"capabilities":    caps,
		"serverInfo":      info,
		"instructions":    instructions,
	})
	if x.c.GetHeader(headerSessionID) == "" {
		x.c.Header(headerSessionID, newSessionIDFor(p.Capabilities))
	}
	return answer{result: result}
}

// listTools answers tools/list: the tools of the endpoint's servers that
// the server's filters and the key's allow-list let through, each server's
// list from the workers (cached per server and user), named
// <server>-<tool> on the aggregated endpoint. A server that cannot list
// right now is left out, logged, and named with its error in the result's
// _meta["io.toolbus/failures"] (a 401 with the server's WWW-Authenticate
// challenge, so that a client whose generic Authorization was not sent on
// the fan-out knows to send x-mcp-<server>-authorization); if every one
// fails, the request fails. Every tool may be run as a task.
func (x *exchange) listTools(m *message) answer {
	servers, reach := []*config.Server{x.only}, frontdoor.Targeted
	switch {
	case x.within != nil:
		servers = x.within
		if len(servers) > 1 {
			reach = frontdoor.FanOut
		}
	case x.only == nil:
		servers, _ = x.s.policy.Servers(x.caller, frontdoor.Selection{})
		reach = frontdoor.FanOut
	}
	all := []json.RawMessage{}
	var failed []string
	var failures []listFailure
	listings := x.s.policy.List(requestCtx(x.c), x.caller, servers, reach)
	if x.only == nil {
		failures = x.dropClashes(listings)
	}
	for _, l := range listings {
		if l.Err != nil {
			failed = append(failed, l.Server.Name)
			failures = append(failures, listFailure{Server: l.Server.Name, Error: l.Err})
			x.s.log.Warn().Str("server", l.Server.Name).Str("code", string(l.Err.Code)).Str("key", x.caller.Key.Name).Msg("tools/list: a server could not list")
			if x.only != nil {
				return x.failure(l.Err, m.Method)
			}
			continue
		}
		for _, t := range l.Tools {
			if raw := x.publicTool(l.Server, t); raw != nil {
				all = append(all, raw)
			}
		}
	}
	if len(servers) > 0 && len(failed) == len(servers) {
		e := contracts.NewError(contracts.CodeUpstreamError, "no server could list its tools: %s", strings.Join(failed, ", "))
		return answer{err: wireError(e, m.Method)}
	}
	res := map[string]any{"tools": all}
	if len(failures) > 0 {
		res["_meta"] = map[string]any{"io.toolbus/failures": failures}
	}
	result, _ := json.Marshal(res)
	return answer{result: result}
}

// dropClashes takes out of listings every tool whose aggregated name
// <server><sep><tool> is also another server's tool's (servers pyup and
// pyup-x: pyup's x-secret and pyup-x's secret are both pyup-x-secret), so
// that no name lists two tools; each server that lost one has a failure
// naming the clash (ambiguous_tool). Its tools stay on /<server>/mcp.
func (x *exchange) dropClashes(listings []frontdoor.Listing) []listFailure {
	sep := x.s.policy.Separator()
	owners := map[string][]string{}
	for _, l := range listings {
		for _, t := range l.Tools {
			owners[l.Server.Name+sep+t.Name] = append(owners[l.Server.Name+sep+t.Name], l.Server.Name)
		}
	}
	var failures []listFailure
	for i := range listings {
		l := &listings[i]
		var clashes []string
		l.Tools = slices.DeleteFunc(l.Tools, func(t dispatch.Tool) bool {
			name := l.Server.Name + sep + t.Name
			if len(owners[name]) > 1 {
				clashes = append(clashes, name)
				return true
			}
			return false
		})
		if len(clashes) > 0 {
			failures = append(failures, listFailure{Server: l.Server.Name, Error: contracts.NewError(contracts.CodeAmbiguousTool,
				"left out: %s also names another server's tool here; use /%s/mcp", frontdoor.Clip(strings.Join(clashes, ", ")), l.Server.Name)})
			x.s.log.Warn().Str("server", l.Server.Name).Int("tools", len(clashes)).Msg("tools/list: aggregated names shared by two servers' tools left out")
		}
	}
	return failures
}

// listFailure is a server that could not list on the aggregated
// tools/list, as _meta["io.toolbus/failures"] names it (the REST list's
// failures have the same shape).
type listFailure struct {
	Server string           `json:"server"`
	Error  *contracts.Error `json:"error"`
}

// publicTool is a listed tool as this endpoint shows it: renamed on the
// aggregated endpoint, and runnable as a task.
func (x *exchange) publicTool(srv *config.Server, t dispatch.Tool) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(t.Raw, &obj) != nil {
		return nil
	}
	if x.only == nil || x.s.policy.PerServerPrefixed() {
		name, _ := json.Marshal(x.s.policy.ToolName(srv, t.Name))
		obj["name"] = name
	}
	if x.s.jobs != nil {
		var exec map[string]json.RawMessage
		_ = json.Unmarshal(obj["execution"], &exec)
		if exec == nil {
			exec = map[string]json.RawMessage{}
		}
		if string(exec["taskSupport"]) != `"required"` {
			exec["taskSupport"] = json.RawMessage(`"optional"`)
		}
		obj["execution"], _ = json.Marshal(exec)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	return out
}

// failure is the answer for a toolbus error of a request other than a tool
// call: the upstream refusing the user's credential is an HTTP 401 with its
// challenge (while nothing was sent yet), anything else a JSON-RPC error.
func (x *exchange) failure(e *contracts.Error, method string) answer {
	a := answer{err: wireError(e, method)}
	if e.Code == contracts.CodeUpstreamUnauthorized {
		a.httpErr = e
		if x.only != nil {
			if ch := x.s.challengeFor(x.c, x.only, true); ch != "" {
				own := *e
				own.WWWAuthenticate = ch
				a.httpErr = &own
			}
		}
	}
	return a
}

// relay answers a request of contracts.RPCMethods on a per-server endpoint
// by relaying it to the upstream through a worker.
func (x *exchange) relay(m *message) answer {
	params := m.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	if !isObject(params) {
		return answer{err: newRPCError(codeInvalidParams, "params must be an object")}
	}
	// The check reads names (uri, name, ref), never a prompt's arguments:
	// it decodes the params without them, not them again.
	check := params
	if m.scan != nil && m.params >= 0 {
		check = m.scan.Cut(m.params)
	}
	if e := x.s.policy.CheckRPC(x.caller, x.only, m.Method, check); e != nil {
		return x.failure(e, m.Method)
	}
	if result, ok := x.s.policy.LocalRPC(x.caller, x.only, m.Method); ok {
		return answer{result: result}
	}
	result, err := x.s.d.RPC(requestCtx(x.c), dispatch.NewRequestID(), x.s.policy.RPC(x.caller, x.only, m.Method, params))
	if err != nil {
		return x.failure(err, m.Method)
	}
	return answer{result: x.s.policy.FilterRPC(x.caller, x.only, m.Method, result)}
}

// isObject reports whether params, valid JSON (the message was parsed),
// is an object: what decoding it into a map would accept.
func isObject(params json.RawMessage) bool {
	p := bytes.TrimSpace(params)
	return len(p) > 0 && p[0] == '{'
}

// clip bounds a client-supplied string quoted in an error.
var clip = frontdoor.Clip
