package frontdoor_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// LiteLLM's documented URLs, headers and request shapes (issue 14), driven
// against real upstreams: server names LiteLLM allows, aliases
// (alias: and litellm_settings.mcp_aliases), access groups, server_id by
// LiteLLM's stable id, and LiteLLM's response shapes, field by field.

const (
	groupKey = "sk-litellm-group"  // access group ops only
	aliasKey = "sk-litellm-alias"  // servers: [deepwiki] (an alias)
	ghSecret = "secret-gh-token"   // gh's auth_value: never shown
	ghHeader = "static-secret-hdr" // gh's static header: never shown
	urlToken = "url-secret"        // in gh's URL query: never shown
)

func startLiteLLM(t *testing.T) *gatewaytest.Gateway {
	t.Helper()
	return gatewaytest.Start(t, gatewaytest.WithConfig(func(c *config.File) {
		c.LiteLLMSettings.MCPAliases = map[string]string{"deepwiki": "deepwiki.mcp"}
		c.MCPServers["deepwiki.mcp"] = &config.Server{
			URL: c.MCPServers["noauth"].URL, Auth: config.AuthNone, AccessGroups: []string{"dev"},
		}
		c.MCPServers["My Server"] = &config.Server{
			URL: c.MCPServers["other"].URL, AccessGroups: []string{"dev"}, Description: "mine",
			MCPInfo: map[string]any{"logo_url": "https://example.test/logo.png", "mcp_server_cost_info": map[string]any{"default_cost_per_query": 0.01}},
		}
		c.MCPServers["gh"] = &config.Server{
			URL: c.MCPServers["other"].URL + "?key=" + urlToken, Alias: "github", AccessGroups: []string{"dev", "ops"},
			Credentials: config.Credentials{AuthType: config.AuthTypeBearerToken, AuthValue: ghSecret, StaticHeaders: map[string]string{"X-Static": ghHeader}},
		}
		c.Keys = append(c.Keys,
			config.Key{Name: "litellm-group", Key: groupKey, AccessGroups: []string{"ops"}},
			config.Key{Name: "litellm-alias", Key: aliasKey, Servers: []string{"deepwiki"}},
		)
	}))
}

func key(k string, extra ...string) map[string]string {
	h := map[string]string{"x-litellm-api-key": "Bearer " + k, "Accept": "application/json"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

// mcpTools lists the tools of an MCP endpoint: the names, or the HTTP
// error code.
func mcpTools(t *testing.T, g *gatewaytest.Gateway, path string, h map[string]string) ([]string, string) {
	t.Helper()
	r := gatewaytest.Do(t, http.MethodPost, g.URL+path, h, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
	if r.Status != http.StatusOK {
		return nil, r.ErrorCode(t)
	}
	var resp struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range resp.Result.Tools {
		names = append(names, tool.Name)
	}
	return names, ""
}

// prefixes are the distinct <prefix> of names <prefix>-<tool>.
func prefixes(names []string) []string {
	var out []string
	for _, n := range names {
		p, _, _ := strings.Cut(n, "-")
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestLiteLLM_Selection(t *testing.T) {
	g := startLiteLLM(t)
	master := key(gatewaytest.MasterKey)
	for _, tt := range []struct {
		name, path string
		h          map[string]string
		want       []string // prefixes listed
		code       string
	}{
		{"aggregated: aliases and spaces as LiteLLM prefixes", "/mcp", master, nil, ""},
		{"/mcp/<alias>", "/mcp/deepwiki", master, []string{"deepwiki"}, ""},
		{"/<name with a dot>/mcp", "/deepwiki.mcp/mcp", master, []string{"deepwiki"}, ""},
		{"/mcp/<LiteLLM server id>", "", master, []string{"deepwiki"}, ""},
		{"/mcp/<group>", "/mcp/dev", master, []string{"My_Server", "deepwiki", "github"}, ""},
		{"/<group>/mcp", "/ops/mcp", master, []string{"github"}, ""},
		{"/mcp/<a>,<b>", "/mcp/deepwiki,github", master, []string{"deepwiki", "github"}, ""},
		{"/<a>,<b>/mcp with a space", "/" + url.PathEscape("My Server,github") + "/mcp", master, []string{"My_Server", "github"}, ""},
		{"x-mcp-servers", "/mcp", key(gatewaytest.MasterKey, "x-mcp-servers", "deepwiki, github"), []string{"deepwiki", "github"}, ""},
		{"x-mcp-access-groups", "/mcp", key(gatewaytest.MasterKey, "x-mcp-access-groups", "ops"), []string{"github"}, ""},
		{"a path selection wins over the headers", "/mcp/github", key(gatewaytest.MasterKey, "x-mcp-servers", "deepwiki"), []string{"github"}, ""},
		{"x-mcp-access-groups with an unknown group", "/mcp", key(gatewaytest.MasterKey, "x-mcp-access-groups", "nope"), nil, "unknown_server"},
		{"unknown selection", "/mcp/nope", master, nil, "unknown_server"},
		// A key granted access group ops (server gh only).
		{"group key: aggregated", "/mcp", key(groupKey), []string{"github"}, ""},
		{"group key: its group", "/mcp/ops", key(groupKey), []string{"github"}, ""},
		{"group key: a group it has a server of", "/mcp/dev", key(groupKey), []string{"github"}, ""},
		{"group key: a server outside its groups", "/mcp/deepwiki", key(groupKey), nil, "forbidden"},
		{"group key: a server outside its groups, by header", "/mcp", key(groupKey, "x-mcp-servers", "deepwiki"), nil, "forbidden"},
		{"group key: a list with a server outside", "/mcp/github,deepwiki", key(groupKey), nil, "forbidden"},
		{"alias key: the server its alias names", "/deepwiki/mcp", key(aliasKey), []string{"deepwiki"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/mcp/" + g.Cfg.MCPServers["deepwiki.mcp"].ServerID()
			}
			names, code := mcpTools(t, g, path, tt.h)
			if code != tt.code {
				t.Fatalf("code %q, want %q", code, tt.code)
			}
			if tt.code != "" {
				return
			}
			got := prefixes(names)
			if tt.want == nil {
				for _, want := range []string{"deepwiki", "My_Server", "github"} {
					if !slices.Contains(got, want) {
						t.Errorf("prefix %s not listed: %v", want, got)
					}
				}
				for _, never := range []string{"gh", "deepwiki.mcp", "My Server"} {
					if slices.Contains(got, never) {
						t.Errorf("prefix %q listed: the alias or LiteLLM's prefix names the server", never)
					}
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("prefixes %v, want %v (tools %v)", got, tt.want, names)
			}
		})
	}
}

// rpcText calls name on path and returns the tool's text, or the toolbus
// code.
func rpcText(t *testing.T, g *gatewaytest.Gateway, path string, h map[string]string, name string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": name, "arguments": map[string]any{"text": "hi"}}})
	r := gatewaytest.Do(t, http.MethodPost, g.URL+path, h, string(body))
	if r.Status != http.StatusOK {
		return r.ErrorCode(t)
	}
	var resp rpcResponse
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		t.Fatal(err)
	}
	o := resp.outcome(t)
	if o.code != "ok" {
		return o.code
	}
	return o.text
}

func TestLiteLLM_PerServerNames(t *testing.T) {
	g := startLiteLLM(t)
	g.RecordBus(t)
	master := key(gatewaytest.MasterKey)
	names, code := mcpTools(t, g, "/deepwiki.mcp/mcp", master)
	if code != "" || !slices.Contains(names, "deepwiki-echo") || slices.Contains(names, "echo") {
		t.Fatalf("/deepwiki.mcp/mcp lists %v (%s), want LiteLLM's deepwiki-echo", names, code)
	}
	for _, name := range []string{"echo", "deepwiki-echo", "deepwiki.mcp-echo"} {
		if got := rpcText(t, g, "/deepwiki.mcp/mcp", master, name); got != "hi" {
			t.Errorf("tools/call %s on /deepwiki.mcp/mcp: %s", name, got)
		}
	}
	for _, name := range []string{"deepwiki-echo", "deepwiki.mcp-echo", "My_Server-echo", "github-echo"} {
		if got := rpcText(t, g, "/mcp", master, name); got != "hi" {
			t.Errorf("tools/call %s on /mcp: %s", name, got)
		}
	}
	if got := rpcText(t, g, "/mcp/dev", master, "deepwiki-echo"); got != "hi" {
		t.Errorf("a tool of the selection: %s", got)
	}
	if got := rpcText(t, g, "/mcp/ops", master, "deepwiki-echo"); got != "unknown_tool" {
		t.Errorf("a tool outside the selection: %s, want unknown_tool", got)
	}
	// deepwiki.mcp's calls travel on one escaped subject token, never on a
	// subject hierarchy below "deepwiki".
	g.Bus.Flush(t)
	escaped := 0
	for _, m := range g.Bus.Messages() {
		if m.Subject == contracts.CallSubject("deepwiki.mcp") {
			escaped++
		}
		if strings.Contains(m.Subject, ".deepwiki.") || strings.HasSuffix(m.Subject, ".deepwiki") {
			t.Errorf("a subject below deepwiki: %s", m.Subject)
		}
	}
	if contracts.CallSubject("deepwiki.mcp") != "toolbus.v2.call.__deepwiki_2emcp" || escaped == 0 {
		t.Errorf("no call on %s among %d messages", contracts.CallSubject("deepwiki.mcp"), g.Bus.Count())
	}

	bare := g.NewIngress(t, func(in *config.Ingress) { in.PerServerToolNames = config.ToolNamesBare })
	r := gatewaytest.Do(t, http.MethodPost, bare.URL+"/deepwiki.mcp/mcp", master, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
	if !strings.Contains(string(r.Body), `"name":"echo"`) || strings.Contains(string(r.Body), `"name":"deepwiki-echo"`) {
		t.Fatalf("per_server_tool_names: bare lists %.300s", r.Body)
	}
	for _, name := range []string{"echo", "deepwiki-echo"} {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": name, "arguments": map[string]any{"text": "hi"}}})
		r := gatewaytest.Do(t, http.MethodPost, bare.URL+"/deepwiki.mcp/mcp", master, string(body))
		if !strings.Contains(string(r.Body), `"text":"hi"`) {
			t.Errorf("bare mode, tools/call %s: %.300s", name, r.Body)
		}
	}
}

// restTool is one tool of LiteLLM's REST list, with its mcp_info.
type restTool struct {
	Name    string         `json:"name"`
	MCPInfo map[string]any `json:"mcp_info"`
}

func TestLiteLLM_REST(t *testing.T) {
	g := startLiteLLM(t)
	master := key(gatewaytest.MasterKey)
	deepwikiID := g.Cfg.MCPServers["deepwiki.mcp"].ServerID()
	myID := g.Cfg.MCPServers["My Server"].ServerID()
	for _, query := range []string{
		"server_id=" + deepwikiID, "server_id=deepwiki", "server_id=deepwiki.mcp", "mcp_server_name=deepwiki.mcp", "mcp_server_name=deepwiki",
	} {
		r := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp-rest/tools/list?"+query, master, "")
		var body struct {
			Tools    []restTool `json:"tools"`
			Error    *string    `json:"error"`
			Message  string     `json:"message"`
			Failures []any      `json:"failures"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil {
			t.Fatalf("%s: %d %.300s", query, r.Status, r.Body)
		}
		if len(body.Tools) == 0 || body.Error != nil || body.Message != "Successfully retrieved tools" || body.Failures != nil {
			t.Fatalf("%s: %.300s", query, r.Body)
		}
		for _, tool := range body.Tools {
			info := tool.MCPInfo
			if strings.Contains(tool.Name, "-") || info["server_name"] != "deepwiki.mcp" || info["server_id"] != deepwikiID || info["alias"] != "deepwiki" {
				t.Fatalf("%s: tool %+v", query, tool)
			}
		}
	}
	// mcp_info carries the configured map and the description.
	r := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp-rest/tools/list?server_id="+url.QueryEscape("My Server"), master, "")
	var body struct {
		Tools []restTool `json:"tools"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Tools) == 0 {
		t.Fatalf("%d %.300s", r.Status, r.Body)
	}
	info := body.Tools[0].MCPInfo
	cost, _ := info["mcp_server_cost_info"].(map[string]any)
	if info["server_name"] != "My Server" || info["server_id"] != myID || info["description"] != "mine" ||
		info["logo_url"] != "https://example.test/logo.png" || cost["default_cost_per_query"] != 0.01 {
		t.Fatalf("mcp_info %v", info)
	}
	if _, ok := info["alias"]; ok {
		t.Fatalf("alias set on a server without one: %v", info)
	}

	// Calls: server_id by id, alias or name, with a bare or prefixed name;
	// a prefixed name alone.
	for _, body := range []string{
		`{"server_id":"` + deepwikiID + `","name":"deepwiki-echo","arguments":{"text":"hi"}}`,
		`{"server_id":"` + deepwikiID + `","name":"echo","arguments":{"text":"hi"}}`,
		`{"server_id":"deepwiki","name":"deepwiki-echo","arguments":{"text":"hi"}}`,
		`{"server_name":"deepwiki.mcp","name":"echo","arguments":{"text":"hi"}}`,
		`{"name":"deepwiki-echo","arguments":{"text":"hi"}}`,
		`{"name":"My_Server-echo","arguments":{"text":"hi"}}`,
	} {
		r := gatewaytest.Do(t, http.MethodPost, g.URL+"/mcp-rest/tools/call", master, body)
		if r.Status != http.StatusOK || r.Text(t) != "hi" {
			t.Errorf("%s: %d %.300s", body, r.Status, r.Body)
		}
	}

	// Errors keep toolbus's error and add LiteLLM's detail.
	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp-rest/tools/list?server_id=nope", master, "")
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Detail struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		} `json:"detail"`
	}
	if r.Status != http.StatusNotFound || json.Unmarshal(r.Body, &e) != nil || e.Error.Code != "unknown_server" ||
		e.Detail.Error != "unknown_server" || e.Detail.Message != e.Error.Message || e.Detail.Message == "" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	// A group key's refusal is the same on REST.
	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp-rest/tools/list?server_id=deepwiki", key(groupKey), "")
	if r.Status != http.StatusForbidden || r.ErrorCode(t) != "forbidden" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp-rest/tools/list", key(groupKey, "x-mcp-access-groups", "dev"), "")
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Tools) == 0 {
		t.Fatalf("%d %.300s", r.Status, r.Body)
	}
	for _, tool := range body.Tools {
		if tool.MCPInfo["server_name"] != "gh" {
			t.Fatalf("group key listed %v", tool.MCPInfo)
		}
	}
}

// partial_failure is LiteLLM's error only when no server's tools came
// back; toolbus's failures name the servers either way.
func TestLiteLLM_REST_PartialFailure(t *testing.T) {
	g := startLiteLLM(t)
	r := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp-rest/tools/list", key(gatewaytest.MasterKey, "x-mcp-servers", "ghost,locked"), "")
	var body struct {
		Tools    []restTool `json:"tools"`
		Error    *string    `json:"error"`
		Failures []struct {
			Server string `json:"server"`
		} `json:"failures"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil || body.Error == nil || *body.Error != "partial_failure" ||
		len(body.Tools) != 0 || len(body.Failures) != 2 || body.Failures[0].Server != "ghost" || body.Failures[1].Server != "locked" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

func TestLiteLLM_ManagementEndpoints(t *testing.T) {
	g := startLiteLLM(t)
	r := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp/enabled", key(groupKey), "")
	if r.Status != http.StatusOK || string(r.Body) != `{"enabled":true}` {
		t.Fatalf("/mcp/enabled: %d %s", r.Status, r.Body)
	}
	if r := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp/enabled", nil, ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("/mcp/enabled without a key: %d", r.Status)
	}

	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/v1/mcp/server", key(groupKey), "")
	var servers []map[string]any
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &servers) != nil || len(servers) != 1 {
		t.Fatalf("/v1/mcp/server for the group key: %d %s", r.Status, r.Body)
	}
	gh := servers[0]
	var keys []string
	for k := range gh {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	wantKeys := []string{"alias", "allowed_tools", "auth_type", "description", "disallowed_tools", "mcp_access_groups", "mcp_info", "server_id", "server_name", "transport", "url"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("fields %v, want %v", keys, wantKeys)
	}
	groups, _ := gh["mcp_access_groups"].([]any)
	if gh["server_id"] != g.Cfg.MCPServers["gh"].ServerID() || gh["server_name"] != "gh" || gh["alias"] != "github" ||
		gh["transport"] != "http" || gh["auth_type"] != "bearer_token" || len(groups) != 2 || gh["description"] != nil {
		t.Fatalf("server %v", gh)
	}
	if u, _ := gh["url"].(string); !strings.HasPrefix(u, "http://127.0.0.1:") || strings.ContainsAny(u, "?/@") && strings.Count(u, "/") != 2 {
		t.Fatalf("url %q: the origin only", u)
	}
	for _, secret := range []string{ghSecret, ghHeader, urlToken, "X-Static"} {
		if strings.Contains(string(r.Body), secret) {
			t.Fatalf("/v1/mcp/server shows %q: %s", secret, r.Body)
		}
	}
	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/v1/mcp/server", key(gatewaytest.MasterKey), "")
	if err := json.Unmarshal(r.Body, &servers); err != nil || !slices.ContainsFunc(servers, func(s map[string]any) bool { return s["server_name"] == "deepwiki.mcp" }) {
		t.Fatalf("/v1/mcp/server for the master key: %.300s", r.Body)
	}

	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/v1/mcp/server/"+g.Cfg.MCPServers["gh"].ServerID(), key(groupKey), "")
	var one map[string]any
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &one) != nil || one["server_name"] != "gh" || one["alias"] != "github" {
		t.Fatalf("/v1/mcp/server/{id}: %d %s", r.Status, r.Body)
	}
	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/v1/mcp/server/deepwiki", key(groupKey), "")
	if r.Status != http.StatusForbidden {
		t.Fatalf("/v1/mcp/server/{id} of a server the key may not use: %d %s", r.Status, r.Body)
	}
	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/v1/mcp/access_groups", key(groupKey), "")
	if r.Status != http.StatusOK || string(r.Body) != `{"access_groups":["dev","ops"]}` {
		t.Fatalf("/v1/mcp/access_groups: %d %s", r.Status, r.Body)
	}

	r = gatewaytest.Do(t, http.MethodGet, g.URL+"/v1/mcp/tools?server_id=github", key(groupKey), "")
	var tools struct {
		Tools []restTool `json:"tools"`
		Error *string    `json:"error"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &tools) != nil || len(tools.Tools) == 0 || tools.Error != nil {
		t.Fatalf("/v1/mcp/tools: %d %.300s", r.Status, r.Body)
	}
	for _, tool := range tools.Tools {
		if tool.MCPInfo["server_id"] != g.Cfg.MCPServers["gh"].ServerID() {
			t.Fatalf("tool %+v", tool)
		}
	}
}
