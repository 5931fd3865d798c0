package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// OIDC limits.
const (
	// DefaultFetchTimeout bounds one request for an issuer's discovery
	// document or JWKS.
	DefaultFetchTimeout = 10 * time.Second
	// maxDocumentBytes bounds a discovery document or JWKS.
	maxDocumentBytes = 1 << 20
	// maxTokenLen bounds a presented JWT before it is parsed.
	maxTokenLen = 16 << 10
	// maxSubjectLen bounds the subject claim.
	maxSubjectLen = 1024
	// PrincipalPrefix starts the name of every OIDC caller.
	PrincipalPrefix = "oidc:"
)

// OIDCOptions tune NewOIDC; the zero value is the production setting.
type OIDCOptions struct {
	// Client fetches discovery documents and JWKS; nil: a client that
	// follows no redirect.
	Client *http.Client
	// FetchTimeout bounds one fetch; 0: DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Now is the clock tokens are checked against; nil: time.Now.
	Now func() time.Time
}

// OIDC accepts JWT access tokens of the configured issuers (the oidc
// section) as callers. Each issuer's signing keys are fetched from its JWKS
// (the configured jwks_url, or the jwks_uri of the issuer's own discovery
// document), cached, and fetched again when a token names a key id the
// cache lacks, at most once per refresh_interval. Safe for concurrent use.
type OIDC struct {
	issuers []*issuer
	algs    []jose.SignatureAlgorithm // the union of the issuers' algorithms
	cfg     *config.File
	sep     string
}

// NewOIDC returns the verifier of cfg's oidc section, or nil when it
// configures no issuer.
func NewOIDC(cfg *config.File, o OIDCOptions) *OIDC {
	if len(cfg.OIDC) == 0 {
		return nil
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &OIDC{cfg: cfg, sep: cfg.Ingress.Separator()}
	for _, c := range cfg.OIDC {
		is := &issuer{cfg: c, client: o.Client, timeout: o.FetchTimeout, now: o.Now, jwksURL: c.JWKSURL}
		for _, a := range c.Algorithms {
			is.algs = append(is.algs, jose.SignatureAlgorithm(a))
			if !slices.Contains(v.algs, jose.SignatureAlgorithm(a)) {
				v.algs = append(v.algs, jose.SignatureAlgorithm(a))
			}
		}
		v.issuers = append(v.issuers, is)
	}
	return v
}

// Issuers are the configured issuers' identifiers, in configuration order,
// each once.
func (v *OIDC) Issuers() []string {
	var out []string
	for _, is := range v.issuers {
		if !slices.Contains(out, is.cfg.Issuer) {
			out = append(out, is.cfg.Issuer)
		}
	}
	return out
}

// LooksLikeJWT reports whether s has the form of a compact JWS (three
// dot-separated parts), so that a gateway key is never sent to the verifier.
func LooksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && len(s) <= maxTokenLen
}

// Bearer is the credential of an Authorization value without its optional
// "Bearer " prefix.
func Bearer(v string) string { return bearer(v) }

// errToken is the one answer to every refused token: why it was refused is
// for the log, not the caller (and never quotes the token).
func errToken(why string) *contracts.Error {
	return contracts.NewError(contracts.CodeUnauthorized, "invalid access token: %s", why)
}

// Verify checks token (a compact JWS) against the configured issuers and
// returns its caller: signature by a key of the issuer's JWKS with an
// allowed algorithm, iss exactly a configured issuer, aud containing that
// issuer's audience, exp present and not passed, nbf and iat not in the
// future (each with the issuer's leeway). The caller's name is derived from
// the issuer and subject; its servers and tools are the issuer's,
// narrowed by the token's claims where the issuer says so.
func (v *OIDC) Verify(token string) (*Principal, *contracts.Error) {
	if len(token) > maxTokenLen {
		return nil, errToken("too long")
	}
	tok, err := jwt.ParseSigned(token, v.algs)
	if err != nil {
		return nil, errToken("not a JWT signed with an accepted algorithm")
	}
	if len(tok.Headers) != 1 {
		return nil, errToken("want exactly one signature")
	}
	var unverified struct {
		Issuer   string       `json:"iss"`
		Audience jwt.Audience `json:"aud"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, errToken("unreadable claims")
	}
	is := v.issuerOf(unverified.Issuer, unverified.Audience)
	if is == nil {
		return nil, errToken("unknown issuer or audience")
	}
	hdr := tok.Headers[0]
	if !slices.Contains(is.algs, jose.SignatureAlgorithm(hdr.Algorithm)) {
		return nil, errToken("algorithm not accepted for this issuer")
	}
	key, cerr := is.key(hdr.KeyID)
	if cerr != nil {
		return nil, cerr
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(key, &std, &all); err != nil {
		return nil, errToken("bad signature")
	}
	now := is.now()
	if std.Expiry == nil {
		return nil, errToken("no exp")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: is.cfg.Issuer, AnyAudience: jwt.Audience{is.cfg.Audience}, Time: now}, is.cfg.Leeway.D()); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return nil, errToken("expired")
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return nil, errToken("not valid yet")
		default:
			return nil, errToken("wrong issuer or audience")
		}
	}
	sub, _ := all[is.cfg.SubjectClaim].(string)
	if sub == "" || len(sub) > maxSubjectLen {
		return nil, errToken(fmt.Sprintf("no %s claim", is.cfg.SubjectClaim))
	}
	return v.principal(is, sub, all), nil
}

// issuerOf is the configured issuer whose iss is exactly iss and whose
// audience aud contains, or nil.
func (v *OIDC) issuerOf(iss string, aud jwt.Audience) *issuer {
	for _, is := range v.issuers {
		if is.cfg.Issuer == iss && aud.Contains(is.cfg.Audience) {
			return is
		}
	}
	return nil
}

// principal is the caller of a verified token: named by a hash of the
// issuer and subject (so that one issuer's subject cannot pass for
// another's, and the name fits every header), allowed the issuer's servers
// and tools, narrowed by its claims.
func (v *OIDC) principal(is *issuer, sub string, claims map[string]any) *Principal {
	sum := sha256.Sum256([]byte("toolbus.oidc.v1\x00" + is.cfg.Issuer + "\x00" + sub))
	p := &Principal{Name: PrincipalPrefix + hex.EncodeToString(sum[:16]), sep: v.sep}
	servers := is.cfg.Servers // resolved by config.Normalize; empty: all
	if is.cfg.ServersClaim != "" || is.cfg.AccessGroupsClaim != "" {
		var named, groups []string
		if is.cfg.ServersClaim != "" {
			named = stringList(claims[is.cfg.ServersClaim])
		}
		if is.cfg.AccessGroupsClaim != "" {
			groups = stringList(claims[is.cfg.AccessGroupsClaim])
		}
		listed := v.cfg.KeyServers(named, groups)
		if len(servers) > 0 {
			listed = slices.DeleteFunc(listed, func(s string) bool { return !slices.Contains(servers, s) })
		}
		servers = listed
		p.servers = toSet(servers) // empty: no server at all
	} else if len(servers) > 0 {
		p.servers = toSet(servers)
	}
	// Tools as (server, tool) pairs, as keys' (a claimed entry that could
	// name tools of two servers names none).
	refs, restricted := is.cfg.ToolRefs()
	if is.cfg.ToolsClaim != "" {
		claimed, _ := v.cfg.KeyToolRefs(servers, stringList(claims[is.cfg.ToolsClaim]))
		if restricted {
			claimed = slices.DeleteFunc(claimed, func(r contracts.ToolRef) bool { return !slices.Contains(refs, r) })
		}
		refs, restricted = claimed, true
	}
	if restricted {
		p.setRefs(refs) // empty: no tool at all
		// As a key with a tools list: no resource, prompt, completion or
		// subscription (the oidc section has no lists granting them).
		p.resources, p.prompts = newGrants(nil, true), newGrants(nil, true)
	}
	return p
}

// stringList reads a claim that lists strings: a JSON array of strings or
// one space-separated string (as OAuth's scope).
func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// issuer is one configured issuer and its cached signing keys.
type issuer struct {
	cfg     config.OIDCIssuer
	algs    []jose.SignatureAlgorithm
	client  *http.Client
	timeout time.Duration
	now     func() time.Time

	fetches atomic.Uint64

	mu        sync.Mutex
	jwksURL   string // configured, or discovered once
	keys      map[string]*jose.JSONWebKey
	fetched   bool      // a fetch has been attempted
	lastFetch time.Time // when the last fetch started
	inflight  *keyFetch
}

// keyFetch is one fetch of the JWKS; done is closed when it has ended.
type keyFetch struct {
	done chan struct{}
	err  error
}

var errUnknownKey = errToken("unknown signing key")

// key returns the public key kid names (the only key when kid is empty and
// the set has one). A kid the cache lacks prompts one fetch of the JWKS,
// unless one started less than refresh_interval ago (a flood of made-up
// key ids costs the issuer at most one fetch per interval); concurrent
// callers share it.
func (is *issuer) key(kid string) (*jose.JSONWebKey, *contracts.Error) {
	for attempt := 0; ; attempt++ {
		is.mu.Lock()
		if k := is.lookUp(kid); k != nil {
			is.mu.Unlock()
			return k, nil
		}
		f := is.inflight
		if f == nil {
			if attempt > 0 || (is.fetched && is.now().Sub(is.lastFetch) < is.cfg.RefreshInterval.D()) {
				is.mu.Unlock()
				return nil, errUnknownKey
			}
			f = &keyFetch{done: make(chan struct{})}
			is.inflight, is.fetched, is.lastFetch = f, true, is.now()
			go is.fetch(f)
		}
		is.mu.Unlock()
		<-f.done // bounded: fetch runs under is.timeout
		if f.err != nil {
			return nil, contracts.NewError(contracts.CodeUnauthorized, "the access token's issuer keys could not be read; try again later")
		}
	}
}

// lookUp is the cached key kid names; is.mu is held.
func (is *issuer) lookUp(kid string) *jose.JSONWebKey {
	if kid == "" && len(is.keys) == 1 {
		for _, k := range is.keys {
			return k
		}
	}
	return is.keys[kid]
}

// fetch reads the JWKS (discovering its URL first if need be) and replaces
// the cache; on failure the cache stays as it was.
func (is *issuer) fetch(f *keyFetch) {
	defer close(f.done)
	ctx, cancel := context.WithTimeout(context.Background(), is.timeout)
	defer cancel()
	is.fetches.Add(1)
	is.mu.Lock()
	url := is.jwksURL
	is.mu.Unlock()
	if url == "" {
		var err error
		if url, err = is.discover(ctx); err != nil {
			is.finish(f, nil, err)
			return
		}
	}
	var set jose.JSONWebKeySet
	if err := is.getJSON(ctx, url, &set); err != nil {
		is.finish(f, nil, err)
		return
	}
	keys := map[string]*jose.JSONWebKey{}
	for i := range set.Keys {
		k := &set.Keys[i]
		// Public signing keys only: an oct (HMAC) key or a private key in
		// the set is ignored, so no token can be checked against one.
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, dup := keys[k.KeyID]; !dup {
			keys[k.KeyID] = k
		}
	}
	is.mu.Lock()
	is.jwksURL = url
	is.mu.Unlock()
	is.finish(f, keys, nil)
}

func (is *issuer) finish(f *keyFetch, keys map[string]*jose.JSONWebKey, err error) {
	is.mu.Lock()
	if err == nil {
		is.keys = keys
	}
	f.err = err
	is.inflight = nil
	is.mu.Unlock()
}

// discover reads jwks_uri from the issuer's OpenID Connect discovery
// document (or, failing that, its RFC 8414 metadata), whose issuer must be
// exactly the configured one.
func (is *issuer) discover(ctx context.Context) (string, error) {
	base := strings.TrimSuffix(is.cfg.Issuer, "/")
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	err := is.getJSON(ctx, base+"/.well-known/openid-configuration", &doc)
	if err != nil {
		err = is.getJSON(ctx, base+"/.well-known/oauth-authorization-server", &doc)
	}
	switch {
	case err != nil:
		return "", err
	case doc.Issuer != is.cfg.Issuer:
		return "", errors.New("the discovery document names another issuer")
	case !strings.HasPrefix(doc.JWKSURI, "https://") && !strings.HasPrefix(doc.JWKSURI, "http://"):
		return "", errors.New("the discovery document has no http(s) jwks_uri")
	}
	return doc.JWKSURI, nil
}

func (is *issuer) getJSON(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := is.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxDocumentBytes)).Decode(into)
}

// KeyFetches counts the fetches of the issuer iss's keys (discovery
// included), for tests and metrics.
func (v *OIDC) KeyFetches(iss string) uint64 {
	var n uint64
	for _, is := range v.issuers {
		if is.cfg.Issuer == iss {
			n += is.fetches.Load()
		}
	}
	return n
}

// Protected-resource metadata (RFC 9728) paths: the document of the whole
// gateway, and of its aggregated MCP endpoint /mcp.
const (
	WellKnownProtectedResource    = "/.well-known/oauth-protected-resource"
	WellKnownProtectedResourceMCP = WellKnownProtectedResource + "/mcp"
)

// BaseURL is the gateway's URL as its clients reach it: publicURL
// (ingress.public_url) when set, else the request's scheme and Host.
func BaseURL(r *http.Request, publicURL string) string {
	if publicURL != "" {
		return strings.TrimSuffix(publicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Challenge is the WWW-Authenticate value of a 401 to r when OIDC callers
// are accepted: Bearer with the URL of the protected-resource metadata
// that covers r's path (RFC 9728 §5.1), and error="invalid_token" when r
// presented a token that was refused.
func (v *OIDC) Challenge(r *http.Request, publicURL string, presented bool) string {
	doc := WellKnownProtectedResource
	if r.URL.Path == "/mcp" || strings.HasPrefix(r.URL.Path, "/mcp/") {
		doc = WellKnownProtectedResourceMCP
	}
	ch := `Bearer resource_metadata="` + BaseURL(r, publicURL) + doc + `"`
	if presented {
		ch += `, error="invalid_token"`
	}
	return ch
}

// ProtectedResource is the RFC 9728 metadata document for the resource at
// path (WellKnownProtectedResource or WellKnownProtectedResourceMCP) of
// the gateway at base: the resource identifier and the configured issuers
// as its authorization servers.
func (v *OIDC) ProtectedResource(base, path string) map[string]any {
	resource := base + strings.TrimPrefix(path, WellKnownProtectedResource)
	return map[string]any{
		"resource":                 resource,
		"authorization_servers":    v.Issuers(),
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "toolbus MCP gateway",
	}
}
