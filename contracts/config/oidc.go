package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

// OIDC defaults.
const (
	// DefaultOIDCLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultOIDCLeeway = 30 * time.Second
	// DefaultOIDCRefreshInterval is the least time between two fetches of
	// one issuer's JWKS prompted by an unknown key id.
	DefaultOIDCRefreshInterval = 30 * time.Second
	// DefaultOIDCSubjectClaim names the caller within its issuer.
	DefaultOIDCSubjectClaim = "sub"
)

// OIDCAlgorithms are the JWS algorithms a token may be signed with: the
// asymmetric ones only (never none, never an HMAC, whose "key" would be the
// issuer's public key).
var OIDCAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// OIDCIssuer is an OpenID Connect / OAuth 2.0 issuer whose JWT access
// tokens the ingress accepts as callers, besides gateway keys (the oidc
// section). A token arrives in Authorization: Bearer when no gateway key
// header is present.
type OIDCIssuer struct {
	// Issuer is the iss every token must carry, exactly (no trailing-slash
	// or case folding). Required.
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's aud values. Required.
	Audience string `yaml:"audience"`
	// JWKSURL is where the issuer's signing keys are read. Default: the
	// jwks_uri of the issuer's discovery document
	// (<issuer>/.well-known/openid-configuration), read once at first use.
	JWKSURL string `yaml:"jwks_url"`
	// Algorithms a token may be signed with; default and bound
	// OIDCAlgorithms.
	Algorithms []string `yaml:"algorithms"`
	// SubjectClaim names the caller within the issuer (its value must be a
	// non-empty string). Default sub.
	SubjectClaim string `yaml:"subject_claim"`
	// Servers, AccessGroups and Tools are what every token of the issuer
	// may use, as a key's (all empty: everything). Normalize resolves
	// Servers to server names, the groups' servers added.
	Servers      []string `yaml:"servers"`
	AccessGroups []string `yaml:"access_groups"`
	Tools        []string `yaml:"tools"`
	// ServersClaim, AccessGroupsClaim and ToolsClaim, when set, name claims
	// (a list of strings, or one space-separated string) that narrow what
	// a token may use: the servers its servers claim names (server names
	// or aliases) and the servers of the access groups its groups claim
	// names, within Servers; the tools its tools claim names, within
	// Tools. A token that lacks the claims may use nothing.
	ServersClaim      string `yaml:"servers_claim"`
	AccessGroupsClaim string `yaml:"access_groups_claim"`
	ToolsClaim        string `yaml:"tools_claim"`
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30s
	// (DefaultOIDCLeeway); at most 5m.
	Leeway Duration `yaml:"leeway"`
	// RefreshInterval is the least time between two JWKS fetches prompted
	// by a token with an unknown key id. Default 30s
	// (DefaultOIDCRefreshInterval).
	RefreshInterval Duration `yaml:"refresh_interval"`

	rawServers, rawTools []string
	toolRefs             []contracts.ToolRef
	toolsResolved        bool
}

// ToolRefs are the (server, tool) pairs Tools resolve to, and whether the
// issuer has a tool list at all (else every tool of its servers).
func (o *OIDCIssuer) ToolRefs() ([]contracts.ToolRef, bool) {
	return o.toolRefs, o.toolsResolved
}

// normalizeOIDC applies the oidc section's defaults and resolves its
// tool lists as keys' are.
func (f *File) normalizeOIDC(sep string, bad func(string, ...any)) {
	for i := range f.OIDC {
		o := &f.OIDC[i]
		if len(o.Algorithms) == 0 {
			o.Algorithms = slices.Clone(OIDCAlgorithms)
		}
		if o.SubjectClaim == "" {
			o.SubjectClaim = DefaultOIDCSubjectClaim
		}
		setDefault(&o.Leeway, DefaultOIDCLeeway)
		setDefault(&o.RefreshInterval, DefaultOIDCRefreshInterval)
		if len(o.Servers) > 0 || len(o.AccessGroups) > 0 {
			if o.rawServers == nil {
				o.rawServers = slices.Clone(o.Servers)
				if o.rawServers == nil {
					o.rawServers = []string{}
				}
			}
			o.Servers = f.KeyServers(o.rawServers, o.AccessGroups)
			if len(o.Servers) == 0 {
				o.Servers = []string{noServer}
			}
		}
		if len(o.Tools) > 0 || o.rawTools != nil {
			if o.rawTools == nil {
				o.rawTools = slices.Clone(o.Tools)
			}
			refs, err := f.keyToolRefs(o.Servers, o.rawTools, sep)
			if err != nil {
				bad("oidc[%d].tools: %v", i, err)
			}
			o.toolRefs, o.toolsResolved = refs, true
			o.Tools = refNames(refs, sep)
			if len(o.Tools) == 0 {
				o.Tools = []string{fmt.Sprintf("%s(no tool)", sep)}
			}
		}
	}
}

// validateOIDC reports every problem of the oidc section.
func (f *File) validateOIDC(bad func(format string, args ...any)) {
	seen := map[string]bool{}
	for i, o := range f.OIDC {
		where := fmt.Sprintf("oidc[%d]", i)
		if !httpURL(o.Issuer) {
			bad("%s.issuer: an http(s) URL is required", where)
		} else if u, _ := url.Parse(o.Issuer); u.Scheme != "https" && !loopback(u.Hostname()) {
			bad("%s.issuer: https is required (http only on a loopback address)", where)
		}
		if seen[o.Issuer+"\x00"+o.Audience] {
			bad("%s: issuer %q with audience %q is configured twice", where, o.Issuer, o.Audience)
		}
		seen[o.Issuer+"\x00"+o.Audience] = true
		if o.Audience == "" {
			bad("%s.audience: required (a token must be meant for this gateway)", where)
		}
		if o.JWKSURL != "" && !httpURL(o.JWKSURL) {
			bad("%s.jwks_url: want an http(s) URL", where)
		}
		for _, a := range o.Algorithms {
			if !slices.Contains(OIDCAlgorithms, a) {
				bad("%s.algorithms: %q is not one of %s", where, a, strings.Join(OIDCAlgorithms, ", "))
			}
		}
		if o.Leeway.D() < 0 || o.Leeway.D() > 5*time.Minute {
			bad("%s.leeway: between 0 and 5m", where)
		}
		if o.RefreshInterval.D() < time.Second {
			bad("%s.refresh_interval: at least 1s", where)
		}
		for _, s := range o.Servers {
			if _, ok := f.MCPServers[s]; !ok && s != noServer {
				bad("%s.servers: unknown server %q", where, s)
			}
		}
		if (len(o.AccessGroups) == 0 && isEmptyList(o.rawServers, o.Servers)) || isEmptyList(o.rawTools, o.Tools) || (o.AccessGroups != nil && len(o.AccessGroups) == 0) {
			bad("%s: servers: [], tools: [] or access_groups: [] is not \"every one\": omit the field for that", where)
		}
		groups := f.AccessGroups()
		for _, g := range o.AccessGroups {
			if _, ok := groups[g]; !ok {
				bad("%s.access_groups: no server declares the access group %q", where, g)
			}
		}
	}
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// isEmptyList reports whether a list was written empty ([]): raw as
// written before Normalize if it kept it, else the field.
func isEmptyList(raw, field []string) bool {
	if raw != nil {
		return len(raw) == 0
	}
	return field != nil && len(field) == 0
}
