package config

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The mcp_servers entries of LiteLLM's MCP authentication documentation
// (mcp_authentication.md, mcp_oauth.md, mcp_aws_sigv4.md), keys as written
// there; only hosts and values changed.
const liteLLMAuthDocs = `
mcp_servers:
  public_inventory:
    url: "https://mcp.example.com/mcp"
    transport: "http"
    auth_type: "none"
  basic_inventory:
    url: "https://mcp.example.com/mcp"
    transport: "http"
    auth_type: "basic"
    auth_value: "username:password"
  key_inventory:
    url: "https://mcp.example.com/mcp"
    transport: "http"
    auth_type: "api_key"
    auth_value: "inventory-key"
  bearer_inventory:
    url: "https://mcp.example.com/mcp"
    transport: "http"
    auth_type: "bearer_token"
    auth_value: "inventory-token"
  custom_scheme:
    url: "https://mcp.example.com/mcp"
    transport: "http"
    auth_type: "authorization"
    auth_value: "Custom tok"
  older_name:
    url: "https://mcp.example.com/mcp"
    auth_type: "bearer_token"
    authentication_token: "old-token"
  custom_headers:
    url: "https://mcp.example.com/mcp"
    transport: "http"
    auth_type: "none"
    static_headers:
      X-Custom-Auth: "custom"
  my_mcp_server:
    url: "https://my-mcp-server.com/mcp"
    auth_type: oauth2
    oauth2_flow: client_credentials
    client_id: "id"
    client_secret: "secret"
    token_url: "https://auth.example.com/oauth/token"
    scopes: ["mcp:read", "mcp:write"]
  github_mcp:
    url: "https://api.githubcopilot.com/mcp"
    auth_type: oauth2
    oauth2_flow: authorization_code
    client_id: "gh-id"
    client_secret: "gh-secret"
  passthrough:
    url: "https://mcp.example.com/mcp"
    auth_type: true_passthrough
  my_agentcore_mcp:
    url: "https://bedrock-agentcore.us-east-1.amazonaws.com/runtimes/arn/invocations"
    transport: "http"
    auth_type: "aws_sigv4"
    aws_access_key_id: "AKIDEXAMPLE"
    aws_secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    aws_session_token: "session"
    aws_region_name: "us-east-1"
  legacy_none:
    url: "https://mcp.example.com/mcp"
    auth: none
  seed:
    url: "https://mcp.example.com/mcp"
`

func TestCredentials_LiteLLMDocumentationConfigs(t *testing.T) {
	f, err := Decode([]byte(liteLLMAuthDocs), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		caller, service bool
		header, value   string
	}
	for name, w := range map[string]want{
		"public_inventory": {},
		"basic_inventory":  {service: true, header: "Authorization", value: "Basic dXNlcm5hbWU6cGFzc3dvcmQ="},
		"key_inventory":    {service: true, header: "X-API-Key", value: "inventory-key"},
		"bearer_inventory": {service: true, header: "Authorization", value: "Bearer inventory-token"},
		"custom_scheme":    {service: true, header: "Authorization", value: "Custom tok"},
		"older_name":       {service: true, header: "Authorization", value: "Bearer old-token"},
		"custom_headers":   {},
		"my_mcp_server":    {service: true},
		"github_mcp":       {caller: true},
		"passthrough":      {caller: true},
		"my_agentcore_mcp": {service: true},
		"legacy_none":      {},
		"seed":             {caller: true},
	} {
		s := f.MCPServers[name]
		if s.ReceivesCaller() != w.caller || s.HasServiceCredential() != w.service {
			t.Errorf("%s: receives caller %v, service credential %v; want %v, %v", name, s.ReceivesCaller(), s.HasServiceCredential(), w.caller, w.service)
		}
		if h, v := s.ServiceHeader(); h != w.header || v != w.value {
			t.Errorf("%s: service header %q: %q, want %q: %q", name, h, v, w.header, w.value)
		}
	}
	if s := f.MCPServers["legacy_none"]; s.AuthType != AuthTypeNone || s.Auth != AuthNone {
		t.Errorf("auth: none is not auth_type none: %q %q", s.AuthType, s.Auth)
	}
	if s := f.MCPServers["public_inventory"]; s.Auth != AuthNone {
		t.Errorf("auth_type none leaves auth %q", s.Auth)
	}
	if s := f.MCPServers["my_agentcore_mcp"]; s.AWSServiceName != DefaultAWSServiceName {
		t.Errorf("aws_service_name default %q", s.AWSServiceName)
	}
	if s := f.MCPServers["my_mcp_server"]; strings.Join(s.Scopes, " ") != "mcp:read mcp:write" || s.TokenURL == "" {
		t.Errorf("client credentials not read: %+v", s.Credentials)
	}
	// Normalize runs twice without changing the meaning.
	if err := f.Normalize(); err != nil {
		t.Fatal(err)
	}
	if s := f.MCPServers["basic_inventory"]; s.AuthType != AuthTypeBasic {
		t.Errorf("second Normalize changed auth_type to %q", s.AuthType)
	}
}

func TestCredentials_PreEncodedBasicIsSentAsIs(t *testing.T) {
	c := Credentials{AuthType: AuthTypeBasic, AuthValue: "dXNlcm5hbWU6cGFzc3dvcmQ="}
	if _, v := c.ServiceHeader(); v != "Basic dXNlcm5hbWU6cGFzc3dvcmQ=" {
		t.Fatalf("got %q", v)
	}
}

// An aws_sigv4 server with aws_role_name is accepted with its keys (the
// STS client's); the session name defaults, aws_sts_endpoint is kept.
func TestCredentials_AWSRoleAssumption(t *testing.T) {
	f, err := Decode([]byte(`mcp_servers:
  role:
    url: "https://bedrock-agentcore.us-east-1.amazonaws.com/runtimes/arn/invocations"
    auth_type: aws_sigv4
    aws_region_name: us-east-1
    aws_access_key_id: AKIDEXAMPLE
    aws_secret_access_key: secret
    aws_role_name: "arn:aws:iam::123456789012:role/agentcore"
    aws_sts_endpoint: "https://vpce-1.sts.us-east-1.vpce.amazonaws.com"
  named:
    url: "https://bedrock-agentcore.us-east-1.amazonaws.com/runtimes/arn/invocations"
    auth_type: aws_sigv4
    aws_region_name: us-east-1
    aws_access_key_id: AKIDEXAMPLE
    aws_secret_access_key: secret
    aws_role_name: "arn:aws:iam::123456789012:role/agentcore"
    aws_session_name: litellm-session
`), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.MCPServers["role"]; s.AWSSessionName != DefaultAWSSessionName || s.AWSSTSEndpoint != "https://vpce-1.sts.us-east-1.vpce.amazonaws.com" || !s.HasServiceCredential() {
		t.Errorf("role: %+v", s.Credentials)
	}
	if s := f.MCPServers["named"]; s.AWSSessionName != "litellm-session" || s.AWSSTSEndpoint != "" {
		t.Errorf("named: %+v", s.Credentials)
	}
}

// Bad credential settings are start-up errors naming the server and key,
// and never quoting a secret.
func TestCredentials_BadInputIsAStartUpError(t *testing.T) {
	for _, tc := range []struct{ name, server, want string }{
		{"unknown auth_type", `{url: "http://h/mcp", auth_type: apikey}`, `mcp_servers.s.auth_type: "apikey" is not one of`},
		{"api_key without value", `{url: "http://h/mcp", auth_type: api_key}`, "mcp_servers.s.auth_value: required for auth_type api_key"},
		{"basic without value", `{url: "http://h/mcp", auth_type: basic}`, "mcp_servers.s.auth_value: required for auth_type basic"},
		{"basic neither user:password nor base64", `{url: "http://h/mcp", auth_type: basic, auth_value: "s3cr3t-value"}`, "want user:password"},
		{"CR/LF in a value", `{url: "http://h/mcp", auth_type: bearer_token, auth_value: "s3cr3t-value\r\nX-Evil: 1"}`, "control characters"},
		{"client credentials without token_url", `{url: "http://h/mcp", auth_type: oauth2, oauth2_flow: client_credentials, client_id: a, client_secret: s3cr3t-value}`, "mcp_servers.s.token_url: an http(s) URL is required"},
		{"client credentials without client_id", `{url: "http://h/mcp", auth_type: oauth2, oauth2_flow: client_credentials, token_url: "http://t/token"}`, "mcp_servers.s.client_id: required"},
		{"unknown flow", `{url: "http://h/mcp", auth_type: oauth2, oauth2_flow: password}`, "mcp_servers.s.oauth2_flow"},
		{"interactive oauth2 on stdio", `{command: x, auth_type: oauth2}`, "interactive oauth2 needs an http or sse server"},
		{"authorization_url not http(s)", `{url: "http://h/mcp", auth_type: oauth2, authorization_url: "javascript:x"}`, "mcp_servers.s.authorization_url: want an http(s) URL"},
		{"registration_url with client credentials", `{url: "http://h/mcp", auth_type: oauth2, oauth2_flow: client_credentials, client_id: a, token_url: "http://t/token", registration_url: "http://t/reg"}`, "mcp_servers.s.registration_url: only for auth_type oauth2 without client_credentials"},
		{"authorization_url without oauth2", `{url: "http://h/mcp", authorization_url: "http://t/auth"}`, "mcp_servers.s.authorization_url: only for"},
		{"sigv4 without region", `{url: "http://h/mcp", auth_type: aws_sigv4, aws_access_key_id: a, aws_secret_access_key: s3cr3t-value}`, "mcp_servers.s.aws_region_name: required"},
		{"sigv4 without keys", `{url: "http://h/mcp", auth_type: aws_sigv4, aws_region_name: us-east-1}`, "needs aws_access_key_id and aws_secret_access_key"},
		{"sigv4 role without keys", `{url: "http://h/mcp", auth_type: aws_sigv4, aws_region_name: us-east-1, aws_role_name: "arn:aws:iam::123456789012:role/r"}`, "needs aws_access_key_id and aws_secret_access_key, with aws_role_name too"},
		{"sigv4 role not an ARN", `{url: "http://h/mcp", auth_type: aws_sigv4, aws_region_name: us-east-1, aws_access_key_id: a, aws_secret_access_key: s3cr3t-value, aws_role_name: r}`, "mcp_servers.s.aws_role_name: want a role ARN"},
		{"sigv4 sts endpoint not http(s)", `{url: "http://h/mcp", auth_type: aws_sigv4, aws_region_name: us-east-1, aws_access_key_id: a, aws_secret_access_key: s3cr3t-value, aws_role_name: "arn:aws:iam::123456789012:role/r", aws_sts_endpoint: "ftp://sts"}`, "mcp_servers.s.aws_sts_endpoint: want an http(s) URL"},
		{"sigv4 bad session name", `{url: "http://h/mcp", auth_type: aws_sigv4, aws_region_name: us-east-1, aws_access_key_id: a, aws_secret_access_key: s3cr3t-value, aws_role_name: "arn:aws:iam::123456789012:role/r", aws_session_name: "has space"}`, "mcp_servers.s.aws_session_name: want 2 to 64"},
		{"sigv4 session name without a role", `{url: "http://h/mcp", auth_type: aws_sigv4, aws_region_name: us-east-1, aws_access_key_id: a, aws_secret_access_key: s3cr3t-value, aws_session_name: x}`, "only for a server with aws_role_name"},
		{"auth none and a service credential", `{url: "http://h/mcp", auth: none, auth_type: api_key, auth_value: s3cr3t-value}`, "auth none contradicts auth_type api_key"},
		{"both value names differ", `{url: "http://h/mcp", auth_type: api_key, auth_value: s3cr3t-value, authentication_token: s3cr3t-other}`, "differ"},
		{"value without a type that takes one", `{url: "http://h/mcp", auth_value: s3cr3t-value}`, "mcp_servers.s.auth_value: only auth_type"},
		{"service credential on stdio", `{command: x, auth_type: api_key, auth_value: s3cr3t-value}`, "a stdio server takes no service credential"},
		{"static header the auth type sets", `{url: "http://h/mcp", auth_type: bearer_token, auth_value: s3cr3t-value, static_headers: {authorization: s3cr3t-value}}`, "mcp_servers.s.static_headers.authorization: auth_type bearer_token sets this header"},
		{"bad static header name", `{url: "http://h/mcp", static_headers: {"X Bad": s3cr3t-value}}`, "not a valid header name"},
		{"CR/LF in a static header", `{url: "http://h/mcp", static_headers: {X-Key: "s3cr3t-value\nX: y"}}`, "control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte("mcp_servers:\n  s: "+tc.server+"\n"), yaml.Unmarshal)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("the error quotes a secret: %v", err)
			}
		})
	}
}

// Every field holding a secret carries secret:"true", which `check` reads to
// redact; no other credential field does.
func TestCredentials_SecretFieldsAreTagged(t *testing.T) {
	want := map[string]bool{"auth_value": true, "authentication_token": true, "static_headers": true,
		"client_secret": true, "aws_access_key_id": true, "aws_secret_access_key": true, "aws_session_token": true}
	typ := reflect.TypeFor[Credentials]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("yaml")
		if got := f.Tag.Get("secret") == "true"; got != want[name] {
			t.Errorf("%s: secret tag %v, want %v", name, got, want[name])
		}
	}
	if f, ok := reflect.TypeFor[Server]().FieldByName("Credentials"); !ok || !f.Anonymous || f.Tag.Get("yaml") != ",inline" {
		t.Fatal("Credentials is not embedded inline in Server")
	}
}

// What check prints (WriteEffective) holds none of the credential secrets,
// and still shows the settings that are not secret.
func TestCredentials_CheckRedactsEverySecret(t *testing.T) {
	f, err := Decode([]byte(liteLLMAuthDocs), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := f.WriteEffective(&out); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"username:password", "inventory-key", "inventory-token", "Custom tok", "old-token", "custom\n",
		`"secret"`, "gh-secret", "AKIDEXAMPLE", "wJalrXUtnFEMI", "session\n"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("check prints %q", secret)
		}
	}
	for _, shown := range []string{"auth_type: bearer_token", "token_url: https://auth.example.com/oauth/token", "aws_region_name: us-east-1", "X-Custom-Auth"} {
		if !strings.Contains(out.String(), shown) {
			t.Errorf("check does not show %q", shown)
		}
	}
}
