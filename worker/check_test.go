package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// Secrets of the check tests: none may appear in check's output.
const (
	stdioToken   = "stdio-token-1"
	natsPassword = "nats-password-2"
	envToken     = "env-token-3"
)

func checkConfig(t *testing.T, privateKey, extra string) string {
	t.Helper()
	return writeConfig(t, `
mcp_servers:
  files:
    command: /bin/files-server
    env: {API_TOKEN: `+stdioToken+`, FROM_ENV: os.environ/FILES_TOKEN}
    spec_version: "2025-03-26"
  jira:
    url: http://127.0.0.1:3001/mcp
    auth_typo: bearer
nats:
  url: nats://toolbus:`+natsPassword+`@127.0.0.1:4222
seal:
  private_keys: [`+privateKey+`]
`+extra)
}

func TestCheck_PrintsEffectiveConfigRedacted(t *testing.T) {
	k, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	path := checkConfig(t, k.Secret(), "")
	var stdout, stderr bytes.Buffer
	if err := runCheck([]string{"--config", path, "--servers", "files"}, &stdout, &stderr,
		func(k string) string { return map[string]string{"FILES_TOKEN": envToken}[k] }); err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	out, errs := stdout.String(), stderr.String()
	for _, secret := range []string{k.Secret(), stdioToken, natsPassword, envToken, "os.environ/"} {
		if strings.Contains(out+errs, secret) {
			t.Errorf("check output carries %q:\n%s\n%s", secret, out, errs)
		}
	}
	contractstest.Contains(t, "stdout", out,
		"FROM_ENV: "+config.Redacted, "API_TOKEN: "+config.Redacted, "private_keys: ["+config.Redacted+"]",
		"url: nats://REDACTED@127.0.0.1:4222", "servers: [files]", "max_concurrency: 256",
	)
	contractstest.Contains(t, "stderr", errs,
		"warning: mcp_servers.files.spec_version: LiteLLM key not implemented by toolbus, ignored: ",
		"warning: mcp_servers.jira.auth_typo: unknown key: toolbus does not read it (did you mean auth_type?)\n",
		path+": valid, 2 warning(s)\n",
	)
}

func TestCheck_Errors(t *testing.T) {
	k, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	withToken := func(k string) string { return map[string]string{"FILES_TOKEN": envToken}[k] }
	for _, tt := range []struct {
		name, key, extra string
		args             []string
		getenv           func(string) string
		want             []string
	}{
		{name: "missing variable", key: k.Secret(), getenv: func(string) string { return "" },
			want: []string{"mcp_servers.files.env.FROM_ENV: environment variable FILES_TOKEN is not set"}},
		{name: "strict", key: k.Secret(), args: []string{"--strict"}, getenv: withToken,
			want: []string{"mcp_servers.jira.auth_typo: unknown key", "mcp_servers.files.spec_version: LiteLLM key"}},
		{name: "bad private key", key: "tbsk1.not-a-key-" + natsPassword, getenv: withToken,
			want: []string{"seal private key #1"}},
		{name: "no private key", key: "", getenv: withToken, want: []string{"no sealing private key"}},
		{name: "unknown server", key: k.Secret(), args: []string{"--servers", "nope"}, getenv: withToken,
			want: []string{`worker.servers: unknown server "nope"`}},
		{name: "wrong type", key: k.Secret(), extra: "worker: {max_concurrency: [1]}\n", getenv: withToken,
			want: []string{"worker.max_concurrency: want an integer, not a list"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := checkConfig(t, tt.key, tt.extra)
			var stdout, stderr bytes.Buffer
			err := runCheck(append([]string{"--config", path}, tt.args...), &stdout, &stderr, tt.getenv)
			if err == nil {
				t.Fatalf("check passed:\n%s", stderr.String())
			}
			contractstest.Contains(t, "the error", err.Error(), tt.want...)
			if stdout.Len() != 0 || !strings.Contains(stderr.String(), path+": invalid") {
				t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
			}
			for _, secret := range []string{k.Secret(), stdioToken, natsPassword, envToken} {
				if strings.Contains(err.Error()+stderr.String(), secret) {
					t.Errorf("output carries %q", secret)
				}
			}
		})
	}
}

// `worker check` is reached through run, reading the process environment;
// a worker logs each configuration warning at start-up, one line with the
// path, never the value.
func TestRun_CheckAndStartupWarnings(t *testing.T) {
	k, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FILES_TOKEN", envToken)
	path := checkConfig(t, k.Secret(), "")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"check", "--config", path}, &stdout, &stderr); err != nil {
		t.Fatalf("worker check: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "FROM_ENV: "+config.Redacted) {
		t.Errorf("stdout:\n%s", stdout.String())
	}

	// A run that stops at its missing sealing key has logged the warnings.
	noKey := checkConfig(t, "", "")
	stderr.Reset()
	if err := run(t.Context(), []string{"--config", noKey}, &bytes.Buffer{}, &stderr); err == nil || !strings.Contains(err.Error(), "no sealing private key") {
		t.Fatalf("run: %v", err)
	}
	found := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec struct{ Level, Path, Message string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Path != "" && rec.Level == "warn" && strings.HasPrefix(rec.Message, "config: ") {
			found[rec.Path]++
		}
	}
	if found["mcp_servers.jira.auth_typo"] != 1 || found["mcp_servers.files.spec_version"] != 1 {
		t.Errorf("warnings logged %v:\n%s", found, stderr.String())
	}
	if strings.Contains(stderr.String(), "bearer") || strings.Contains(stderr.String(), envToken) {
		t.Errorf("a logged line carries a value:\n%s", stderr.String())
	}
}

// --strict on the worker itself: a warning stops the start.
func TestRun_StrictRefusesWarnings(t *testing.T) {
	t.Parallel()
	k, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, "mcp_servers:\n  a: {url: 'http://127.0.0.1:1/mcp', auth_typo: x}\nseal: {private_keys: ["+k.Secret()+"]}\n")
	err = run(t.Context(), []string{"--config", path, "--strict"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "mcp_servers.a.auth_typo: unknown key") {
		t.Fatalf("run --strict: %v", err)
	}
}
