package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/dispatch"
)

const maxToolNameLen = 256

// callBody is the body of POST /mcp/tools/call and /mcp-rest/tools/call:
// the seed's {"name", "arguments"}, LiteLLM's optional server_id (or
// server_name), and toolbus's optional timeout_seconds. Other fields are
// ignored, as LiteLLM clients add their own.
type callBody struct {
	Name      string
	Arguments json.RawMessage
	Server    string
	Timeout   time.Duration
}

// readBody reads the (size-limited) body, mapping the limit to 413.
func readBody(c *gin.Context) ([]byte, *contracts.Error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(c.Request.Body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, contracts.NewError(contracts.CodeRequestTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
		}
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "reading the body failed")
	}
	return buf.Bytes(), nil
}

// decodeCallBody validates the body field by field, naming the field at fault.
func decodeCallBody(data []byte) (*callBody, *contracts.Error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "the body must be a JSON object")
	}
	var b callBody
	raw, ok := fields["name"]
	if !ok {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "field name is required")
	}
	if json.Unmarshal(raw, &b.Name) != nil {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "field name must be a string")
	}
	if b.Name == "" || len(b.Name) > maxToolNameLen {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "field name must be 1 to %d characters", maxToolNameLen)
	}
	switch raw := bytes.TrimSpace(fields["arguments"]); {
	case len(raw) == 0 || string(raw) == "null":
		b.Arguments = json.RawMessage("{}")
	case raw[0] == '{':
		b.Arguments = raw
	default:
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "field arguments must be an object")
	}
	for _, name := range []string{"server_id", "server_name"} {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if json.Unmarshal(raw, &b.Server) != nil {
			return nil, contracts.NewError(contracts.CodeInvalidRequest, "field %s must be a string", name)
		}
		break
	}
	if raw, ok := fields["timeout_seconds"]; ok && string(raw) != "null" {
		var secs float64
		if json.Unmarshal(raw, &secs) != nil || secs <= 0 {
			return nil, contracts.NewError(contracts.CodeInvalidRequest, "field timeout_seconds must be a positive number")
		}
		b.Timeout = time.Duration(secs * float64(time.Second))
	}
	return &b, nil
}

// callPlan is a validated, resolved call, ready to run now or as a job.
type callPlan struct {
	principal *auth.Principal
	server    *config.Server
	tool      string
	body      *callBody
	token     contracts.Token
}

// prepareCall reads, validates and resolves a call; on failure it has
// written the error response and returns nil.
func (a *API) prepareCall(c *gin.Context) *callPlan {
	data, err := readBody(c)
	if err != nil {
		abortWithError(c, err)
		return nil
	}
	body, err := decodeCallBody(data)
	if err != nil {
		abortWithError(c, err)
		return nil
	}
	p := principal(c)
	srv, tool, err := a.resolve(c, p, body)
	if err != nil {
		abortWithError(c, err)
		return nil
	}
	token := userToken(c, srv.Name, srv.Auth == config.AuthNone)
	logField(c, "server", srv.Name)
	logField(c, "tool", tool)
	logField(c, "token_fp", token.Fingerprint())
	return &callPlan{principal: p, server: srv, tool: tool, body: body, token: token}
}

// callTool serves POST /mcp/tools/call and /mcp-rest/tools/call: a
// synchronous call, or a job with "Prefer: respond-async".
func (a *API) callTool(c *gin.Context) {
	plan := a.prepareCall(c)
	if plan == nil {
		return
	}
	if prefersAsync(c) {
		a.submit(c, plan)
		return
	}
	result, err := a.d.Call(c.Request.Context(), c.GetString(ctxRequestID), dispatch.Call{
		KeyID: plan.principal.Name, Server: plan.server.Name, Tool: plan.tool, Arguments: plan.body.Arguments,
		Token: plan.token, Timeout: a.timeout(plan.server, plan.body.Timeout),
	})
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", result)
}

// prefersAsync reports whether the request asks for an asynchronous answer
// (RFC 7240 Prefer: respond-async).
func prefersAsync(c *gin.Context) bool {
	for _, v := range c.Request.Header.Values("Prefer") {
		for _, pref := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(pref), "respond-async") {
				return true
			}
		}
	}
	return false
}

// timeout is the call's budget: the request's ask (or the server's
// default), bounded by the server's and the ingress's maximum.
func (a *API) timeout(srv *config.Server, asked time.Duration) time.Duration {
	t := srv.Timeout.D()
	if asked > 0 {
		t = asked
	}
	return min(t, srv.MaxTimeout.D(), a.cfg.Ingress.MaxTimeout.D())
}

// resolve finds the server and tool a call names, and checks the key may use
// them. A name resolves as, in order: the tool of server_id;
// <server><sep><tool> for a configured server (ingress.tool_separator); a bare tool name that exactly one server the key
// may use has.
func (a *API) resolve(c *gin.Context, p *auth.Principal, b *callBody) (*config.Server, string, *contracts.Error) {
	if b.Server != "" {
		srv, err := a.server(p, b.Server)
		if err != nil {
			return nil, "", err
		}
		return srv, b.Name, a.checkTool(p, srv, b.Name)
	}
	for _, name := range a.serversByLength {
		if tool, ok := strings.CutPrefix(b.Name, name+a.cfg.Ingress.Separator()); ok && tool != "" {
			srv, err := a.server(p, name)
			if err != nil {
				return nil, "", err
			}
			return srv, tool, a.checkTool(p, srv, tool)
		}
	}
	// A bare name: ask every server the key may use. A server that cannot
	// list right now (down, no worker, refuses the user) is skipped and named
	// in the answer if the tool is not found elsewhere.
	var found []*config.Server
	var available, unlisted []string
	for _, name := range a.cfg.ServerNames() {
		srv := a.cfg.MCPServers[name]
		if !p.AllowsServer(name) {
			continue
		}
		tools, err := a.catalog.Tools(c.Request.Context(), a.listRequest(c, p, srv))
		if err != nil {
			unlisted = append(unlisted, name+" ("+string(err.Code)+")")
			continue
		}
		for _, t := range tools {
			if !srv.ToolAllowed(t.Name) || !p.AllowsTool(name, t.Name) {
				continue
			}
			available = append(available, name+a.cfg.Ingress.Separator()+t.Name)
			if t.Name == b.Name {
				found = append(found, srv)
			}
		}
	}
	switch len(found) {
	case 0:
		e := contracts.NewError(contracts.CodeUnknownTool, "no server you may use has a tool %q", b.Name)
		if len(unlisted) > 0 {
			e.Message += "; could not list " + strings.Join(unlisted, ", ")
		}
		e.Available = available
		return nil, "", e
	case 1:
		return found[0], b.Name, nil
	default:
		e := contracts.NewError(contracts.CodeAmbiguousTool, "several servers have a tool %q: name one as <server>-<tool> or with server_id", b.Name)
		for _, s := range found {
			e.Available = append(e.Available, s.Name+"-"+b.Name)
		}
		return nil, "", e
	}
}

// server returns the named server if the key may use it.
func (a *API) server(p *auth.Principal, name string) (*config.Server, *contracts.Error) {
	srv, ok := a.cfg.MCPServers[name]
	if !ok {
		e := contracts.NewError(contracts.CodeUnknownServer, "no server %q", name)
		for _, n := range a.cfg.ServerNames() {
			if p.AllowsServer(n) {
				e.Available = append(e.Available, n)
			}
		}
		return nil, e
	}
	if !p.AllowsServer(name) {
		return nil, contracts.NewError(contracts.CodeForbidden, "this key may not use server %q", name)
	}
	return srv, nil
}

func (a *API) checkTool(p *auth.Principal, srv *config.Server, tool string) *contracts.Error {
	if !srv.ToolAllowed(tool) {
		return contracts.NewError(contracts.CodeForbidden, "tool %q is not allowed on server %q", tool, srv.Name)
	}
	if !p.AllowsTool(srv.Name, tool) {
		return contracts.NewError(contracts.CodeForbidden, "this key may not use tool %s-%s", srv.Name, tool)
	}
	return nil
}

func (a *API) listRequest(c *gin.Context, p *auth.Principal, srv *config.Server) dispatch.List {
	return dispatch.List{
		KeyID: p.Name, Server: srv.Name, Timeout: a.cfg.Ingress.ListTimeout.D(),
		Token: userToken(c, srv.Name, srv.Auth == config.AuthNone),
	}
}
