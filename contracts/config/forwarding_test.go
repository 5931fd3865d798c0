package config

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestForwarding_BadInputIsAStartUpError(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"hop-by-hop extra header", `mcp_servers: {s: {url: "http://h/mcp", extra_headers: [Transfer-Encoding]}}`, "mcp_servers.s.extra_headers: Transfer-Encoding is a hop-by-hop or framing header"},
		{"host", `mcp_servers: {s: {url: "http://h/mcp", extra_headers: [Host]}}`, "hop-by-hop or framing"},
		{"not a header name", `mcp_servers: {s: {url: "http://h/mcp", extra_headers: ["X Tenant"]}}`, `"X Tenant" is not a header name`},
		{"the gateway key", `mcp_servers: {s: {url: "http://h/mcp", extra_headers: [x-litellm-api-key]}}`, "carries the gateway key"},
		{"auth none", `mcp_servers: {s: {url: "http://h/mcp", auth: none, extra_headers: [X-Tenant]}}`, "auth none receives nothing of the caller's"},
		{"extra headers on stdio", `mcp_servers: {s: {command: x, extra_headers: [X-Tenant]}}`, "a stdio server takes no headers"},
		{"placeholder off stdio", `mcp_servers: {s: {url: "http://h/mcp", env: {T: "${X-Tenant}"}}}`, "only a stdio server's env takes header placeholders"},
		{"placeholder of a framing header", `mcp_servers: {s: {command: x, env: {T: "${Content-Length}"}}}`, "mcp_servers.s.env: content-length is a hop-by-hop"},
		{"placeholder of the gateway key", `mcp_servers: {s: {command: x, env: {K: "${X-Litellm-Key}"}}}`, "carries the gateway key"},
		{"renamed legacy header", `general_settings: {mcp_client_side_auth_header_name: "x-litellm-key"}`, "mcp_client_side_auth_header_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.file+"\n"), yaml.Unmarshal)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestServer_HeaderPlaceholders(t *testing.T) {
	s := &Server{Env: map[string]string{"A": "${X-Tenant}/${x-tenant}", "B": "${HOME} ${X-Api-Key}", "C": "$X-Not ${NoDash}"}}
	if got := s.HeaderPlaceholders(); !slices.Equal(got, []string{"x-api-key", "x-tenant"}) {
		t.Fatalf("placeholders %v", got)
	}
	got := ExpandPlaceholders(s.Env["B"]+"|"+s.Env["A"], func(name string) string { return map[string]string{"x-tenant": "acme"}[name] })
	if got != "${HOME} |acme/acme" {
		t.Fatalf("expanded %q", got)
	}
}

func TestServer_ReservedHeaders(t *testing.T) {
	for _, tc := range []struct {
		c    Credentials
		want []string
	}{
		{Credentials{AuthType: AuthTypePassthrough}, nil},
		{Credentials{AuthType: AuthTypeAPIKey, AuthValue: "k", StaticHeaders: map[string]string{"X-Static": "s"}}, []string{"authorization", "x-api-key", "x-static"}},
		{Credentials{AuthType: AuthTypeBearerToken, AuthValue: "k"}, []string{"authorization"}},
		{Credentials{AuthType: AuthTypeAWSSigV4}, []string{"authorization", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"}},
	} {
		s := &Server{Credentials: tc.c}
		if got := s.ReservedHeaders(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.c.AuthType, got, tc.want)
		}
	}
}
