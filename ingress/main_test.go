package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

var listenLine = regexp.MustCompile(`(?m)(http://127\.0\.0\.1:\d+)`)

// waitForURL polls out until it shows the ingress URL.
func waitForURL(t *testing.T, out fmt.Stringer, errs fmt.Stringer) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := listenLine.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no listen address printed\nstdout:\n%s\nstderr:\n%s", out, errs)
	return ""
}

// seedCall sends the seed design note's request.
func seedCall(t *testing.T, url, key, name string) (int, string) {
	t.Helper()
	body := `{"name": "` + name + `", "arguments": {}}`
	req, _ := http.NewRequest(http.MethodPost, url+"/mcp/tools/call", strings.NewReader(body))
	req.Header.Set("x-litellm-key", key)
	req.Header.Set("Authorization", "Bearer user-token-5678")
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var res struct {
		Content []struct{ Text string } `json:"content"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &res) != nil || len(res.Content) == 0 {
		return resp.StatusCode, string(data)
	}
	return resp.StatusCode, res.Content[0].Text
}

// devRun is `ingress --dev` running in this process, on a random port.
type devRun struct {
	url            string
	stdout, stderr contractstest.LogBuffer
	cancel         context.CancelFunc
	done           chan error
}

// startDev runs `ingress --dev` until stop (or the test's end).
func startDev(t *testing.T) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devRun{cancel: cancel, done: make(chan error, 1)}
	t.Cleanup(cancel)
	env := map[string]string{"TOOLBUS_LISTEN": "127.0.0.1:0"}
	go func() {
		d.done <- run(ctx, []string{"--dev"}, &d.stdout, &d.stderr, func(k string) string { return env[k] })
	}()
	d.url = waitForURL(t, &d.stdout, &d.stderr)
	return d
}

// stop ends the run and waits (bounded) until it returned, without error.
func (d *devRun) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	contractstest.WaitReturn(t, "run --dev", d.done)
}

// TestRun_DevMode is the README's first command: `go run ./ingress --dev`
// on its embedded default, then the seed request it prints.
func TestRun_DevMode(t *testing.T) {
	d := startDev(t)
	url, stdout, stderr := d.url, &d.stdout, &d.stderr

	if !strings.Contains(stdout.String(), `curl -X POST "`+url+`/mcp/tools/call"`) || !strings.Contains(stdout.String(), "x-litellm-key: sk-1234") {
		t.Fatalf("banner has no working curl:\n%s", stdout.String())
	}
	status, text := seedCall(t, url, "sk-1234", "whoami")
	if status != http.StatusOK || text != "Bearer user-token-5678" {
		t.Fatalf("seed call: %d %s", status, text)
	}
	// Read the logs once the run has ended: it writes out the lines it
	// buffered (telemetry.LineWriter) before it returns.
	d.stop(t)
	logs := stderr.String()
	if !strings.Contains(logs, `"route":"/mcp/tools/call"`) {
		t.Fatalf("the call's access line is not in the logs:\n%s", logs)
	}
	if strings.Contains(logs, "user-token-5678") {
		t.Fatal("the user token is in the logs")
	}
	// Not a terminal: JSON lines, in dev mode too.
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("dev mode logged a line that is not JSON to a pipe: %q", line)
		}
	}
}

func TestRun_RefusesMissingConfigAndKeys(t *testing.T) {
	noEnv := func(string) string { return "" }
	var out, errs bytes.Buffer
	if err := run(context.Background(), nil, &out, &errs, noEnv); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("no flags: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("mcp_servers:\n  a: {url: 'http://127.0.0.1:1/mcp'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"--config", cfg}, &out, &errs, noEnv); err == nil || !strings.Contains(err.Error(), "keygen") {
		t.Fatalf("no sealing key: %v", err)
	}
}

// buildBinaries compiles the ingress and worker as the container image
// does (-tags nodev: the ingress without dev mode).
func buildBinaries(t *testing.T) (ingressBin, workerBin string) {
	t.Helper()
	dir := t.TempDir()
	ingressBin, workerBin = filepath.Join(dir, "ingress"), filepath.Join(dir, "worker")
	for bin, pkg := range map[string]string{ingressBin: ".", workerBin: "../worker"} {
		cmd := exec.Command("go", "build", "-tags", "nodev", "-o", bin, pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return ingressBin, workerBin
}

// checkNoDevBuild: an ingress built with -tags nodev links neither the
// embedded NATS server nor any worker package, and --dev fails at once,
// saying why (the container image is built that way).
func checkNoDevBuild(t *testing.T, ingressBin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deps, err := exec.CommandContext(ctx, "go", "list", "-deps", "-tags", "nodev", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps -tags nodev: %v", err)
	}
	for _, dep := range strings.Fields(string(deps)) {
		if strings.HasPrefix(dep, "github.com/nats-io/nats-server/") || strings.HasPrefix(dep, "github.com/toolbus/toolbus/worker") ||
			dep == "github.com/toolbus/toolbus/ingress/devmode" {
			t.Errorf("the nodev ingress links %s", dep)
		}
	}
	out, err := exec.CommandContext(ctx, ingressBin, "--dev").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "built without dev mode") {
		t.Errorf("nodev ingress --dev: %v\n%s", err, out)
	}
}

// keygen runs `worker keygen` and returns the public and private key.
func keygen(t *testing.T, workerBin string) (pub, priv string) {
	t.Helper()
	out, err := exec.Command(workerBin, "keygen").Output()
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			switch {
			case strings.HasPrefix(f, "tbpk1."):
				pub = f
			case strings.HasPrefix(f, "tbsk1."):
				priv = f
			}
		}
	}
	if pub == "" || priv == "" {
		t.Fatalf("keygen printed no key pair:\n%s", out)
	}
	return pub, priv
}

// TestProcesses_ProductionShape runs the binaries as separate processes
// against an external NATS (embedded in this test, over TCP), with the
// LiteLLM config.yaml of the core issue as is - its servers pointed at real
// demo upstreams - plus a keys section.
func TestProcesses_ProductionShape(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	ingressBin, workerBin := buildBinaries(t)
	t.Run("the nodev build has no dev mode", func(t *testing.T) { checkNoDevBuild(t, ingressBin) })
	natsSrv := contractstest.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jira, err := demoserver.Start(ctx, demoserver.Options{}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer jira.Close(context.Background())
	legacy, err := demoserver.Start(ctx, demoserver.Options{}, demoserver.TransportSSE)
	if err != nil {
		t.Fatal(err)
	}
	defer legacy.Close(context.Background())

	cfg := fmt.Sprintf(`general_settings:
  master_key: sk-1234
mcp_servers:
  jira:
    url: %s      # streamable HTTP (transport defaults to http)
  legacy:
    url: %s
    transport: sse
  files:
    transport: stdio
    command: %s
    args: ["demo-server", "--transport", "stdio", "--auth-env", "FILES_TOKEN"]
    auth_env: FILES_TOKEN
keys:
  - name: team-a
    key_sha256: "%x"
    servers: [jira]
    tools: [jira-whoami]
`, jira.URL, legacy.URL, workerBin, sha256Sum("sk-team-a"))
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, priv := keygen(t, workerBin)
	common := []string{"TOOLBUS_NATS_URL=" + natsSrv.URL}
	w1 := contractstest.StartProcess(t, workerBin, append(common, "TOOLBUS_SEAL_PRIVATE_KEYS="+priv), "--config", cfgPath)
	w2 := contractstest.StartProcess(t, workerBin, append(common, "TOOLBUS_SEAL_PRIVATE_KEYS="+priv), "--config", cfgPath)
	in := contractstest.StartProcess(t, ingressBin, append(common, "TOOLBUS_SEAL_PUBLIC_KEYS="+pub, "TOOLBUS_LISTEN=127.0.0.1:0"), "--config", cfgPath)
	url := waitForURL(t, in.Stdout, in.Stderr)
	waitReady(t, url, 2)

	// The seed request, by a key that reaches only jira (so "whoami" is unambiguous).
	if status, text := seedCall(t, url, "sk-team-a", "whoami"); status != 200 || text != "Bearer user-token-5678" {
		t.Fatalf("seed call: %d %s", status, text)
	}
	if got := jira.Recorder.Authorizations(); len(got) == 0 || got[len(got)-1] != "Bearer user-token-5678" {
		t.Fatalf("jira received %q", got)
	}
	// Every transport, with the master key.
	for _, name := range []string{"jira-whoami", "legacy-whoami", "files-whoami"} {
		if status, text := seedCall(t, url, "sk-1234", name); status != 200 || text != "Bearer user-token-5678" {
			t.Fatalf("%s: %d %s", name, status, text)
		}
	}

	// An async job submitted to one ingress is answered by the next one:
	// the state lives in NATS, not in the ingress.
	jobID := submitJob(t, url, "sk-1234", `{"name":"jira-slow","arguments":{"ms":300}}`)
	in.Stop()
	in2 := contractstest.StartProcess(t, ingressBin, append(common, "TOOLBUS_SEAL_PUBLIC_KEYS="+pub, "TOOLBUS_LISTEN=127.0.0.1:0"), "--config", cfgPath)
	url2 := waitForURL(t, in2.Stdout, in2.Stderr)
	if status := pollJob(t, url2, "sk-1234", jobID); status != "succeeded" {
		t.Fatalf("job after an ingress restart: %s", status)
	}

	for _, p := range []*contractstest.Process{w1, w2, in, in2} {
		if strings.Contains(p.Stderr.String(), "user-token-5678") || strings.Contains(p.Stdout.String(), "user-token-5678") {
			t.Fatalf("a process logged the user token:\n%s", p.Stderr.String())
		}
	}
}

// submitJob posts an async call and returns the job id.
func submitJob(t *testing.T, url, key, body string) string {
	t.Helper()
	r := gatewaytest.Do(t, http.MethodPost, url+"/v1/calls", gatewaytest.Headers(key, "Bearer user-token-5678"), body)
	id, _ := r.JSON(t)["id"].(string)
	if r.Status != http.StatusAccepted || id == "" {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	return id
}

// pollJob long-polls a job until it is terminal and returns its status.
func pollJob(t *testing.T, url, key, id string) string {
	t.Helper()
	r := gatewaytest.Do(t, http.MethodGet, url+"/v1/calls/"+id+"?wait=20s", gatewaytest.Headers(key, "Bearer user-token-5678"), "")
	status, _ := r.JSON(t)["status"].(string)
	if r.Status != http.StatusOK {
		t.Fatalf("poll: %d %s", r.Status, r.Body)
	}
	return status
}

func sha256Sum(s string) []byte {
	h := sha256.New()
	h.Write([]byte(s))
	return h.Sum(nil)
}

// waitReady polls /readyz until it reports at least n workers.
func waitReady(t *testing.T, url string, n int) {
	t.Helper()
	contractstest.Eventually(t, fmt.Sprintf("the ingress at %s to report %d ready workers", url, n), func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct{ Workers int }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode == http.StatusOK && body.Workers >= n
	})
}
