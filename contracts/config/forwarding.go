package config

import (
	"regexp"
	"slices"
	"strings"

	"github.com/toolbus/toolbus/contracts"
)

// DefaultClientSideAuthHeader is LiteLLM's legacy header for the caller's
// credential to every server (general_settings.mcp_client_side_auth_header_name
// renames it).
const DefaultClientSideAuthHeader = "x-mcp-auth"

// ClientSideAuthHeader is the legacy header's name, lower-case.
func (g *GeneralSettings) ClientSideAuthHeader() string {
	if g.MCPClientSideAuthHeaderName == "" {
		return DefaultClientSideAuthHeader
	}
	return strings.ToLower(g.MCPClientSideAuthHeaderName)
}

// placeholder is ${Header-Name} in a stdio server's env value: a header
// name with a '-' in it, which no environment variable name has.
var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)+)\}`)

// forwarding is what HeaderPlaceholders and ReservedHeaders return,
// computed once by Normalize: both are read on every call.
type forwarding struct{ placeholders, reserved []string }

func (s *Server) normalizeForwarding() {
	s.forwarding = nil
	// Clipped: an append by a reader copies rather than writes the cache.
	s.forwarding = &forwarding{placeholders: slices.Clip(s.HeaderPlaceholders()), reserved: slices.Clip(s.ReservedHeaders())}
}

// HeaderPlaceholders returns the header names (lower-case, sorted, once
// each) that ${Header-Name} placeholders in the server's env values name.
// The caller must not change the slice.
func (s *Server) HeaderPlaceholders() []string {
	if s.forwarding != nil {
		return s.forwarding.placeholders
	}
	var out []string
	for _, v := range s.Env {
		for _, m := range placeholder.FindAllStringSubmatch(v, -1) {
			out = append(out, strings.ToLower(m[1]))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ExpandPlaceholders returns v with each ${Header-Name} placeholder
// replaced by header(name) (name lower-case).
func ExpandPlaceholders(v string, header func(name string) string) string {
	return placeholder.ReplaceAllStringFunc(v, func(m string) string {
		return header(strings.ToLower(m[2 : len(m)-1]))
	})
}

// ReservedHeaders returns the header names (lower-case) no header
// forwarded from a caller may set on this server: those its own
// credential sets, and its static_headers. The configured values win. The
// caller must not change the slice.
func (s *Server) ReservedHeaders() []string {
	if s.forwarding != nil {
		return s.forwarding.reserved
	}
	var out []string
	switch {
	case s.AuthType == AuthTypeAWSSigV4:
		out = append(out, "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token")
	case s.HasServiceCredential():
		out = append(out, "authorization")
		if h := s.credentialHeader(); h != "" {
			out = append(out, strings.ToLower(h))
		}
	}
	for name := range s.StaticHeaders {
		out = append(out, strings.ToLower(name))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// gatewayKeyHeaders carry the gateway key, which no server receives.
var gatewayKeyHeaders = []string{"x-litellm-key", "x-litellm-api-key"}

// validateForwarding checks extra_headers and ${Header-Name} placeholders.
func (s *Server) validateForwarding(bad func(format string, args ...any)) {
	where := "mcp_servers." + s.Name
	none := s.Auth == AuthNone || s.AuthType == AuthTypeNone
	check := func(key, name string) {
		lower := strings.ToLower(name)
		switch {
		case !contracts.ValidHeaderName(name):
			bad("%s.%s: %q is not a header name", where, key, name)
		case !contracts.Forwardable(name):
			bad("%s.%s: %s is a hop-by-hop or framing header, which is never forwarded", where, key, name)
		case slices.Contains(gatewayKeyHeaders, lower):
			bad("%s.%s: %s carries the gateway key, which no server receives", where, key, name)
		case none:
			bad("%s.%s: a server with auth none receives nothing of the caller's", where, key)
		}
	}
	for _, name := range s.ExtraHeaders {
		check("extra_headers", name)
	}
	if len(s.ExtraHeaders) > 0 && s.Transport == TransportStdio {
		bad("%s.extra_headers: a stdio server takes no headers; use ${Header-Name} in env", where)
	}
	for _, name := range s.HeaderPlaceholders() {
		check("env", name)
	}
	if ph := s.HeaderPlaceholders(); len(ph) > 0 && s.Transport != TransportStdio {
		bad("%s.env: ${%s}: only a stdio server's env takes header placeholders", where, ph[0])
	}
}

// validateClientSideAuthHeader checks general_settings.mcp_client_side_auth_header_name.
func (g *GeneralSettings) validateClientSideAuthHeader(bad func(format string, args ...any)) {
	if n := g.MCPClientSideAuthHeaderName; n != "" && (!contracts.ValidHeaderName(n) || !contracts.Forwardable(n) ||
		slices.Contains(gatewayKeyHeaders, strings.ToLower(n))) {
		bad("general_settings.mcp_client_side_auth_header_name: %q is not a header name toolbus can read the caller's credential from", n)
	}
}
