package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// The seed design note's request, end to end: the MCP server receives
// exactly the user's Authorization header.
func TestCallTool_SeedRequest(t *testing.T) {
	g := startGateway(t)
	resp := g.do(t, http.MethodPost, "/mcp/tools/call", map[string]string{
		"x-litellm-key": masterKey, "Authorization": "Bearer user-token-5678",
	}, `{"name": "demo-whoami", "arguments": {}}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	if got := resp.Text(t); got != "Bearer user-token-5678" {
		t.Fatalf("whoami = %q", got)
	}
	if got := g.Upstreams["demo"].Recorder.Authorizations(); !allEqual(got, "Bearer user-token-5678") {
		t.Fatalf("upstream saw Authorization %q", got)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	if got := resp.Header.Values("Content-Type"); len(got) != 1 || got[0] != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	// whoami's result is the token itself, so check the leak on a call whose
	// result is not: the token still goes to the upstream, sealed.
	g.Upstreams["demo"].Recorder.Reset()
	g.RecordBus(t)
	if resp := g.call(t, "Bearer user-token-5678", "demo-echo", `{"text":"hi"}`); resp.Status != http.StatusOK {
		t.Fatalf("echo: %d %s", resp.Status, resp.Body)
	}
	if got := g.Upstreams["demo"].Recorder.Authorizations(); !allEqual(got, "Bearer user-token-5678") {
		t.Fatalf("upstream saw Authorization %q", got)
	}
	g.AssertNoSecret(t, "user-token-5678")
}

func allEqual(got []string, want string) bool {
	if len(got) == 0 {
		return false
	}
	for _, g := range got {
		if g != want {
			return false
		}
	}
	return true
}

func TestCallTool_NameResolution(t *testing.T) {
	g := startGateway(t)
	tests := []struct {
		name, body, want string
	}{
		{"prefixed", `{"name":"demo-echo","arguments":{"text":"a"}}`, "a"},
		{"server_id", `{"name":"echo","server_id":"other","arguments":{"text":"b"}}`, "b"},
		{"server_name", `{"name":"echo","server_name":"legacy","arguments":{"text":"c"}}`, "c"},
		{"bare name one server has", `{"name":"whoami","server_id":"demo","arguments":{}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := g.do(t, http.MethodPost, "/mcp-rest/tools/call", map[string]string{"x-litellm-key": masterKey}, tt.body)
			if resp.Status != http.StatusOK {
				t.Fatalf("status %d: %s", resp.Status, resp.Body)
			}
			if got := resp.Text(t); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	// A bare name resolves when exactly one server the key may use has it:
	// team-a sees only the demo server.
	resp := g.do(t, http.MethodPost, "/mcp/tools/call",
		map[string]string{"x-litellm-api-key": "Bearer " + teamAKey, "Authorization": "Bearer u1"},
		`{"name":"whoami","arguments":{}}`)
	if resp.Status != http.StatusOK || resp.Text(t) != "Bearer u1" {
		t.Fatalf("bare name for team-a: %d %s", resp.Status, resp.Body)
	}
}

func TestCallTool_PassthroughPerTransport(t *testing.T) {
	g := startGateway(t)
	for _, server := range []string{"demo", "legacy", "files"} {
		t.Run(server, func(t *testing.T) {
			token := "Bearer tok-" + server
			resp := g.call(t, token, server+"-whoami", `{}`)
			if resp.Status != http.StatusOK {
				t.Fatalf("status %d: %s", resp.Status, resp.Body)
			}
			if got := resp.Text(t); got != token {
				t.Fatalf("%s upstream received %q, want %q", server, got, token)
			}
			if up, ok := g.Upstreams[server]; ok && !allEqual(up.Recorder.Authorizations(), token) {
				t.Fatalf("%s upstream HTTP requests carried %q", server, up.Recorder.Authorizations())
			}
		})
	}
}

func TestCallTool_PerServerOverrideAndAuthNone(t *testing.T) {
	g := startGateway(t)
	h := map[string]string{
		"x-litellm-key":              masterKey,
		"Authorization":              "Bearer general",
		"x-mcp-other-authorization":  "Bearer just-for-other",
		"x-mcp-noauth-authorization": "Bearer must-not-reach-noauth",
		"x-litellm-tenant":           "tenant-header-not-forwarded",
	}
	for server, want := range map[string]string{"other": "Bearer just-for-other", "demo": "Bearer general", "noauth": ""} {
		resp := g.do(t, http.MethodPost, "/mcp/tools/call", h, `{"name":"`+server+`-whoami","arguments":{}}`)
		if resp.Status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", server, resp.Status, resp.Body)
		}
		if got := resp.Text(t); got != want {
			t.Errorf("%s received %q, want %q", server, got, want)
		}
	}
	for _, req := range g.Upstreams["noauth"].Recorder.Requests() {
		if v := req.Get("Authorization"); v != "" {
			t.Fatalf("auth none server received Authorization %q", v)
		}
	}
	// Only Authorization goes upstream: never the gateway key or other client headers.
	for name, up := range g.Upstreams {
		for _, req := range up.Recorder.Requests() {
			for _, hdr := range []string{"x-litellm-key", "x-litellm-tenant", "x-mcp-other-authorization"} {
				if req.Get(hdr) != "" {
					t.Errorf("%s received client header %s", name, hdr)
				}
			}
		}
	}
}

// 100 concurrent calls from 20 users over each HTTP transport: every call's
// upstream request carries its own caller's token.
func TestCallTool_ConcurrentTokensNeverMix(t *testing.T) {
	g := startGateway(t)
	for _, server := range []string{"demo", "legacy"} {
		t.Run(server, func(t *testing.T) {
			g.Upstreams[server].Recorder.Reset()
			var wg sync.WaitGroup
			var mu sync.Mutex
			mismatches := 0
			for i := range 100 {
				token := fmt.Sprintf("Bearer user-%02d", i%20)
				wg.Go(func() {
					resp := g.call(t, token, server+"-whoami", `{}`)
					mu.Lock()
					defer mu.Unlock()
					if resp.Status != http.StatusOK || resp.Text(t) != token {
						mismatches++
						t.Errorf("caller %s: status %d, upstream saw %s", token, resp.Status, resp.Body)
					}
				})
			}
			wg.Wait()
			if mismatches != 0 {
				t.Fatalf("%d mismatches", mismatches)
			}
			seen := map[string]bool{}
			for _, a := range g.Upstreams[server].Recorder.Authorizations() {
				if !strings.HasPrefix(a, "Bearer user-") {
					t.Fatalf("upstream request with Authorization %q", a)
				}
				seen[a] = true
			}
			if len(seen) != 20 {
				t.Fatalf("upstream saw %d distinct tokens, want 20", len(seen))
			}
		})
	}
}

func TestCallTool_UpstreamUnauthorizedPassesChallenge(t *testing.T) {
	g := startGateway(t)
	resp := g.call(t, "Bearer wrong", "locked-whoami", `{}`)
	if resp.Status != http.StatusUnauthorized || resp.ErrorCode(t) != "upstream_unauthorized" {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, "resource_metadata=") {
		t.Fatalf("WWW-Authenticate %q", ch)
	}
	if resp := g.call(t, "Bearer good", "locked-whoami", `{}`); resp.Status != http.StatusOK || resp.Text(t) != "Bearer good" {
		t.Fatalf("with the right token: %d %s", resp.Status, resp.Body)
	}
}

func TestCallTool_UpstreamTimeout(t *testing.T) {
	g := startGateway(t)
	resp := g.do(t, http.MethodPost, "/mcp/tools/call", map[string]string{"x-litellm-key": masterKey},
		`{"name":"demo-slow","arguments":{"ms":5000},"timeout_seconds":0.2}`)
	if resp.Status != http.StatusGatewayTimeout || resp.ErrorCode(t) != "upstream_timeout" {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("retryable error without Retry-After")
	}
}

// No worker serves "ghost": the answer is an immediate no_workers, not a
// timeout. The call's own budget is 60 s and the client gives up after 10 s,
// so only the fast path can pass.
func TestCallTool_NoWorkersFailsFast(t *testing.T) {
	g := startGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/mcp/tools/call",
		strings.NewReader(`{"name":"ghost-echo","arguments":{},"timeout_seconds":60}`))
	req.Header.Set("x-litellm-key", masterKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer before the client's deadline: %v", err)
	}
	defer resp.Body.Close()
	var body struct{ Error contracts.Error }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != contracts.CodeNoWorkers || !body.Error.Retryable {
		t.Fatalf("status %d, error %+v", resp.StatusCode, body.Error)
	}
}

func TestCallTool_ToolErrorIsAResult(t *testing.T) {
	g := startGateway(t)
	resp := g.call(t, "", "demo-fail", `{}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	if m := resp.JSON(t); m["isError"] != true {
		t.Fatalf("isError not set: %s", resp.Body)
	}
}

func TestListTools_LiteLLMShape(t *testing.T) {
	g := startGateway(t)
	for _, path := range []string{"/mcp/tools/list", "/mcp-rest/tools/list?server_id=demo"} {
		resp := g.do(t, http.MethodGet, path, map[string]string{"x-litellm-key": teamAKey}, "")
		if resp.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.Status, resp.Body)
		}
		var body struct {
			Tools []struct {
				Name        string         `json:"name"`
				InputSchema map[string]any `json:"inputSchema"`
				MCPInfo     struct {
					ServerName string `json:"server_name"`
				} `json:"mcp_info"`
			} `json:"tools"`
			Error   *string `json:"error"`
			Message string  `json:"message"`
		}
		if err := json.Unmarshal(resp.Body, &body); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range body.Tools {
			if tool.MCPInfo.ServerName != "demo" || tool.InputSchema == nil {
				t.Errorf("%s: tool %+v", path, tool)
			}
			names = append(names, tool.Name)
		}
		// team-a may use demo-echo and demo-whoami only.
		if strings.Join(names, ",") != "echo,whoami" || body.Error != nil || body.Message == "" {
			t.Fatalf("%s: tools %v, error %v, message %q", path, names, body.Error, body.Message)
		}
	}
	// The master key sees every server; ghost has no worker, so the answer
	// names it in failures, with the other servers' tools and error null
	// (LiteLLM sets partial_failure only when no tool came back).
	resp := g.do(t, http.MethodGet, "/mcp-rest/tools/list", map[string]string{"x-litellm-key": masterKey}, "")
	m := resp.JSON(t)
	if resp.Status != http.StatusOK || m["error"] != nil || !strings.Contains(string(resp.Body), `"failures":[{"server":"ghost"`) {
		t.Fatalf("%.400s", resp.Body)
	}
	if tools, _ := m["tools"].([]any); len(tools) < 10 {
		t.Fatalf("only %d tools listed", len(tools))
	}
}

// badInput is one refused request.
type badInput struct {
	name    string
	method  string
	path    string
	headers map[string]string
	body    string
	status  int
	code    string
}

func badInputs() []badInput {
	key := map[string]string{"x-litellm-key": masterKey}
	withKey := func(extra map[string]string) map[string]string {
		h := map[string]string{"x-litellm-key": masterKey}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	const call, list = "/mcp/tools/call", "/mcp-rest/tools/list"
	post := http.MethodPost
	return []badInput{
		{"no gateway key", post, call, nil, `{"name":"demo-echo"}`, 401, "unauthorized"},
		{"unknown gateway key", post, call, map[string]string{"x-litellm-key": "sk-nope"}, `{"name":"demo-echo"}`, 401, "unauthorized"},
		// The key in Authorization authenticates (LiteLLM's fallback; see
		// frontdoor's door table), but only when no key header is present.
		{"Authorization that is no gateway key, no key header", post, call, map[string]string{"Authorization": "Bearer user-token"}, `{"name":"demo-echo"}`, 401, "unauthorized"},
		{"wrong key header, gateway key in Authorization", post, call, map[string]string{"x-litellm-key": "sk-wrong", "Authorization": "Bearer " + masterKey}, `{"name":"demo-echo"}`, 401, "unauthorized"},
		{"gateway key over-long", post, call, map[string]string{"x-litellm-key": strings.Repeat("k", 600)}, `{"name":"demo-echo"}`, 401, "unauthorized"},
		{"empty Bearer gateway key", post, call, map[string]string{"x-litellm-api-key": "Bearer "}, `{"name":"demo-echo"}`, 401, "unauthorized"},
		{"key not allowed for the server", post, call, map[string]string{"x-litellm-key": teamAKey}, `{"name":"other-echo"}`, 403, "forbidden"},
		{"key not allowed for the tool", post, call, map[string]string{"x-litellm-key": teamAKey}, `{"name":"demo-slow","arguments":{"ms":1}}`, 403, "forbidden"},
		{"tool outside the server's allowed_tools", post, call, key, `{"name":"limited-whoami"}`, 403, "forbidden"},
		{"malformed JSON", post, call, key, `{"name":`, 400, "invalid_request"},
		{"body is an array", post, call, key, `[{"name":"demo-echo"}]`, 400, "invalid_request"},
		{"empty body", post, call, key, ``, 400, "invalid_request"},
		{"name missing", post, call, key, `{"arguments":{}}`, 400, "invalid_request"},
		{"name not a string", post, call, key, `{"name":42}`, 400, "invalid_request"},
		{"name empty", post, call, key, `{"name":""}`, 400, "invalid_request"},
		{"name over-long", post, call, key, `{"name":"` + strings.Repeat("n", 300) + `"}`, 400, "invalid_request"},
		{"arguments a string", post, call, key, `{"name":"demo-echo","arguments":"text"}`, 400, "invalid_request"},
		{"arguments an array", post, call, key, `{"name":"demo-echo","arguments":[1]}`, 400, "invalid_request"},
		{"server_id not a string", post, call, key, `{"name":"echo","server_id":7}`, 400, "invalid_request"},
		{"timeout_seconds negative", post, call, key, `{"name":"demo-echo","timeout_seconds":-1}`, 400, "invalid_request"},
		{"timeout_seconds a string", post, call, key, `{"name":"demo-echo","timeout_seconds":"5"}`, 400, "invalid_request"},
		{"huge body", post, call, key, `{"name":"demo-echo","arguments":{"text":"` + strings.Repeat("x", 2<<20) + `"}}`, 413, "request_too_large"},
		{"unknown server", post, call, key, `{"name":"echo","server_id":"nope"}`, 404, "unknown_server"},
		{"unknown bare tool", post, call, key, `{"name":"no_such_tool"}`, 404, "unknown_tool"},
		{"unknown tool on a server", post, call, key, `{"name":"demo-no_such_tool"}`, 404, "unknown_tool"},
		{"ambiguous bare tool", post, call, key, `{"name":"echo"}`, 400, "ambiguous_tool"},
		{"over-long user token", post, call, withKey(map[string]string{"Authorization": "Bearer " + strings.Repeat("t", 9000)}), `{"name":"demo-echo"}`, 400, "invalid_request"},
		{"wrong method", http.MethodGet, call, key, ``, 405, "method_not_allowed"},
		// (/mcp/<x> is LiteLLM's server selection: /mcp/nothing is unknown_server.)
		{"unknown route", http.MethodGet, "/v1/nothing", key, ``, 404, "not_found"},
		{"selection of no server", http.MethodGet, "/mcp/nothing", key, ``, 404, "unknown_server"},
		{"list: unknown server", http.MethodGet, list + "?server_id=nope", key, ``, 404, "unknown_server"},
		{"list: server not allowed", http.MethodGet, list + "?server_id=other", map[string]string{"x-litellm-key": teamAKey}, ``, 403, "forbidden"},
		{"list: no key", http.MethodGet, list, nil, ``, 401, "unauthorized"},
		// DNS rebinding: REST and async doors check Host and Origin on a
		// loopback listener as /mcp does, before the key.
		{"rebinding Host on REST", post, call, withKey(map[string]string{"Host": "evil.example"}), `{"name":"demo-echo"}`, 403, "forbidden"},
		{"rebinding Origin on REST", post, call, withKey(map[string]string{"Origin": "http://evil.example"}), `{"name":"demo-echo"}`, 403, "forbidden"},
		{"rebinding Host on async", post, "/v1/calls", withKey(map[string]string{"Host": "evil.example:4000"}), `{"name":"demo-echo"}`, 403, "forbidden"},
		{"rebinding Host on a list", http.MethodGet, list, withKey(map[string]string{"Host": "evil.example"}), ``, 403, "forbidden"},
		// Echoed input is clipped: a 60 KB server_id does not come back whole.
		{"server_id of 60 KB", post, call, key, `{"name":"echo","server_id":"` + strings.Repeat("s", 60<<10) + `"}`, 404, "unknown_server"},
		{"list: server_id of 60 KB", http.MethodGet, list + "?server_id=" + strings.Repeat("s", 60<<10), key, ``, 404, "unknown_server"},
		{"tool name of 60 KB", post, call, key, `{"name":"demo-` + strings.Repeat("t", 60<<10) + `"}`, 400, "invalid_request"},
		{"headers over 64 KiB", post, call, withKey(padHeaders(10, 7000)), `{"name":"demo-echo"}`, 431, "headers_too_large"},
		{"job id of 60 KB", http.MethodGet, "/v1/calls/" + strings.Repeat("j", 60<<10), key, ``, 404, "not_found"},
	}
}

// padHeaders returns n headers X-Pad-<i> of size bytes each.
func padHeaders(n, size int) map[string]string {
	h := map[string]string{}
	for i := range n {
		h[fmt.Sprintf("X-Pad-%d", i)] = strings.Repeat("p", size)
	}
	return h
}

func TestBadInputs(t *testing.T) {
	g := startGateway(t)
	cases := badInputs()
	if len(cases) < 25 {
		t.Fatalf("only %d bad inputs", len(cases))
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			resp := g.do(t, tt.method, tt.path, tt.headers, tt.body)
			if resp.Status >= 500 {
				t.Fatalf("5xx for bad input: %d %s", resp.Status, resp.Body)
			}
			if resp.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.Status, tt.status, resp.Body)
			}
			if got := resp.ErrorCode(t); got != tt.code {
				t.Fatalf("code %q, want %q: %s", got, tt.code, resp.Body)
			}
			if strings.Contains(string(resp.Body), masterKey) || strings.Contains(string(resp.Body), teamAKey) {
				t.Fatalf("error body echoes a gateway key: %s", resp.Body)
			}
			if len(resp.Body) > 4<<10 {
				t.Fatalf("error body of %d bytes: echoed input is not clipped", len(resp.Body))
			}
		})
	}
	// The unknown-tool answer says what the key could have called.
	resp := g.do(t, http.MethodPost, "/mcp/tools/call", map[string]string{"x-litellm-key": teamAKey}, `{"name":"nope"}`)
	if resp.Status != 404 || !strings.Contains(string(resp.Body), `"available":["demo-echo","demo-whoami"]`) {
		t.Fatalf("available tools not listed: %s", resp.Body)
	}
}

// Header injection: a CR/LF in a header value cannot arrive over Go's HTTP/1
// parser, which refuses it before the router; the router refuses it for
// every other path in (HTTP/2, a proxy that decoded it, in-process callers).
func TestBadInputs_HeaderInjection(t *testing.T) {
	g := startGateway(t)
	for _, value := range []string{"Bearer a\r\nX-Injected: 1", "Bearer a\nb", "Bearer \x00"} {
		req := httptest.NewRequest(http.MethodPost, "/mcp/tools/call", strings.NewReader(`{"name":"demo-echo"}`))
		req.Header.Set("x-litellm-key", masterKey)
		req.Header["Authorization"] = []string{value}
		rec := httptest.NewRecorder()
		g.Handler.ServeHTTP(rec, req)
		resp := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		if resp.Status != http.StatusBadRequest || resp.ErrorCode(t) != "invalid_request" {
			t.Fatalf("%q: %d %s", value, resp.Status, resp.Body)
		}
	}
}

// One log line per call with request id, key, server, tool, status,
// duration and the token's fingerprint - never the token.
func TestLogs_OneLinePerCallWithFingerprintOnly(t *testing.T) {
	g := startGateway(t)
	g.RecordBus(t)
	const token = "Bearer log-check-secret"
	resp := g.call(t, token, "demo-echo", `{"text":"x"}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	id := resp.Header.Get("X-Request-Id")
	var line map[string]any
	for _, l := range strings.Split(g.Logs.String(), "\n") {
		if strings.Contains(l, id) && strings.Contains(l, `"route"`) {
			_ = json.Unmarshal([]byte(l), &line)
		}
	}
	if line == nil {
		t.Fatalf("no ingress log line for request %s:\n%s", id, g.Logs.String())
	}
	want := map[string]any{"key": "master", "server": "demo", "tool": "echo", "status": float64(200), "token_fp": contracts.Fingerprint(token),
		"client_ip": "127.0.0.1"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log field %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["duration_ms"]; !ok {
		t.Error("no duration_ms")
	}
	g.AssertNoSecret(t, "log-check-secret")
}

// The request log's client_ip believes X-Forwarded-For only from a peer in
// ingress.trusted_proxies.
func TestLogs_ClientIPFromTrustedProxiesOnly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		want    string
	}{
		{"no trusted proxy: the peer", nil, "127.0.0.1"},
		{"loopback trusted: the forwarded client", []string{"127.0.0.0/8"}, "203.0.113.7"},
		{"another proxy trusted: the peer", []string{"10.0.0.1"}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, func(c *config.File) { c.Ingress.TrustedProxies = tc.trusted })
			resp := g.do(t, http.MethodGet, "/mcp-rest/tools/list", map[string]string{
				"x-litellm-key": masterKey, "X-Forwarded-For": "203.0.113.7",
			}, "")
			if resp.Status != http.StatusOK {
				t.Fatalf("%d %s", resp.Status, resp.Body)
			}
			id := resp.Header.Get("X-Request-Id")
			for _, l := range strings.Split(g.Logs.String(), "\n") {
				if !strings.Contains(l, id) || !strings.Contains(l, `"route"`) {
					continue
				}
				var line map[string]any
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatal(err)
				}
				if line["client_ip"] != tc.want {
					t.Fatalf("client_ip = %v, want %s", line["client_ip"], tc.want)
				}
				return
			}
			t.Fatalf("no log line for request %s", id)
		})
	}
}

func TestHealth(t *testing.T) {
	g := startGateway(t)
	if resp := g.do(t, http.MethodGet, "/healthz", nil, ""); resp.Status != 200 {
		t.Fatalf("healthz %d", resp.Status)
	}
	resp := g.do(t, http.MethodGet, "/readyz", nil, "")
	if resp.Status != 200 {
		t.Fatalf("readyz %d %s", resp.Status, resp.Body)
	}
	servers, _ := resp.JSON(t)["servers"].(map[string]any)
	if servers["demo"] != float64(1) || servers["ghost"] != float64(0) {
		t.Fatalf("readyz servers %v", servers)
	}
}
