package frontdoor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// The one front-door policy, driven through every door with the same
// cases: each door must answer each case with the same code, and the real
// upstreams must receive exactly the credential the policy decides.

// outcome is what a door answered: "ok" and the tool's text, or the
// toolbus error code.
type outcome struct {
	code string
	text string
}

func ok(text string) outcome { return outcome{code: "ok", text: text} }

// call is one tool call as the table names it.
type call struct {
	key, server, tool, args string
	// headers are sent besides the gateway key.
	headers map[string]string
	// keyInAuthorization sends key as "Authorization: Bearer <key>" (LiteLLM's
	// fallback), not in x-litellm-key.
	keyInAuthorization bool
}

// callDoor is a door that calls tools. prefixed doors name the tool as
// <server>-<tool> (no server is named on its own); the others name the
// server (server_id, /<server>/...).
type callDoor struct {
	name     string
	prefixed bool
	do       func(t *testing.T, g *gatewaytest.Gateway, c call) outcome
}

// listDoor is a door that lists tools: the code it answered and whether
// the case's tool was listed. named doors list the server the case names;
// the others list every server the key may use.
type listDoor struct {
	name  string
	named bool
	do    func(t *testing.T, g *gatewaytest.Gateway, c call) (code string, listed bool)
}

// policyCase is one case of the table.
type policyCase struct {
	name string
	call call
	// want is the outcome on every door that names the server; wantPrefixed,
	// if set, on doors that name tools <server>-<tool> only.
	want, wantPrefixed *outcome
	// serverLevel: the refusal is about the server, so a door listing that
	// server refuses too (a door listing every server just leaves it out).
	serverLevel bool
	// everyDoor: the refusal is about the request, so every list door
	// refuses too.
	everyDoor bool
	// listed: the tool is listed although the call is refused (the refusal
	// is about the call's arguments, not the tool).
	listed bool
	// upstream, if set, checks what the real upstreams received.
	upstream func(t *testing.T, g *gatewaytest.Gateway, door string)
}

func TestPolicy_EveryDoorAnswersTheSame(t *testing.T) {
	g := gatewaytest.Start(t, gatewaytest.WithConfig(func(c *config.File) {
		// Every list reaches the upstream, so what it received can be checked.
		c.Ingress.ListCacheTTL = config.Duration(time.Nanosecond)
		addDemo2(c)
	}))
	echo := `{"text":"hi"}`
	forbidden, unknownTool := &outcome{code: "forbidden"}, &outcome{code: "unknown_tool"}
	forbiddenParam := &outcome{code: "forbidden_param"}
	// Credentials differ per door (see door.headers), so that a pooled
	// upstream client or a cached list of one door cannot answer another.
	general := func(door string) string { return "Bearer general-" + slug(door) }
	justForOther := func(door string) string { return "Bearer just-for-other-" + slug(door) }
	credentials := map[string]string{
		"Authorization":              "{general}",
		"x-mcp-other-authorization":  "{other}",
		"x-mcp-noauth-authorization": "{other}",
	}
	cases := []policyCase{
		{name: "allowed tool", call: call{key: gatewaytest.TeamAKey, server: "demo", tool: "echo", args: echo}, want: &outcome{"ok", "hi"}},
		{name: "tool the key may not use", call: call{key: gatewaytest.TeamAKey, server: "demo", tool: "slow", args: `{"ms":1}`}, want: forbidden},
		{name: "server the key may not use", call: call{key: gatewaytest.TeamAKey, server: "other", tool: "echo", args: echo}, want: forbidden, serverLevel: true},
		{name: "tool outside the server's allowed_tools", call: call{key: gatewaytest.MasterKey, server: "limited", tool: "whoami", args: `{}`}, want: forbidden},
		{name: "tool in the server's disallowed_tools", call: call{key: gatewaytest.MasterKey, server: "noauth", tool: "fail", args: `{}`}, want: forbidden},
		{name: "unknown tool", call: call{key: gatewaytest.MasterKey, server: "demo", tool: "nope", args: `{}`}, want: unknownTool},
		// LiteLLM's documented filters (addDemo2): entries with or without
		// the <server>- prefix, disallowed_tools winning.
		{name: "prefixed allowed_tools entry", call: call{key: gatewaytest.MasterKey, server: "demo2", tool: "echo", args: echo}, want: &outcome{"ok", "hi"}},
		{name: "prefixed allowed_tools entry, no arguments", call: call{key: gatewaytest.MasterKey, server: "demo2", tool: "whoami", args: `{}`}, want: &outcome{"ok", ""}},
		{name: "bare allowed_tools entry, prefixed disallowed_tools entry", call: call{key: gatewaytest.MasterKey, server: "demo2", tool: "fail", args: `{}`}, want: forbidden},
		{name: "tool in neither list", call: call{key: gatewaytest.MasterKey, server: "demo2", tool: "slow", args: `{"ms":1}`}, want: forbidden},
		{name: "argument outside allowed_params", call: call{key: gatewaytest.MasterKey, server: "demo2", tool: "echo", args: `{"text":"hi","extra":1}`}, want: forbiddenParam, listed: true},
		{name: "argument outside allowed_params, key with a bare tool name", call: call{key: teamBKey, server: "demo2", tool: "echo", args: `{"extra":1}`}, want: forbiddenParam, listed: true},
		// Keys' tools with or without the prefix (team-b: echo, other-whoami).
		{name: "key's bare tool name", call: call{key: teamBKey, server: "demo2", tool: "echo", args: echo}, want: &outcome{"ok", "hi"}},
		{name: "key's bare tool name on another server", call: call{key: teamBKey, server: "other", tool: "echo", args: echo}, want: &outcome{"ok", "hi"}},
		{name: "key's prefixed tool name", call: call{key: teamBKey, server: "other", tool: "whoami", args: `{}`}, want: &outcome{"ok", ""}},
		{name: "tool the key's names leave out", call: call{key: teamBKey, server: "demo2", tool: "whoami", args: `{}`}, want: forbidden},
		{
			name: "unknown server", call: call{key: gatewaytest.MasterKey, server: "nope", tool: "echo", args: echo},
			// A name <server>-<tool> whose server is no server is no tool.
			want: &outcome{code: "unknown_server"}, wantPrefixed: unknownTool, serverLevel: true,
		},
		{
			name: "auth none server gets no credential",
			call: call{key: gatewaytest.MasterKey, server: "noauth", tool: "whoami", args: `{}`, headers: credentials},
			want: &outcome{"ok", ""},
			upstream: func(t *testing.T, g *gatewaytest.Gateway, door string) {
				requests := g.Upstreams["noauth"].Recorder.Requests()
				if len(requests) == 0 {
					t.Fatal("the upstream received nothing: the check would be vacuous")
				}
				for _, h := range requests {
					if v := h.Get("Authorization"); v != "" {
						t.Errorf("the auth: none server received Authorization %q", v)
					}
				}
			},
		},
		{
			name: "x-mcp-other-authorization reaches its server",
			call: call{key: gatewaytest.MasterKey, server: "other", tool: "whoami", args: `{}`, headers: credentials},
			want: &outcome{"ok", "{other}"},
			upstream: func(t *testing.T, g *gatewaytest.Gateway, door string) {
				wantOnly(t, g, "other", justForOther(door))
			},
		},
		{
			name: "x-mcp-other-authorization reaches no other server",
			call: call{key: gatewaytest.MasterKey, server: "demo", tool: "whoami", args: `{}`, headers: credentials},
			want: &outcome{"ok", "{general}"},
			upstream: func(t *testing.T, g *gatewaytest.Gateway, door string) {
				if fansOut(door) {
					// The generic Authorization goes to no server on a fan-out.
					wantOnly(t, g, "demo", "")
					return
				}
				wantOnly(t, g, "demo", general(door))
			},
		},
		{
			// LiteLLM's fallback: no key header, the key in Authorization. It
			// authenticates, and is no user credential: no server receives it.
			name: "gateway key in Authorization",
			call: call{key: gatewaytest.MasterKey, server: "demo", tool: "whoami", args: `{}`, keyInAuthorization: true},
			want: &outcome{"ok", ""},
			upstream: func(t *testing.T, g *gatewaytest.Gateway, door string) {
				demo := g.Upstreams["demo"].Recorder.Requests()
				if len(demo) == 0 {
					t.Fatal("demo received nothing: the check would be vacuous")
				}
				for name, up := range g.Upstreams {
					for _, h := range up.Recorder.Requests() {
						if v := h.Get("Authorization"); v != "" {
							t.Errorf("%s received Authorization %q: the gateway key went upstream", name, v)
						}
					}
				}
			},
		},
		{
			name:      "Authorization that is not a gateway key, no key header",
			call:      call{server: "demo", tool: "echo", args: echo, headers: map[string]string{"Authorization": "Bearer user-token"}},
			want:      &outcome{code: "unauthorized"},
			everyDoor: true,
		},
		// A malformed credential header is refused on every door before
		// anything is sent (the values themselves, control characters
		// included, are checked in TestReadPresented_RefusesMalformedHeaders:
		// Go's HTTP client does not send such values).
		{
			name:      "x-mcp header naming no configured server",
			call:      call{key: gatewaytest.MasterKey, server: "demo", tool: "echo", args: echo, headers: map[string]string{"x-mcp-nosuch-authorization": "Bearer s3cr3t"}},
			want:      &outcome{code: "invalid_request"},
			everyDoor: true,
		},
		{
			name:      "x-mcp header naming no header",
			call:      call{key: gatewaytest.MasterKey, server: "demo", tool: "echo", args: echo, headers: map[string]string{"x-mcp-demo-": "s3cr3t"}},
			want:      &outcome{code: "invalid_request"},
			everyDoor: true,
		},
		{
			name:      "x-mcp header forwarding a framing header",
			call:      call{key: gatewaytest.MasterKey, server: "demo", tool: "echo", args: echo, headers: map[string]string{"x-mcp-demo-content-length": "0"}},
			want:      &outcome{code: "invalid_request"},
			everyDoor: true,
		},
		{
			// A key header that is present is the key: Authorization is then
			// the user's, even when it holds a valid gateway key.
			name:      "wrong key header, gateway key in Authorization",
			call:      call{key: "sk-wrong", server: "demo", tool: "echo", args: echo, headers: map[string]string{"Authorization": "Bearer " + gatewaytest.MasterKey}},
			want:      &outcome{code: "unauthorized"},
			everyDoor: true,
		},
	}

	expand := func(s, door string) string {
		return strings.NewReplacer("{general}", general(door), "{other}", justForOther(door)).Replace(s)
	}
	withDoor := func(c call, door string) call {
		out := c
		out.headers = map[string]string{}
		for k, v := range c.headers {
			out.headers[k] = expand(v, door)
		}
		return out
	}
	resetUpstreams := func() {
		for _, up := range g.Upstreams {
			up.Recorder.Reset()
		}
	}

	for _, door := range callDoors() {
		t.Run(door.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					want := *tc.want
					if door.prefixed && tc.wantPrefixed != nil {
						want = *tc.wantPrefixed
					}
					want.text = expand(want.text, door.name)
					resetUpstreams()
					got := door.do(t, g, withDoor(tc.call, door.name))
					if got.code != want.code || (want.code == "ok" && got.text != want.text) {
						t.Fatalf("got %+v, want %+v", got, want)
					}
					if tc.upstream != nil {
						tc.upstream(t, g, door.name)
					}
				})
			}
		})
	}
	for _, door := range listDoors() {
		t.Run(door.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					wantCode, wantListed := "ok", tc.want.code == "ok" || tc.listed
					if door.named && tc.serverLevel || tc.everyDoor {
						wantCode, wantListed = tc.want.code, false
					}
					resetUpstreams()
					code, listed := door.do(t, g, withDoor(tc.call, door.name))
					if code != wantCode || listed != wantListed {
						t.Fatalf("got %s (listed %v), want %s (listed %v)", code, listed, wantCode, wantListed)
					}
					if tc.upstream != nil && code == "ok" {
						tc.upstream(t, g, door.name)
					}
				})
			}
		})
	}
}

// teamBKey is the key addDemo2 adds.
const teamBKey = "sk-team-b-filters"

// addDemo2 adds the server demo2 with LiteLLM's documented filters (a demo
// upstream, no credential) and the key team-b, whose tools are named bare
// (echo: on each of its servers) and prefixed (other-whoami).
func addDemo2(c *config.File) {
	c.MCPServers["demo2"] = &config.Server{
		URL: c.MCPServers["noauth"].URL, Auth: config.AuthNone,
		AllowedTools:    []string{"demo2-echo", "demo2-whoami", "fail"},
		DisallowedTools: []string{"demo2-fail"},
		AllowedParams:   map[string][]string{"demo2-echo": {"text"}},
	}
	c.Keys = append(c.Keys, config.Key{
		Name: "team-b", Key: teamBKey, Servers: []string{"demo2", "other"}, Tools: []string{"echo", "other-whoami"},
	})
}

// wantOnly fails unless server's upstream received requests, each with
// exactly the Authorization want.
func wantOnly(t *testing.T, g *gatewaytest.Gateway, server, want string) {
	t.Helper()
	got := g.Upstreams[server].Recorder.Authorizations()
	if len(got) == 0 {
		t.Fatalf("%s received nothing: the check would be vacuous", server)
	}
	for _, a := range got {
		if a != want {
			t.Fatalf("%s received Authorization %q, want only %q (all: %q)", server, a, want, got)
		}
	}
}

// fansOut reports whether a door reaches every server the key may use
// (frontdoor.FanOut): the list doors that name no server.
func fansOut(door string) bool {
	return slices.ContainsFunc(listDoors(), func(d listDoor) bool { return d.name == door && !d.named })
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

func callDoors() []callDoor {
	return []callDoor{
		{"REST call, <server>-<tool>", true, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return restCall(t, g, "/mcp/tools/call", c, `{"name":"`+c.server+`-`+c.tool+`","arguments":`+c.args+`}`, nil)
		}},
		{"REST call, server_id", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return restCall(t, g, "/mcp-rest/tools/call", c, `{"name":"`+c.tool+`","server_id":"`+c.server+`","arguments":`+c.args+`}`, nil)
		}},
		{"POST /v1/calls", true, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return restCall(t, g, "/v1/calls", c, `{"name":"`+c.server+`-`+c.tool+`","arguments":`+c.args+`}`, nil)
		}},
		{"Prefer respond-async, server_id", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return restCall(t, g, "/mcp/tools/call", c, `{"name":"`+c.tool+`","server_id":"`+c.server+`","arguments":`+c.args+`}`,
				map[string]string{"Prefer": "respond-async"})
		}},
		{"/mcp tools/call", true, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return rpcCall(t, g, "/mcp", c, c.server+"-"+c.tool, false)
		}},
		{"/<server>/mcp tools/call", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return rpcCall(t, g, "/"+c.server+"/mcp", c, c.tool, false)
		}},
		{"legacy SSE /sse", true, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return sseCall(t, g, "", c, c.server+"-"+c.tool)
		}},
		{"legacy SSE /<server>/sse", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return sseCall(t, g, "/"+c.server, c, c.tool)
		}},
		{"Tasks on /mcp", true, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return rpcCall(t, g, "/mcp", c, c.server+"-"+c.tool, true)
		}},
		{"Tasks on /<server>/mcp", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return rpcCall(t, g, "/"+c.server+"/mcp", c, c.tool, true)
		}},
		// LiteLLM's server selection and names (issue 14).
		{"REST call, server_id and <server>-<tool>", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return restCall(t, g, "/mcp-rest/tools/call", c, `{"name":"`+c.server+`-`+c.tool+`","server_id":"`+c.server+`","arguments":`+c.args+`}`, nil)
		}},
		{"/<server>/mcp tools/call, <server>-<tool>", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return rpcCall(t, g, "/"+c.server+"/mcp", c, c.server+"-"+c.tool, false)
		}},
		{"/mcp/<server> tools/call", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return rpcCall(t, g, "/mcp/"+c.server, c, c.tool, false)
		}},
		{"/mcp/<server>,<server> tools/call", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return rpcCall(t, g, "/mcp/"+c.server+","+c.server, c, c.server+"-"+c.tool, false)
		}},
		{"/mcp x-mcp-servers tools/call", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return rpcCall(t, g, "/mcp", withHeader(c, "x-mcp-servers", c.server), c.server+"-"+c.tool, false)
		}},
		{"legacy SSE /mcp/sse", true, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return sseCall(t, g, "/mcp", c, c.server+"-"+c.tool)
		}},
		{"legacy SSE /mcp/<server>/sse", false, func(t *testing.T, g *gatewaytest.Gateway, c call) outcome {
			return sseCall(t, g, "/mcp/"+c.server, c, c.tool)
		}},
	}
}

// withHeader is c with one more header.
func withHeader(c call, name, value string) call {
	out := c
	out.headers = map[string]string{name: value}
	for k, v := range c.headers {
		out.headers[k] = v
	}
	return out
}

func listDoors() []listDoor {
	return []listDoor{
		{"REST list, server_id", true, func(t *testing.T, g *gatewaytest.Gateway, c call) (string, bool) {
			return restList(t, g, "/mcp-rest/tools/list?server_id="+url.QueryEscape(c.server), c)
		}},
		{"REST list, every server", false, func(t *testing.T, g *gatewaytest.Gateway, c call) (string, bool) {
			return restList(t, g, "/mcp/tools/list", c)
		}},
		{"/mcp tools/list", false, func(t *testing.T, g *gatewaytest.Gateway, c call) (string, bool) {
			return rpcList(t, g, "/mcp", c, c.server+"-"+c.tool)
		}},
		// A server's endpoint lists <server>-<tool>, as LiteLLM does
		// (ingress.per_server_tool_names: prefixed, the default).
		{"/<server>/mcp tools/list", true, func(t *testing.T, g *gatewaytest.Gateway, c call) (string, bool) {
			return rpcList(t, g, "/"+c.server+"/mcp", c, c.server+"-"+c.tool)
		}},
		{"/mcp/<server> tools/list", true, func(t *testing.T, g *gatewaytest.Gateway, c call) (string, bool) {
			return rpcList(t, g, "/mcp/"+c.server, c, c.server+"-"+c.tool)
		}},
		{"/mcp x-mcp-servers tools/list", true, func(t *testing.T, g *gatewaytest.Gateway, c call) (string, bool) {
			return rpcList(t, g, "/mcp", withHeader(c, "x-mcp-servers", c.server), c.server+"-"+c.tool)
		}},
		{"REST list, mcp_server_name", true, func(t *testing.T, g *gatewaytest.Gateway, c call) (string, bool) {
			return restList(t, g, "/mcp-rest/tools/list?mcp_server_name="+url.QueryEscape(c.server), c)
		}},
		{"REST list, x-mcp-servers", true, func(t *testing.T, g *gatewaytest.Gateway, c call) (string, bool) {
			return restList(t, g, "/mcp-rest/tools/list", withHeader(c, "x-mcp-servers", c.server))
		}},
	}
}

func headers(c call, extra map[string]string) map[string]string {
	h := map[string]string{}
	switch {
	case c.keyInAuthorization:
		h["Authorization"] = "Bearer " + c.key
	case c.key != "":
		h["x-litellm-key"] = c.key
	}
	for _, m := range []map[string]string{c.headers, extra} {
		for k, v := range m {
			h[k] = v
		}
	}
	return h
}

// errorCode is the code of an HTTP error answer.
func errorCode(t *testing.T, r *gatewaytest.Response) string {
	t.Helper()
	code := r.ErrorCode(t)
	if code == "" {
		t.Fatalf("HTTP %d without an error code: %s", r.Status, r.Body)
	}
	return code
}

// restCall posts body to path; a job (202) is waited for.
func restCall(t *testing.T, g *gatewaytest.Gateway, path string, c call, body string, extra map[string]string) outcome {
	t.Helper()
	h := headers(c, extra)
	r := gatewaytest.Do(t, http.MethodPost, g.URL+path, h, body)
	switch r.Status {
	case http.StatusOK:
		return ok(r.Text(t))
	case http.StatusAccepted:
		return waitJob(t, g, h, r.JSON(t)["status_url"].(string))
	}
	return outcome{code: errorCode(t, r)}
}

// waitJob long-polls a job until it is terminal.
func waitJob(t *testing.T, g *gatewaytest.Gateway, h map[string]string, statusURL string) outcome {
	t.Helper()
	var job struct {
		Status string          `json:"status"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	contractstest.Eventually(t, "the job to end", func() bool {
		r := gatewaytest.Do(t, http.MethodGet, g.URL+statusURL+"?wait=5s", h, "")
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &job) != nil {
			t.Fatalf("poll: %d %s", r.Status, r.Body)
		}
		return job.Status != "queued" && job.Status != "running"
	})
	if job.Status == "succeeded" {
		return ok((&gatewaytest.Response{Body: job.Result}).Text(t))
	}
	if job.Error == nil {
		t.Fatalf("job %s without an error", job.Status)
	}
	return outcome{code: job.Error.Code}
}

func restList(t *testing.T, g *gatewaytest.Gateway, path string, c call) (string, bool) {
	t.Helper()
	r := gatewaytest.Do(t, http.MethodGet, g.URL+path, headers(c, nil), "")
	if r.Status != http.StatusOK {
		return errorCode(t, r), false
	}
	var body struct {
		Tools []struct {
			Name    string `json:"name"`
			MCPInfo struct {
				ServerName string `json:"server_name"`
			} `json:"mcp_info"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	listed := slices.ContainsFunc(body.Tools, func(tool struct {
		Name    string `json:"name"`
		MCPInfo struct {
			ServerName string `json:"server_name"`
		} `json:"mcp_info"`
	}) bool {
		return tool.Name == c.tool && tool.MCPInfo.ServerName == c.server
	})
	return "ok", listed
}

// rpc posts one JSON-RPC request to an MCP endpoint and returns the HTTP
// error code, or the JSON-RPC response.
func rpc(t *testing.T, g *gatewaytest.Gateway, path string, c call, method string, params any) (string, *rpcResponse) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	r := gatewaytest.Do(t, http.MethodPost, g.URL+path, headers(c, map[string]string{"Accept": "application/json"}), string(body))
	if r.Status != http.StatusOK {
		return errorCode(t, r), nil
	}
	var resp rpcResponse
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		t.Fatalf("not a JSON-RPC response (%v): %s", err, r.Body)
	}
	return "", &resp
}

type rpcResponse struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code int `json:"code"`
		Data *struct {
			Code string `json:"code"`
		} `json:"data"`
	} `json:"error"`
}

// outcome reads a tools/call (or tasks/result) answer: the toolbus code of
// an error (in its data), or of a tool error (in _meta), or the text.
func (r *rpcResponse) outcome(t *testing.T) outcome {
	t.Helper()
	if r.Error != nil {
		if r.Error.Data == nil {
			t.Fatalf("a JSON-RPC error without the toolbus error: %+v", r.Error)
		}
		return outcome{code: r.Error.Data.Code}
	}
	var res struct {
		IsError bool `json:"isError"`
		Meta    map[string]struct {
			Code string `json:"code"`
		} `json:"_meta"`
	}
	_ = json.Unmarshal(r.Result, &res)
	if e, isToolbus := res.Meta["io.toolbus/error"]; res.IsError && isToolbus {
		return outcome{code: e.Code}
	}
	return ok((&gatewaytest.Response{Body: r.Result}).Text(t))
}

// rpcCall calls name on an MCP endpoint, as a task if task is set.
func rpcCall(t *testing.T, g *gatewaytest.Gateway, path string, c call, name string, task bool) outcome {
	t.Helper()
	params := map[string]any{"name": name, "arguments": json.RawMessage(c.args)}
	if task {
		params["task"] = map[string]any{"ttl": 60000}
	}
	code, resp := rpc(t, g, path, c, "tools/call", params)
	if code != "" {
		return outcome{code: code}
	}
	if !task || resp.Error != nil {
		return resp.outcome(t)
	}
	var created struct {
		Task struct {
			TaskID string `json:"taskId"`
		} `json:"task"`
	}
	if err := json.Unmarshal(resp.Result, &created); err != nil || created.Task.TaskID == "" {
		t.Fatalf("not a CreateTaskResult (%v): %s", err, resp.Result)
	}
	code, resp = rpc(t, g, path, c, "tasks/result", map[string]any{"taskId": created.Task.TaskID})
	if code != "" {
		t.Fatalf("tasks/result: HTTP %s", code)
	}
	return resp.outcome(t)
}

func rpcList(t *testing.T, g *gatewaytest.Gateway, path string, c call, name string) (string, bool) {
	t.Helper()
	code, resp := rpc(t, g, path, c, "tools/list", map[string]any{})
	if code != "" {
		return code, false
	}
	if resp.Error != nil {
		return resp.outcome(t).code, false
	}
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		t.Fatal(err)
	}
	return "ok", slices.ContainsFunc(res.Tools, func(tool struct {
		Name string `json:"name"`
	}) bool {
		return tool.Name == name
	})
}

// sseCall calls name over legacy SSE: a stream on prefix/sse, the call
// posted to the endpoint it names, the answer read from the stream.
func sseCall(t *testing.T, g *gatewaytest.Gateway, prefix string, c call, name string) outcome {
	t.Helper()
	ctx, cancel := context.WithCancel(contractstest.Ctx(t))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+prefix+"/sse", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers(c, nil) {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return outcome{code: body.Error.Code}
	}
	events := gatewaytest.SSEData(resp.Body)
	next := func() string {
		select {
		case data, open := <-events:
			if !open {
				t.Fatal("the stream ended")
			}
			return data
		case <-ctx.Done():
			t.Fatal("no event before the test's bound")
		}
		return ""
	}
	endpoint := next()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":"sse-1","method":"tools/call","params":{"name":%q,"arguments":%s}}`, name, c.args)
	r := gatewaytest.Do(t, http.MethodPost, g.URL+endpoint, headers(c, nil), body)
	if r.Status != http.StatusAccepted {
		return outcome{code: errorCode(t, r)}
	}
	for {
		var answer struct {
			ID string `json:"id"`
			rpcResponse
		}
		if json.Unmarshal([]byte(next()), &answer) == nil && answer.ID == "sse-1" {
			return answer.outcome(t)
		}
	}
}
