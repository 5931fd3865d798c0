package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The LiteLLM config.yaml from the core issue, as is.
const liteLLMConfig = `
general_settings:
  master_key: sk-1234
mcp_servers:
  jira:
    url: http://127.0.0.1:3001/mcp      # streamable HTTP (transport defaults to http)
  legacy:
    url: http://127.0.0.1:3002/sse
    transport: sse
  files:
    transport: stdio
    command: /usr/local/bin/some-mcp-server
    args: ["--flag"]
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o}
`

func TestDecode_LiteLLMConfigAsIs(t *testing.T) {
	f, err := Decode([]byte(liteLLMConfig), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.ServerNames(); strings.Join(got, ",") != "files,jira,legacy" {
		t.Fatalf("servers %v", got)
	}
	for name, want := range map[string]string{"jira": TransportHTTP, "legacy": TransportSSE, "files": TransportStdio} {
		if got := f.MCPServers[name].Transport; got != want {
			t.Errorf("%s transport %q, want %q", name, got, want)
		}
		if f.MCPServers[name].Auth != AuthPassthrough || f.MCPServers[name].Timeout.D() != DefaultCallTimeout {
			t.Errorf("%s defaults not applied: %+v", name, f.MCPServers[name])
		}
	}
	if got := f.MCPServers["files"].Args; len(got) != 1 || got[0] != "--flag" {
		t.Fatalf("args %v", got)
	}
	if len(f.Keys) != 1 || f.Keys[0].Name != "master" || f.Keys[0].KeySHA256 != HashKey("sk-1234") {
		t.Fatalf("master_key not turned into a hashed key: %+v", f.Keys)
	}
	if f.GeneralSettings.MasterKey != "" {
		t.Fatal("plaintext master key kept after load")
	}
}

func TestDecode_KeysSection(t *testing.T) {
	f, err := Decode([]byte(`
mcp_servers:
  jira: {url: "http://127.0.0.1:3001/mcp", timeout: 10s, max_timeout: 90}
keys:
  - name: team-a
    key_sha256: "`+HashKey("sk-team-a")+`"
    servers: [jira]
    tools: [jira-create_issue]
  - name: team-b
    key: sk-team-b
`), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	if f.Keys[1].Key != "" || f.Keys[1].KeySHA256 != HashKey("sk-team-b") {
		t.Fatalf("plaintext key not hashed: %+v", f.Keys[1])
	}
	if s := f.MCPServers["jira"]; s.Timeout.D() != 10*time.Second || s.MaxTimeout.D() != 90*time.Second {
		t.Fatalf("durations %v %v", s.Timeout, s.MaxTimeout)
	}
}

func TestDecode_ReportsEveryProblem(t *testing.T) {
	_, err := Decode([]byte(`
mcp_servers:
  "bad,name": {url: "http://x/mcp"}
  nourl: {transport: sse}
  weird: {url: "http://x", transport: carrier-pigeon}
  envhttp: {url: "http://x", auth_env: TOKEN}
  noauth: {url: "http://x", auth: sometimes}
  oldproto: {url: "http://x", protocol_version: "v1"}
  fanoutkey: {url: "http://x", auth_type: api_key, auth_value: k, passthrough_on_fanout: true}
ingress: {tool_separator: "a b"}
keys:
  - name: a
    key_sha256: nothex
  - key: k
    servers: [ghost]
`), yaml.Unmarshal)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"bad,name", "nourl.url", "carrier-pigeon", "envhttp.auth_env", "sometimes", "keys[0]", "keys[1].name", "ghost", "tool_separator", "oldproto.protocol_version", "fanoutkey.passthrough_on_fanout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "k\n") {
		t.Error("error echoes a plaintext key")
	}
}

func TestApplyEnv(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "priv")
	if err := os.WriteFile(keyFile, []byte("tbsk1.a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		EnvListen: "127.0.0.1:9999", EnvNATSURL: "nats://127.0.0.1:1",
		EnvSealPublicKeys: "tbpk1.a, tbpk1.b", EnvSealPrivateKeys + "_FILE": keyFile,
		EnvToolSeparator: "__",
	}
	var f File
	if err := f.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if f.Ingress.Listen != "127.0.0.1:9999" || f.NATS.URL != "nats://127.0.0.1:1" || f.Ingress.Separator() != "__" {
		t.Fatalf("env not applied: %+v %+v", f.Ingress, f.NATS)
	}
	if strings.Join(f.Seal.PublicKeys, "|") != "tbpk1.a|tbpk1.b" || strings.Join(f.Seal.PrivateKeys, "|") != "tbsk1.a" {
		t.Fatalf("keys %v %v", f.Seal.PublicKeys, f.Seal.PrivateKeys)
	}
}

func TestServer_ToolAllowed(t *testing.T) {
	s := &Server{AllowedTools: []string{"a", "b"}, DisallowedTools: []string{"b"}}
	for tool, want := range map[string]bool{"a": true, "b": false, "c": false} {
		if got := s.ToolAllowed(tool); got != want {
			t.Errorf("%s: %v", tool, got)
		}
	}
	if !(&Server{DisallowedTools: []string{"x"}}).ToolAllowed("y") {
		t.Error("disallowed list blocks others")
	}
}

// A decoded file is complete: every field with a default has it, so no
// component applies a default of its own. A field that stays empty says so
// here, on purpose (its comment says what empty means).
func TestDecode_AppliesEveryDefault(t *testing.T) {
	f, err := Decode([]byte("mcp_servers:\n  a: {url: 'http://127.0.0.1:1/mcp'}\n"), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	emptyOnPurpose := map[string]bool{}
	for _, path := range strings.Fields(`
		Strict GeneralSettings.MasterKey Keys LiteLLMSettings.MCPAliases
		MCPServers.Alias MCPServers.AccessGroups MCPServers.MCPInfo GeneralSettings.MCPClientSideAuthHeaderName MCPServers.ExtraHeaders Ingress.IdentitySecret
		MCPServers.Description MCPServers.Command MCPServers.Args MCPServers.Env
		MCPServers.AllowedTools MCPServers.DisallowedTools MCPServers.AllowedParams MCPServers.AuthEnv MCPServers.PassthroughOnFanout
		MCPServers.Credentials.AuthType MCPServers.Credentials.AuthValue MCPServers.Credentials.AuthenticationToken
		MCPServers.Credentials.StaticHeaders MCPServers.Credentials.OAuth2Flow MCPServers.Credentials.ClientID
		MCPServers.Credentials.ClientSecret MCPServers.Credentials.TokenURL MCPServers.Credentials.Scopes
		MCPServers.Credentials.AuthorizationURL MCPServers.Credentials.RegistrationURL
		MCPServers.Credentials.AWSRegionName MCPServers.Credentials.AWSServiceName MCPServers.Credentials.AWSAccessKeyID
		MCPServers.Credentials.AWSSecretAccessKey MCPServers.Credentials.AWSSessionToken
		MCPServers.Credentials.AWSRoleName MCPServers.Credentials.AWSSessionName MCPServers.Credentials.AWSSTSEndpoint
		MCPServers.Credentials.TokenExchangeEndpoint MCPServers.Credentials.Audience
		MCPServers.Credentials.Resource MCPServers.Credentials.SubjectTokenType OIDC
		NATS.Name NATS.CredsFile NATS.TLS.CAFile NATS.TLS.CertFile NATS.TLS.KeyFile NATS.TLS.ServerName
		Seal.PublicKeys Seal.PrivateKeys Seal.PrivateKeysFile
		Ingress.TrustedProxies Ingress.PublicURL Ingress.KeyLimits.Burst Ingress.IdentityLimits.Burst
		Worker.Name Worker.Servers Worker.MetricsListen
		Jobs.MaxStreamBytes Jobs.KeyQuotas Jobs.MaxRecordsBytes Jobs.MaxResultsBytes Jobs.MaxRunningPerKey
		Tracing.Endpoint Tracing.ServiceName`) {
		emptyOnPurpose[path] = true
	}
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch {
		case v.Kind() == reflect.Map && v.Type().Elem().Kind() == reflect.Pointer:
			for _, k := range v.MapKeys() {
				walk(path, v.MapIndex(k).Elem())
			}
		case v.Kind() == reflect.Struct && v.Type() != reflect.TypeFor[Duration]():
			for i := range v.NumField() {
				if v.Type().Field(i).Tag.Get("yaml") == "-" {
					continue
				}
				walk(strings.TrimPrefix(path+"."+v.Type().Field(i).Name, "."), v.Field(i))
			}
		case v.IsZero() && !emptyOnPurpose[path]:
			t.Errorf("%s is empty after Decode: give it a default (documented at the field) or list it here", path)
		}
	}
	walk("", reflect.ValueOf(f).Elem())

	for name, got := range map[string]any{
		"ingress.max_in_flight":   f.Ingress.MaxInFlight,
		"worker.max_concurrency":  f.Worker.MaxConcurrency,
		"server.max_concurrency":  f.MCPServers["a"].MaxConcurrency,
		"worker.drain_timeout":    f.Worker.DrainTimeout.D(),
		"ingress.tool_separator":  f.Ingress.ToolSeparator,
		"server.protocol_version": f.MCPServers["a"].ProtocolVersion,
	} {
		want := map[string]any{
			"ingress.max_in_flight": DefaultMaxInFlight, "worker.max_concurrency": DefaultWorkerConc,
			"server.max_concurrency": DefaultServerConc, "worker.drain_timeout": DefaultDrainTimeout,
			"ingress.tool_separator": DefaultToolSeparator, "server.protocol_version": DefaultUpstreamProtocol,
		}[name]
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// Normalize keeps what is set, including a negative max_in_flight (no
// bound), and may run twice.
func TestNormalize_KeepsSetValuesAndRunsTwice(t *testing.T) {
	f := &File{Ingress: Ingress{MaxInFlight: -1, Listen: "127.0.0.1:0"}, Worker: Worker{MaxConcurrency: 3}}
	for range 2 {
		if err := f.Normalize(); err != nil {
			t.Fatal(err)
		}
	}
	if f.Ingress.MaxInFlight != -1 || f.Ingress.Listen != "127.0.0.1:0" || f.Worker.MaxConcurrency != 3 {
		t.Fatalf("set values changed: %+v %+v", f.Ingress, f.Worker)
	}
}

func TestIngress_TrustedProxiesAreAddressesOrCIDRs(t *testing.T) {
	if _, err := Decode([]byte("ingress:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.1, \"::1\"]\n"), yaml.Unmarshal); err != nil {
		t.Fatalf("valid entries refused: %v", err)
	}
	_, err := Decode([]byte("ingress:\n  trusted_proxies: [10.0.0.0/8, proxy.internal, 10.0.0.0/33]\n"), yaml.Unmarshal)
	if err == nil || !strings.Contains(err.Error(), "ingress.trusted_proxies[1]") || !strings.Contains(err.Error(), "ingress.trusted_proxies[2]") {
		t.Fatalf("want both bad entries named, got %v", err)
	}
}

func TestDecode_PublicURLIsAnOrigin(t *testing.T) {
	for v, ok := range map[string]bool{
		"https://gw.example":      true,
		"http://127.0.0.1:4000/":  true,
		"https://gw.example/base": false,
		"gw.example":              false,
		"https://gw.example/?a=b": false,
	} {
		_, err := Decode([]byte("ingress:\n  public_url: \""+v+"\"\n"), yaml.Unmarshal)
		if (err == nil) != ok {
			t.Errorf("public_url %q: got %v, want ok=%v", v, err, ok)
		}
	}
}

// Identity limits (ingress.identity_limits, keys[].identity_limits) are
// read; unset, they limit nothing; a negative burst is an error.
func TestDecode_IdentityLimits(t *testing.T) {
	f, err := Decode([]byte(`
ingress:
  identity_limits: {max_requests: 16, requests_per_second: 5}
keys:
  - name: team-a
    key: sk-team-a
    identity_limits: {max_requests: 4, max_streams: 2}
`), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Ingress.IdentityLimits, (KeyLimits{MaxRequests: 16, MaxServerCalls: -1, MaxStreams: -1, RequestsPerSecond: 5}); got != want {
		t.Fatalf("ingress.identity_limits = %+v, want %+v", got, want)
	}
	if got, want := f.Keys[0].IdentityLimits, (KeyLimits{MaxRequests: 4, MaxStreams: 2}); got != want {
		t.Fatalf("keys[0].identity_limits = %+v, want %+v (unset fields take ingress.identity_limits when used)", got, want)
	}
	f, err = Decode([]byte("mcp_servers:\n  a: {url: 'http://127.0.0.1:1/mcp'}\n"), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Ingress.IdentityLimits, (KeyLimits{MaxRequests: -1, MaxServerCalls: -1, MaxStreams: -1, RequestsPerSecond: -1}); got != want {
		t.Fatalf("default ingress.identity_limits = %+v, want no limit (%+v)", got, want)
	}
	_, err = Decode([]byte("ingress:\n  identity_limits: {burst: -1}\nkeys:\n  - {name: a, key: k, identity_limits: {burst: -2}}\n"), yaml.Unmarshal)
	if err == nil || !strings.Contains(err.Error(), "ingress.identity_limits.burst") || !strings.Contains(err.Error(), "keys[a].identity_limits.burst") {
		t.Fatalf("negative bursts: %v, want both named", err)
	}
}
