package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/internal/workertest"
)

func TestRun_Keygen(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"keygen"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var pubText, privText string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "public:"); ok {
			pubText = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "private:"); ok {
			privText = strings.TrimSpace(v)
		}
	}
	pub, err := contracts.ParsePublicKey(pubText)
	if err != nil {
		t.Fatalf("public key line: %v\n%s", err, out.String())
	}
	priv, err := contracts.ParsePrivateKey(privText)
	if err != nil {
		t.Fatalf("private key line: %v", err)
	}
	if pub.ID() != priv.ID() {
		t.Error("the keys are not a pair")
	}
	for _, label := range []string{"TOOLBUS_SEAL_PUBLIC_KEYS", "TOOLBUS_SEAL_PRIVATE_KEYS", pub.ID()} {
		if !strings.Contains(out.String(), label) {
			t.Errorf("keygen output does not mention %s", label)
		}
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRun_StartupErrors(t *testing.T) {
	t.Parallel()
	noKeys := writeConfig(t, "mcp_servers:\n  demo:\n    url: http://127.0.0.1:1/mcp\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no config", nil, "--config"},
		{"no keys", []string{"--config", noKeys}, "go run ./worker keygen"},
		{"unknown server", []string{"--config", noKeys, "--servers", "demo,nope"}, "nope"},
		{"missing file", []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
		{"stray argument", []string{"--config", noKeys, "extra"}, "unexpected"},
	}
	for _, tt := range tests {
		err := run(t.Context(), tt.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestRun_ServesUntilCancelled(t *testing.T) {
	t.Parallel()
	n := contractstest.StartNATS(t)
	demo := workertest.StartDemo(t, demoserver.Options{}, demoserver.TransportHTTP)
	key, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, fmt.Sprintf(`mcp_servers:
  demo:
    url: %s
  unused:
    url: %s
nats:
  url: %s
seal:
  private_keys: [%s]
worker:
  drain_timeout: 5s
`, demo.URL, demo.URL, n.URL, key.Secret()))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr contractstest.LogBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", path, "--servers", "demo"}, &bytes.Buffer{}, &stderr) }()

	nc := n.Connect(t)
	contractstest.Eventually(t, "the worker to answer pings", func() bool {
		m, err := nc.Request(contracts.PingSubject, nil, 100*time.Millisecond)
		return err == nil && strings.Contains(string(m.Data), `"demo"`) && !strings.Contains(string(m.Data), "unused")
	})

	const token = "Bearer main-test-user-token"
	keys := workertest.Keys{Sealer: contracts.NewSealer(key.Public(), 0)}
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	req := keys.Request(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"hi"}`, Token: token}, inbox)
	if err := nc.PublishMsg(workertest.Msg(t, contracts.CallSubject("demo"), inbox, req)); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsgWithContext(contractstest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := contracts.DecodeCallResponse(workertest.ReplyOf(m))
	if err != nil || resp.Error != nil || workertest.Text(t, resp.Result) != "hi" {
		t.Fatalf("reply %s: %v", m.Data, err)
	}
	if got := demo.Recorder.Authorizations(); got[len(got)-1] != token {
		t.Errorf("upstream received %q", got[len(got)-1])
	}

	// Two connections, the second for requests only (pool.WithServiceConn).
	cz, err := n.Server.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cz.Conns {
		names = append(names, c.Name)
	}
	for _, want := range []string{"toolbus-worker", "toolbus-worker-service"} {
		if !slices.Contains(names, want) {
			t.Errorf("NATS connections %q, want one named %s", names, want)
		}
	}

	cancel()
	contractstest.WaitReturn(t, "run", done)
	logs := stderr.String()
	if strings.Contains(logs, "main-test-user-token") || strings.Contains(logs, key.Secret()) {
		t.Errorf("a secret is in the logs:\n%s", logs)
	}
	for _, want := range []string{`"component":"worker"`, "worker ready", "stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}
