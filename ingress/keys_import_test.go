package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/gateway"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// Three LiteLLM virtual keys (LiteLLM stores sha256(key) in
// LiteLLM_VerificationToken.token): one restricted to a server (by LiteLLM's
// server id), one to an access group, one blocked.
const (
	litellmServerKey  = "sk-litellm-server-1234"
	litellmGroupKey   = "sk-litellm-group-5678"
	litellmBlockedKey = "sk-litellm-blocked-90"
)

func withLiteLLMServers(c *config.File) {
	c.MCPServers["deepwiki.mcp"] = &config.Server{URL: c.MCPServers["noauth"].URL, Auth: config.AuthNone, AccessGroups: []string{"dev"}}
	c.MCPServers["gh"] = &config.Server{URL: c.MCPServers["other"].URL, Alias: "github", AccessGroups: []string{"ops"}}
}

// export is a JSON export as psql's json_agg writes it (see docs/litellm.md).
func export(cfg *config.File, blocked bool) string {
	return fmt.Sprintf(`[
 {"token":%q,"key_name":"sk-...1234","key_alias":"svc-wiki","blocked":null,"expires":null,"mcp_servers":[%q],"mcp_access_groups":[],"mcp_tool_permissions":null},
 {"token":%q,"key_name":"sk-...5678","key_alias":null,"blocked":false,"expires":"2999-01-01T00:00:00","mcp_servers":[],"mcp_access_groups":["ops"],"mcp_tool_permissions":null},
 {"token":%q,"key_name":"sk-...s-90","key_alias":"old-app","blocked":%v,"expires":null,"mcp_servers":[],"mcp_access_groups":["dev"]}
]`, config.HashKey(litellmServerKey), cfg.MCPServers["deepwiki.mcp"].ServerID(),
		config.HashKey(litellmGroupKey), config.HashKey(litellmBlockedKey), blocked)
}

func TestKeysImport_LiteLLMKeysBehaveTheSame(t *testing.T) {
	g := gatewaytest.Start(t, gatewaytest.WithConfig(withLiteLLMServers))
	js, err := jetstream.New(g.Env.Conn)
	if err != nil {
		t.Fatal(err)
	}
	// An ingress that watches the managed keys, as `ingress` runs.
	gw, err := gateway.Assemble(gateway.Options{Config: g.Cfg, Conn: g.Env.Conn, Sealer: g.Env.Sealer, Logger: zerolog.Nop(), WatchKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler)
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	importExport := func(blocked bool) {
		t.Helper()
		rows, err := parseLiteLLMExport([]byte(export(g.Cfg, blocked)))
		if err != nil {
			t.Fatal(err)
		}
		plan, err := planImport(g.Cfg, rows, false, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auth.ImportKeys(contractstest.Ctx(t), js, 1, plan.keys, plan.revoke); err != nil {
			t.Fatal(err)
		}
	}
	list := func(k, path string) (int, string) {
		r := gatewaytest.Do(t, http.MethodPost, srv.URL+path, map[string]string{"Authorization": "Bearer " + k, "Accept": "application/json"},
			`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
		return r.Status, string(r.Body)
	}
	importExport(false)
	contractstest.Eventually(t, "the imported keys to be accepted", func() bool {
		s1, _ := list(litellmServerKey, "/mcp")
		s2, _ := list(litellmBlockedKey, "/mcp")
		return s1 == http.StatusOK && s2 == http.StatusOK
	})
	for _, tt := range []struct {
		key, path string
		status    int
		has, not  string
	}{
		{litellmServerKey, "/mcp", 200, `"deepwiki.mcp-echo"`, `"github-echo"`},
		{litellmServerKey, "/mcp/deepwiki.mcp", 200, `"deepwiki.mcp-echo"`, `"github-echo"`},
		{litellmServerKey, "/mcp/github", 403, "forbidden", ""},
		{litellmServerKey, "/mcp/ops", 403, "forbidden", ""},
		{litellmGroupKey, "/mcp", 200, `"github-echo"`, `"deepwiki.mcp-echo"`},
		{litellmGroupKey, "/mcp/ops", 200, `"github-echo"`, `"deepwiki.mcp-echo"`},
		{litellmGroupKey, "/mcp/deepwiki.mcp", 403, "forbidden", ""},
	} {
		status, body := list(tt.key, tt.path)
		if status != tt.status || !strings.Contains(body, tt.has) || tt.not != "" && strings.Contains(body, tt.not) {
			t.Errorf("%s on %s: %d %.300s", tt.key[:16], tt.path, status, body)
		}
	}
	// The key is blocked in LiteLLM: importing again revokes it.
	importExport(true)
	contractstest.Eventually(t, "the blocked key to be refused", func() bool {
		s, _ := list(litellmBlockedKey, "/mcp")
		return s == http.StatusUnauthorized
	})
	if s, _ := list(litellmGroupKey, "/mcp"); s != http.StatusOK {
		t.Fatalf("the group key after the second import: %d", s)
	}
	keys, err := auth.ListKeys(contractstest.Ctx(t), js)
	if err != nil || len(keys) != 2 || keys[0].Name != "sk-...5678" || keys[1].Name != "svc-wiki" || keys[0].Source != "litellm" {
		t.Fatalf("managed keys %+v %v", keys, err)
	}
}

// Every bad row is reported by its line, and nothing is imported.
func TestKeysImport_BadRowsByLine(t *testing.T) {
	cfg := &config.File{MCPServers: map[string]*config.Server{"jira": {URL: "http://127.0.0.1:9/mcp", AccessGroups: []string{"dev"}}}}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	good := config.HashKey("sk-good")
	csv := "token,key_alias,blocked,expires,mcp_servers,mcp_access_groups\n" +
		good + ",good,f,,{jira},{}\n" + // line 2: good
		"nothex,bad-token,f,,{},{}\n" + // line 3
		config.HashKey("sk-a") + ",a,maybe,,{},{}\n" + // line 4
		config.HashKey("sk-b") + ",b,f,,{ghost},{}\n" + // line 5
		config.HashKey("sk-c") + ",c,f,,{},{nogroup}\n" + // line 6
		good + ",again,f,,{},{}\n" + // line 7
		config.HashKey("sk-d") + ",good,f,,{},{dev}\n" + // line 8
		config.HashKey("sk-e") + ",e,f,not-a-time,{},{}\n" // line 9
	rows, err := parseLiteLLMExport([]byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planImport(cfg, rows, false, time.Now())
	if plan != nil || err == nil {
		t.Fatalf("plan %+v, err %v: want nothing planned", plan, err)
	}
	for _, want := range []string{
		"line 3: token", "line 4: blocked", `line 5: mcp_servers: "ghost"`, `line 6: mcp_access_groups: no server of the configuration declares the access group "nogroup"`,
		"line 7: the same key as line 2", `line 8: the name "good" is also line 2's`, "line 9: expires",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "line 2") && !strings.Contains(err.Error(), "as line 2") && !strings.Contains(err.Error(), "line 2's") {
		t.Errorf("the good row is reported: %v", err)
	}

	// JSON: a row that is no object is named by its line.
	_, err = parseLiteLLMExport([]byte("[\n {\"token\":\"" + good + "\"},\n [1]\n]"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("JSON bad row: %v", err)
	}
}

// The command: a dry run checks the export against --config and stores
// nothing (no NATS is needed).
func TestKeysImport_DryRunCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte("mcp_servers:\n  jira: {url: 'http://127.0.0.1:9/mcp', access_groups: [dev]}\nnats: {url: 'nats://127.0.0.1:1'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exportPath := filepath.Join(dir, "keys.csv")
	csv := "token,key_alias,blocked,expires,mcp_servers,mcp_access_groups\n" +
		config.HashKey("sk-one") + ",one,f,,{jira},{}\n" +
		config.HashKey("sk-two") + ",two,t,,{},{}\n"
	if err := os.WriteFile(exportPath, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	err := runKeys(context.Background(), []string{"import", exportPath, "--config", cfgPath, "--dry-run"}, &out, &errs, func(string) string { return "" })
	if err != nil {
		t.Fatalf("%v %s", err, errs.String())
	}
	for _, want := range []string{`line 2: "one": servers jira`, `line 3: "two" is blocked`, "dry run: 1 keys to store, 1 to revoke"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "sk-one") || strings.Contains(out.String(), config.HashKey("sk-one")) {
		t.Errorf("output shows a key or its hash:\n%s", out.String())
	}
}

// An imported key's tool permissions are stored as (server, tool) pairs:
// with servers pyup and pyup-x, LiteLLM's {"pyup-x": ["secret"]} grants
// tool secret of pyup-x, never tool x-secret of pyup (the same name).
func TestKeysImport_ToolPermissionsArePairs(t *testing.T) {
	cfg := &config.File{MCPServers: map[string]*config.Server{
		"pyup": {URL: "http://127.0.0.1:9/mcp"}, "pyup-x": {URL: "http://127.0.0.1:9/mcp"},
	}}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	rows, err := parseLiteLLMExport([]byte(`[{"token":"` + config.HashKey("sk-p") + `","key_alias":"p","mcp_servers":["pyup","pyup-x"],"mcp_tool_permissions":{"pyup-x":["secret"]}}]`))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planImport(cfg, rows, false, time.Now())
	if err != nil || len(plan.keys) != 1 {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	if got, want := plan.keys[0].Record.ToolRefs, []contracts.ToolRef{{Server: "pyup-x", Tool: "secret"}}; !slices.Equal(got, want) {
		t.Errorf("tool refs %v, want %v", got, want)
	}
}
