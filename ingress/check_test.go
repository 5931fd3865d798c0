package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// Secrets of the check tests: none may appear in check's output.
const (
	envMasterKey = "sk-master-from-env-1"
	plainKey     = "sk-plain-key-2"
	stdioToken   = "stdio-token-3"
	natsPassword = "nats-password-4"
)

// checkConfig is a LiteLLM-style file with toolbus sections, secrets, an
// unknown key and a LiteLLM key toolbus does not implement.
func checkConfig(t *testing.T, extra string) string {
	t.Helper()
	k, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	data := `
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  store_model_in_db: true
mcp_servers:
  jira:
    url: http://127.0.0.1:3001/mcp
    auth_typo: bearer
  files:
    command: /bin/files-server
    env: {API_TOKEN: ` + stdioToken + `}
keys:
  - {name: team-a, key: ` + plainKey + `}
nats:
  url: nats://toolbus:` + natsPassword + `@127.0.0.1:4222
seal:
  public_keys: [` + k.Public().String() + `]
` + extra
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestCheck_PrintsEffectiveConfigRedacted(t *testing.T) {
	path := checkConfig(t, "")
	var stdout, stderr bytes.Buffer
	err := runCheck([]string{"--config", path}, &stdout, &stderr, envOf(map[string]string{"LITELLM_MASTER_KEY": envMasterKey}))
	if err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	out, errs := stdout.String(), stderr.String()
	for _, secret := range []string{envMasterKey, plainKey, stdioToken, natsPassword, config.HashKey(envMasterKey), config.HashKey(plainKey), "os.environ/"} {
		if strings.Contains(out+errs, secret) {
			t.Errorf("check output carries %q:\n%s\n%s", secret, out, errs)
		}
	}
	contractstest.Contains(t, "stdout", out,
		"  jira:\n", "    transport: http\n", "    timeout: 30s\n", "API_TOKEN: "+config.Redacted,
		"url: nats://REDACTED@127.0.0.1:4222", "  - name: master\n    key_sha256: "+config.Redacted,
	)
	contractstest.Contains(t, "stderr", errs,
		"warning: general_settings.store_model_in_db: LiteLLM key not implemented by toolbus, ignored: ",
		"warning: mcp_servers.jira.auth_typo: unknown key: toolbus does not read it (did you mean auth_type?)\n",
		path+": valid, 2 warning(s)\n",
	)
	if strings.Contains(errs, "bearer") {
		t.Errorf("a warning carries a value:\n%s", errs)
	}
}

func TestCheck_Errors(t *testing.T) {
	withKey := envOf(map[string]string{"LITELLM_MASTER_KEY": envMasterKey})
	for _, tt := range []struct {
		name   string
		args   func(path string) []string
		extra  string
		getenv func(string) string
		want   []string
	}{
		{
			name: "missing variable", getenv: envOf(nil),
			want: []string{"general_settings.master_key: environment variable LITELLM_MASTER_KEY is not set"},
		},
		{
			name: "strict flag", getenv: withKey, args: func(p string) []string { return []string{"--config", p, "--strict"} },
			want: []string{"mcp_servers.jira.auth_typo: unknown key", "general_settings.store_model_in_db: LiteLLM key"},
		},
		{
			name: "strict in the file", getenv: withKey, extra: "strict: true\n",
			want: []string{"mcp_servers.jira.auth_typo: unknown key"},
		},
		{
			name: "unknown section and wrong type", getenv: withKey, extra: "mcp_srvers: {}\ningress: {max_in_flight: lots}\n",
			want: []string{"mcp_srvers: unknown section", "ingress.max_in_flight: want an integer, not a string"},
		},
		{
			name: "no sealing key", getenv: withKey, extra: "", args: nil,
			want: []string{"no sealing public key"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := checkConfig(t, tt.extra)
			if tt.name == "no sealing key" {
				data, _ := os.ReadFile(path)
				data = []byte(strings.Split(string(data), "seal:")[0])
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"--config", path}
			if tt.args != nil {
				args = tt.args(path)
			}
			var stdout, stderr bytes.Buffer
			err := runCheck(args, &stdout, &stderr, tt.getenv)
			if err == nil {
				t.Fatalf("check passed:\n%s", stderr.String())
			}
			contractstest.Contains(t, "the error", err.Error(), tt.want...)
			if stdout.Len() != 0 || !strings.Contains(stderr.String(), path+": invalid") {
				t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
			}
			for _, secret := range []string{envMasterKey, plainKey, stdioToken, natsPassword} {
				if strings.Contains(err.Error()+stderr.String(), secret) {
					t.Errorf("output carries %q", secret)
				}
			}
		})
	}
	// --dev checks a file that has no sealing key.
	path := checkConfig(t, "")
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Split(string(data), "seal:")[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runCheck([]string{"--config", path, "--dev"}, &bytes.Buffer{}, &bytes.Buffer{}, withKey); err != nil {
		t.Fatalf("--dev: %v", err)
	}
}

// The binary exits 0 on a valid file and non-zero on an invalid one.
func TestCheck_ExitStatus(t *testing.T) {
	ingressBin, _ := buildBinaries(t)
	path := checkConfig(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tt := range []struct {
		env  []string
		args []string
		want int
	}{
		{[]string{"LITELLM_MASTER_KEY=" + envMasterKey}, []string{"check", "--config", path}, 0},
		{[]string{"LITELLM_MASTER_KEY=" + envMasterKey}, []string{"check", "--config", path, "--strict"}, 1},
		{[]string{"LITELLM_MASTER_KEY="}, []string{"check", "--config", path}, 1},
	} {
		cmd := exec.CommandContext(ctx, ingressBin, tt.args...)
		cmd.Env = append(os.Environ(), tt.env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.want {
			t.Errorf("%v %v: exit %d, want %d\n%s", tt.env, tt.args, code, tt.want, out.String())
		}
		if strings.Contains(out.String(), envMasterKey) {
			t.Errorf("output carries the master key")
		}
	}
}

// master_key: os.environ/LITELLM_MASTER_KEY through a started gateway: the
// real key is the master key, the literal text is refused.
func TestConfig_MasterKeyFromEnvThroughTheGateway(t *testing.T) {
	parsed, _, err := config.Parse([]byte("general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n"),
		config.Options{Getenv: envOf(map[string]string{"LITELLM_MASTER_KEY": envMasterKey})})
	if err != nil {
		t.Fatal(err)
	}
	g := gatewaytest.Start(t, gatewaytest.DemoOnly(), gatewaytest.WithConfig(func(c *config.File) {
		c.Keys = parsed.Keys
	}))
	for key, want := range map[string]int{
		envMasterKey:                    http.StatusOK,
		"os.environ/LITELLM_MASTER_KEY": http.StatusUnauthorized,
		gatewaytest.MasterKey:           http.StatusUnauthorized,
	} {
		resp := gatewaytest.Do(t, http.MethodGet, g.URL+"/mcp-rest/tools/list", gatewaytest.Headers(key, ""), "")
		if resp.Status != want {
			t.Errorf("key %q: %d, want %d", key, resp.Status, want)
		}
	}
}

// The ingress logs each configuration warning once at start-up: the key's
// path and the message, never a value; and runs with the master key from
// the environment.
func TestRun_LogsConfigWarningsAndReadsEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(`
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  store_model_in_db: true
mcp_servers:
  demo2:
    url: http://127.0.0.1:9/mcp
    auth_typo: value-not-to-log
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d := &devRun{cancel: cancel, done: make(chan error, 1)}
	env := map[string]string{"TOOLBUS_LISTEN": "127.0.0.1:0", "LITELLM_MASTER_KEY": envMasterKey}
	go func() { d.done <- run(ctx, []string{"--dev", "--config", path}, &d.stdout, &d.stderr, envOf(env)) }()
	d.url = waitForURL(t, &d.stdout, &d.stderr)

	for key, want := range map[string]int{envMasterKey: http.StatusOK, "os.environ/LITELLM_MASTER_KEY": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodGet, d.url+"/mcp-rest/tools/list?server_id=demo", nil)
		req.Header.Set("x-litellm-key", key)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("key %q: %d, want %d", key, resp.StatusCode, want)
		}
	}
	d.stop(t)

	logs := d.stderr.String()
	found := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec struct {
			Level, Path, Message string
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Path != "" {
			if rec.Level != "warn" || !strings.HasPrefix(rec.Message, "config: ") {
				t.Errorf("warning line %s", line)
			}
			found[rec.Path]++
		}
	}
	for _, p := range []string{"general_settings.store_model_in_db", "mcp_servers.demo2.auth_typo"} {
		if found[p] != 1 {
			t.Errorf("%s logged %d times:\n%s", p, found[p], logs)
		}
	}
	for _, s := range []string{"value-not-to-log", envMasterKey} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs carry %q", s)
		}
	}
}

// --strict on the ingress itself: a warning stops the start.
func TestRun_StrictRefusesWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("mcp_servers:\n  a: {url: 'http://127.0.0.1:1/mcp', auth_typo: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"--config", path, "--strict"}, &bytes.Buffer{}, &bytes.Buffer{}, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "mcp_servers.a.auth_typo: unknown key") {
		t.Fatalf("run --strict: %v", err)
	}
}
