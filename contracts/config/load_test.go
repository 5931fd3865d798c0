package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParse_ResolvesEnvEverywhere(t *testing.T) {
	env := map[string]string{
		"LITELLM_MASTER_KEY": "sk-real-master", "TEAM_KEY": "sk-team", "TOKEN": "tok-1", "ARG": "--verbose",
		"CONC": "7", "TIMEOUT": "12s", "URL": "http://127.0.0.1:3001/mcp", "NULLISH": "null",
	}
	f, warnings, err := Parse([]byte(`
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
mcp_servers:
  jira:
    url: os.environ/URL
    max_concurrency: os.environ/CONC
    timeout: os.environ/TIMEOUT
    description: os.environ/NULLISH
  files:
    command: /bin/server
    args: ["--flag", os.environ/ARG]
    env: {API_TOKEN: os.environ/TOKEN}
keys:
  - name: team
    key: os.environ/TEAM_KEY
`), Options{Getenv: mapEnv(env)})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %v", warnings)
	}
	hashes := map[string]string{}
	for _, k := range f.Keys {
		hashes[k.Name] = k.KeySHA256
	}
	if hashes["master"] != HashKey("sk-real-master") || hashes["team"] != HashKey("sk-team") {
		t.Errorf("keys not from the environment: %v", hashes)
	}
	jira, files := f.MCPServers["jira"], f.MCPServers["files"]
	if jira.URL != env["URL"] || jira.MaxConcurrency != 7 || jira.Timeout.D() != 12*time.Second || jira.Description != "null" {
		t.Errorf("jira %+v", jira)
	}
	if !slices.Equal(files.Args, []string{"--flag", "--verbose"}) || files.Env["API_TOKEN"] != "tok-1" {
		t.Errorf("files %+v", files)
	}
}

// The literal text is never a key: with the variable set the real key is
// the master key; without it the file does not load.
func TestParse_MasterKeyFromEnv(t *testing.T) {
	const literal = "os.environ/LITELLM_MASTER_KEY"
	data := []byte("general_settings:\n  master_key: " + literal + "\n")
	f, _, err := Parse(data, Options{Getenv: mapEnv(map[string]string{"LITELLM_MASTER_KEY": "sk-real"})})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) != 1 || f.Keys[0].KeySHA256 != HashKey("sk-real") || f.Keys[0].KeySHA256 == HashKey(literal) {
		t.Fatalf("keys %+v", f.Keys)
	}
	for name, getenv := range map[string]func(string) string{
		"unset": mapEnv(nil),
		"empty": mapEnv(map[string]string{"LITELLM_MASTER_KEY": ""}),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Parse(data, Options{Getenv: getenv})
			if err == nil {
				t.Fatal("loaded without the variable")
			}
			want := "general_settings.master_key: environment variable LITELLM_MASTER_KEY is not set"
			if err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
		})
	}
}

func TestParse_EnvErrors(t *testing.T) {
	_, _, err := Parse([]byte(`
mcp_servers:
  a:
    url: http://127.0.0.1:1/mcp
    env: {TOKEN: os.environ/MISSING_ONE}
  b:
    command: x
    args: [os.environ/MISSING_TWO]
keys:
  - {name: k, key: "os.environ/"}
model_list:
  - litellm_params: {api_key: os.environ/OPENAI_API_KEY}
`), Options{Getenv: mapEnv(nil)})
	if err == nil {
		t.Fatal("no error")
	}
	got := err.Error()
	for _, want := range []string{
		"mcp_servers.a.env.TOKEN: environment variable MISSING_ONE is not set",
		"mcp_servers.b.args[0]: environment variable MISSING_TWO is not set",
		"keys[0].key: os.environ/ must be followed by an environment variable's name",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("error lacks %q:\n%s", want, got)
		}
	}
	// A key toolbus does not read is not resolved: its variable need not be set.
	if strings.Contains(got, "OPENAI_API_KEY") {
		t.Errorf("an ignored key's variable was looked up:\n%s", got)
	}
}

func TestParse_UnknownKeys(t *testing.T) {
	data := []byte(`
general_settings:
  master_key: sk-1
  store_model_in_db: true
mcp_servers:
  jira:
    url: http://127.0.0.1:1/mcp
    auth_typo: bearer
    spec_version: "2025-03-26"
keys:
  - {name: a, key: sk-a, sevrers: [jira]}
ingress:
  listen: 127.0.0.1:0
  listn: 127.0.0.1:1
model_list: []
`)
	f, warnings, err := Parse(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.MCPServers["jira"] == nil || f.Ingress.Listen != "127.0.0.1:0" {
		t.Fatal("known keys not read")
	}
	want := []Warning{
		{"general_settings.store_model_in_db", "LiteLLM key not implemented by toolbus, ignored: toolbus has no database; servers come from this file"},
		{"mcp_servers.jira.auth_typo", "unknown key: toolbus does not read it (did you mean auth_type?)"},
		{"mcp_servers.jira.spec_version", "LiteLLM key not implemented by toolbus, ignored: toolbus speaks protocol_version to the server (default 2025-11-25)"},
		{"keys[0].sevrers", "unknown key: toolbus does not read it (did you mean servers?)"},
		{"ingress.listn", "unknown key: toolbus does not read it (did you mean listen?)"},
		{"model_list", "LiteLLM key not implemented by toolbus, ignored: toolbus is a tool-call gateway and serves no models"},
	}
	if !slices.Equal(warnings, want) {
		t.Fatalf("warnings\n%v\nwant\n%v", warnings, want)
	}
	for _, w := range warnings {
		if strings.Contains(w.Message, "bearer") || strings.Contains(w.Message, "2025-03-26") {
			t.Errorf("a warning carries a value: %v", w)
		}
	}

	// Strict, by option or in the file: every warning is an error.
	for name, tt := range map[string]struct {
		data []byte
		o    Options
	}{
		"option":  {data, Options{Strict: true}},
		"in file": {append([]byte("strict: true\n"), data...), Options{}},
	} {
		t.Run(name, func(t *testing.T) {
			f, warnings, err := Parse(tt.data, tt.o)
			if err == nil || f != nil || warnings != nil {
				t.Fatalf("strict loaded: %v %v", warnings, err)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w.Path+": "+w.Message) {
					t.Errorf("error lacks %s:\n%s", w.Path, err)
				}
			}
		})
	}
}

func TestParse_BadInput(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		want       []string
	}{
		{"unknown section", "mcp_srvers:\n  a: {url: 'http://127.0.0.1:1/mcp'}\n",
			[]string{"mcp_srvers: unknown section: neither toolbus's nor LiteLLM's (did you mean mcp_servers?)"}},
		{"wrong types", `
mcp_servers:
  a:
    url: http://127.0.0.1:1/mcp
    max_concurrency: sk-secret-typed
    timeout: [1]
    args: "--flag"
    env: [A]
ingress: sk-secret-section
worker: {max_clients: 1.5}
jobs: {backoff: [soon]}
strict: sk-secret-bool
`, []string{
			"mcp_servers.a.max_concurrency: want an integer, not a string",
			"mcp_servers.a.timeout: want a duration (30s, 5m, or a number of seconds), not a list",
			"mcp_servers.a.args: want a list, not a string",
			"mcp_servers.a.env: want a mapping, not a list",
			"ingress: want a mapping, not a string",
			"worker.max_clients: want an integer, not a number",
			"jobs.backoff[0]: want a duration (30s, 5m, or a number of seconds)",
			"strict: want true or false, not a string",
		}},
		{"not a mapping", "- a\n- b\n", []string{"not a mapping of sections"}},
		{"strict with a wrong type", "strict: true\ningress: {max_in_flight: many}\nmcp_servers: {a: {url: 'http://127.0.0.1:1/mcp', typo: 1}}\n",
			[]string{"ingress.max_in_flight: want an integer, not a string", "mcp_servers.a.typo: unknown key: toolbus does not read it (an error under strict)"}},
		{"syntax", "mcp_servers: {a: [}\n", []string{"config: yaml:"}},
		{"invalid after decoding", "mcp_servers:\n  a: {transport: carrier-pigeon}\n",
			[]string{`mcp_servers.a.transport: "carrier-pigeon" is not http, sse or stdio`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, _, err := Parse([]byte(tt.data), Options{})
			if err == nil || f != nil {
				t.Fatal("loaded")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%s", want, err)
				}
			}
			if strings.Contains(err.Error(), "sk-secret") {
				t.Errorf("error carries a value:\n%s", err)
			}
		})
	}
}

func TestParse_EmptyAndAnchors(t *testing.T) {
	for _, data := range []string{"", "# nothing\n", "~\n"} {
		f, warnings, err := Parse([]byte(data), Options{})
		if err != nil || len(warnings) != 0 || f.NATS.URL != DefaultNATSURL {
			t.Errorf("%q: %v %v", data, warnings, err)
		}
	}
	f, warnings, err := Parse([]byte(`
mcp_servers:
  a: &base
    url: http://127.0.0.1:1/mcp
    timeout: 10s
  b:
    <<: *base
    max_concurrency: 3
    typo_in_b: 1
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b := f.MCPServers["b"]; b.Timeout.D() != 10*time.Second || b.MaxConcurrency != 3 || b.URL == "" {
		t.Errorf("merge key not followed: %+v", b)
	}
	if len(warnings) != 1 || warnings[0].Path != "mcp_servers.b.typo_in_b" {
		t.Errorf("warnings %v", warnings)
	}
}

func TestReadFile_NamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("ingress: {max_in_flight: many}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadFile(path, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), path+": ingress.max_in_flight: ") {
		t.Fatalf("error %v", err)
	}
}

// The walker understands the tags a struct embedded by another package
// uses: ",inline" adds the embedded struct's keys, "-" reads nothing.
func TestFieldsOf_InlineAndSkipped(t *testing.T) {
	type creds struct {
		AuthType  string `yaml:"auth_type"`
		AuthValue string `yaml:"auth_value" secret:"true"`
	}
	type server struct {
		Name  string `yaml:"-"`
		URL   string `yaml:"url"`
		creds `yaml:",inline"`
		Plain int
	}
	got := fieldsOf(reflect.TypeFor[server]())
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"auth_type", "auth_value", "plain", "url"}; !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
}

func TestWriteEffective_RedactsSecrets(t *testing.T) {
	secrets := []string{"sk-master-1", "sk-plain-2", "tok-3", "tbsk1-private-4", "natspw-5", "natsuser-6", "qtoken-7", "otelpw-8", "identity-secret-9"}
	env := map[string]string{"TOKEN": "tok-3", "IDENTITY": "identity-secret-9"}
	f, _, err := Parse([]byte(`
general_settings: {master_key: sk-master-1}
mcp_servers:
  files:
    command: /bin/server
    env: {API_TOKEN: os.environ/TOKEN, EMPTY: ""}
  web:
    url: https://127.0.0.1:3001/mcp?token=qtoken-7
keys:
  - {name: a, key: sk-plain-2}
nats:
  url: nats://natsuser-6:natspw-5@127.0.0.1:4222, nats://127.0.0.1:4223
seal:
  private_keys: [tbsk1-private-4]
ingress:
  identity_secret: os.environ/IDENTITY
tracing:
  endpoint: https://otel:otelpw-8@127.0.0.1:4318/v1/traces
`), Options{Getenv: mapEnv(env)})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := f.WriteEffective(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, s := range append(secrets, HashKey("sk-master-1"), HashKey("sk-plain-2")) {
		if strings.Contains(text, s) {
			t.Errorf("output carries %q:\n%s", s, text)
		}
	}
	for _, want := range []string{
		"API_TOKEN: " + Redacted, `EMPTY: ""`, "key_sha256: " + Redacted,
		"url: https://127.0.0.1:3001/mcp?token=REDACTED",
		"url: nats://REDACTED@127.0.0.1:4222,nats://127.0.0.1:4223",
		"private_keys: [" + Redacted + "]", "endpoint: https://REDACTED@127.0.0.1:4318/v1/traces",
		"identity_secret: " + Redacted,
		"timeout: 30s", "max_concurrency: 64", "sample_ratio: 1.0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	// Every key printed is one the loader reads.
	if _, warnings, _ := Parse(out.Bytes(), Options{}); len(warnings) != 0 {
		t.Errorf("the output has keys the loader does not know: %v", warnings)
	}
}

// A secret tag on a struct embedded inline, or on a map, redacts what is
// below it.
func TestEffectiveNode_SecretTags(t *testing.T) {
	type creds struct {
		AuthValue     string            `yaml:"auth_value" secret:"true"`
		StaticHeaders map[string]string `yaml:"static_headers" secret:"true"`
		Scopes        []string          `yaml:"scopes"`
	}
	type server struct {
		URL   string `yaml:"url" secret:"url"`
		creds `yaml:",inline"`
	}
	v := server{URL: "http://u:p@127.0.0.1/x", creds: creds{AuthValue: "av-1", StaticHeaders: map[string]string{"X-Key": "hv-2"}, Scopes: []string{"read"}}}
	out, err := yaml.Marshal(effectiveNode(reflect.ValueOf(v), ""))
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, s := range []string{"av-1", "hv-2", "u:p"} {
		if strings.Contains(text, s) {
			t.Errorf("output carries %q:\n%s", s, text)
		}
	}
	for _, want := range []string{"auth_value: " + Redacted, "X-Key: " + Redacted, "scopes: [read]", "url: http://REDACTED@127.0.0.1/x"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}
