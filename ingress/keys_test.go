package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// `ingress keys create` works on two running ingress replicas at once, and
// `keys revoke` is refused by both within seconds. No worker runs: an
// accepted key reaches dispatch (503 no_workers), a refused one is 401.
func TestKeysCommand_ReachesRunningReplicas(t *testing.T) {
	ns := contractstest.StartNATS(t)
	key, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("mcp_servers:\n  jira: {url: 'http://127.0.0.1:9/mcp'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"TOOLBUS_NATS_URL": ns.URL, "TOOLBUS_SEAL_PUBLIC_KEYS": key.Public().String(), "TOOLBUS_LISTEN": "127.0.0.1:0",
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var urls []string
	for range 2 {
		var stdout, stderr contractstest.LogBuffer
		done := make(chan error, 1)
		go func() { done <- run(ctx, []string{"--config", cfg}, &stdout, &stderr, getenv) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("ingress did not stop")
			}
		})
		urls = append(urls, waitForURL(t, &stdout, &stderr))
	}

	var out, errs bytes.Buffer
	if err := runKeys(ctx, []string{"create", "--name", "team-c", "--servers", "jira", "--max-requests", "5", "--identity-max-requests", "1", "--identity-requests-per-second", "-1"}, &out, &errs, getenv); err != nil {
		t.Fatalf("create: %v %s", err, errs.String())
	}
	created := regexp.MustCompile(`sk-tb-[A-Za-z0-9_-]+`).FindString(out.String())
	if created == "" {
		t.Fatalf("create printed no key: %s", out.String())
	}
	status := func(url string) int {
		req, _ := http.NewRequest(http.MethodPost, url+"/mcp/tools/call", strings.NewReader(`{"name":"jira-x"}`))
		req.Header.Set("x-litellm-key", created)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 10 s: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, url := range urls {
		within("the new key is accepted by "+url, func() bool { return status(url) == http.StatusServiceUnavailable })
	}

	out.Reset()
	if err := runKeys(ctx, []string{"list"}, &out, &errs, getenv); err != nil || !strings.Contains(out.String(), "team-c\tservers=jira") ||
		!strings.Contains(out.String(), "MaxRequests:5") || !strings.Contains(out.String(), "\tidentity_limits={MaxRequests:1 MaxServerCalls:0 MaxStreams:0 RequestsPerSecond:-1 Burst:0}") {
		t.Fatalf("list: %v %q", err, out.String())
	}
	if strings.Contains(out.String(), created) {
		t.Fatal("list shows the key itself")
	}
	if err := runKeys(ctx, []string{"revoke", "--name", "team-c"}, &out, &errs, getenv); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	for _, url := range urls {
		within("the revoked key is refused by "+url, func() bool { return status(url) == http.StatusUnauthorized })
	}
}

// `ingress keys create --tools` takes bare tool names as keys: in the file
// do (that tool on each of the key's servers), resolved with --config; a
// list naming no tool of a configured server is refused, not stored as a
// key that may use nothing.
func TestKeysCommand_BareToolNames(t *testing.T) {
	ns := contractstest.StartNATS(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("mcp_servers:\n  jira: {url: 'http://127.0.0.1:9/mcp'}\n  wiki: {url: 'http://127.0.0.1:9/mcp'}\n  other: {url: 'http://127.0.0.1:9/mcp'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return map[string]string{"TOOLBUS_NATS_URL": ns.URL}[k] }
	ctx := contractstest.Ctx(t)
	var out, errs bytes.Buffer
	if err := runKeys(ctx, []string{"create", "--config", cfg, "--name", "team-d", "--servers", "jira,wiki", "--tools", "search,other-x"}, &out, &errs, getenv); err != nil {
		t.Fatalf("create: %v %s", err, errs.String())
	}
	out.Reset()
	if err := runKeys(ctx, []string{"list"}, &out, &errs, getenv); err != nil || !strings.Contains(out.String(), "team-d\tservers=jira,wiki\ttools=jira-search,other-x,wiki-search\t") {
		t.Fatalf("list: %v %q", err, out.String())
	}
	if err := runKeys(ctx, []string{"create", "--name", "team-e", "--tools", "search"}, &out, &errs, getenv); err == nil {
		t.Fatal("a bare tool name without the servers' configuration was accepted")
	}
}

// `keys create` refuses a configured key's name (names identify owners)
// and an ambiguous tool entry, before it reaches NATS.
func TestKeysCommand_CreateRefuses(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(`
mcp_servers:
  pyup: {url: 'http://127.0.0.1:9/mcp'}
  pyup-x: {url: 'http://127.0.0.1:9/mcp'}
keys:
  - {name: static, key: sk-static}
nats: {url: 'nats://127.0.0.1:1'}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "static"}, `a configured key is named "static"`},
		{[]string{"--name", "new", "--tools", "pyup-x-secret"}, `tool "x-secret" of server "pyup" or tool "secret" of server "pyup-x"`},
		{[]string{"--name", "new", "--identity-burst", "-1"}, "--identity-burst: negative"},
	} {
		var out, errs bytes.Buffer
		err := runKeys(contractstest.Ctx(t), append([]string{"create", "--config", cfg}, tc.args...), &out, &errs, getenv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
