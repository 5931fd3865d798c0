package oauthproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
)

// Discovery bounds.
const (
	// fetchTimeout bounds every request to an upstream (metadata,
	// registration, token).
	fetchTimeout = 10 * time.Second
	// discoverBound bounds one whole discovery (several fetches).
	discoverBound = 20 * time.Second
	// maxDocument bounds a metadata document or a relayed response.
	maxDocument = 1 << 20
	// metadataTTL is how long discovered metadata is used before it is
	// fetched again; failureTTL how long a failed discovery is remembered
	// (the error is answered at once meanwhile); staleFor how long metadata
	// that can no longer be refreshed is still used.
	metadataTTL = 5 * time.Minute
	failureTTL  = 15 * time.Second
	staleFor    = time.Hour
)

// upstreamAS is what the proxy knows of a server's authorization server.
type upstreamAS struct {
	// Issuer is the authorization server's issuer (empty when its endpoints
	// are configured, not discovered).
	Issuer                string
	AuthorizationEndpoint string
	TokenEndpoint         string
	RegistrationEndpoint  string
	// Resource is the RFC 8707 resource indicator the upstream's tokens are
	// issued for: its protected-resource metadata's resource, else the
	// server's URL.
	Resource         string
	Scopes           []string
	TokenAuthMethods []string
}

// asMetadata is the part of an RFC 8414 document the proxy reads.
type asMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
}

// prMetadata is the part of an RFC 9728 document the proxy reads.
type prMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
}

// errUnavailable marks a discovery that failed because an upstream did not
// answer or answered badly (as opposed to a configuration that lacks what
// discovery would need).
var errUnavailable = errors.New("the authorization server is unavailable")

// discovery caches each server's upstreamAS. Entries are keyed by the
// configured server name, so there are at most as many as servers.
type discovery struct {
	client  *http.Client
	now     func() time.Time
	timeout time.Duration // of each request: fetchTimeout

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	as      *upstreamAS
	fetched time.Time // when as was fetched
	err     error
	expires time.Time     // of as, or of err
	wait    chan struct{} // closed when the fetch under way ends; nil if none
}

func newDiscovery(client *http.Client) *discovery {
	return &discovery{client: client, now: time.Now, timeout: fetchTimeout, entries: map[string]*entry{}}
}

// get returns srv's upstreamAS: cached while fresh, else fetched by one
// caller while the others wait (bounded by ctx). A failed refresh keeps the
// last good metadata for staleFor.
func (d *discovery) get(ctx context.Context, srv *config.Server) (*upstreamAS, error) {
	for {
		d.mu.Lock()
		e := d.entries[srv.Name]
		if e == nil {
			e = &entry{}
			d.entries[srv.Name] = e
		}
		now := d.now()
		if now.Before(e.expires) {
			as, err := e.as, e.err
			if err != nil && as != nil && now.Sub(e.fetched) < staleFor {
				err = nil
			}
			d.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return as, nil
		}
		if w := e.wait; w != nil {
			d.mu.Unlock()
			select {
			case <-w:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %v", errUnavailable, ctx.Err())
			}
		}
		w := make(chan struct{})
		e.wait = w
		d.mu.Unlock()

		// The fetch is shared: it must not end with this caller's request.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discoverBound)
		as, err := d.discover(fctx, srv)
		cancel()

		d.mu.Lock()
		now = d.now()
		if err == nil {
			e.as, e.fetched, e.err, e.expires = as, now, nil, now.Add(metadataTTL)
		} else {
			e.err, e.expires = err, now.Add(failureTTL)
		}
		e.wait = nil
		close(w)
		d.mu.Unlock()
	}
}

// discover finds srv's authorization server. Configured endpoints
// (authorization_url, token_url, registration_url) win; what is not
// configured comes from the upstream's protected-resource metadata (at
// its well-known URLs or named by its 401 challenge, on the server's own
// origin only) and the metadata of the authorization server that names.
func (d *discovery) discover(ctx context.Context, srv *config.Server) (*upstreamAS, error) {
	c := &srv.Credentials
	as := &upstreamAS{
		AuthorizationEndpoint: c.AuthorizationURL, TokenEndpoint: c.TokenURL,
		RegistrationEndpoint: c.RegistrationURL, Resource: srv.URL,
	}
	if as.AuthorizationEndpoint != "" && as.TokenEndpoint != "" {
		return as, nil
	}
	prm, err := d.protectedResource(ctx, srv.URL)
	if err != nil {
		return nil, err
	}
	if prm.Resource != "" {
		as.Resource = prm.Resource
	}
	issuer := prm.AuthorizationServers[0]
	meta, err := d.authorizationServer(ctx, issuer)
	if err != nil {
		return nil, err
	}
	as.Issuer = meta.Issuer
	as.Scopes = prm.ScopesSupported
	if len(meta.ScopesSupported) > 0 {
		as.Scopes = meta.ScopesSupported
	}
	as.TokenAuthMethods = meta.TokenEndpointAuthMethodsSupported
	if as.AuthorizationEndpoint == "" {
		as.AuthorizationEndpoint = meta.AuthorizationEndpoint
	}
	if as.TokenEndpoint == "" {
		as.TokenEndpoint = meta.TokenEndpoint
	}
	if as.RegistrationEndpoint == "" {
		as.RegistrationEndpoint = meta.RegistrationEndpoint
	}
	for _, u := range []string{as.AuthorizationEndpoint, as.TokenEndpoint, as.RegistrationEndpoint} {
		if u != "" && !httpURL(u) {
			return nil, fmt.Errorf("%w: its metadata names an endpoint that is not an http(s) URL", errUnavailable)
		}
	}
	if as.AuthorizationEndpoint == "" || as.TokenEndpoint == "" {
		return nil, fmt.Errorf("%w: its metadata names no authorization or token endpoint", errUnavailable)
	}
	return as, nil
}

// protectedResource fetches the RFC 9728 metadata of the MCP server at
// serverURL: at its well-known URLs (path-inserted, then the root), else
// at the URL its 401 challenge names, if that is on the same origin.
func (d *discovery) protectedResource(ctx context.Context, serverURL string) (*prMetadata, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, err
	}
	origin := u.Scheme + "://" + u.Host
	candidates := []string{}
	if p := strings.TrimSuffix(u.EscapedPath(), "/"); p != "" {
		candidates = append(candidates, origin+"/.well-known/oauth-protected-resource"+p)
	}
	candidates = append(candidates, origin+"/.well-known/oauth-protected-resource")
	if named := d.challenge(ctx, serverURL); named != "" && !contains(candidates, named) {
		if n, err := url.Parse(named); err == nil && n.Scheme+"://"+n.Host == origin && n.User == nil {
			candidates = append(candidates, named)
		}
	}
	var last error
	for _, c := range candidates {
		var prm prMetadata
		if last = d.fetchJSON(ctx, c, &prm); last != nil {
			continue
		}
		if len(prm.AuthorizationServers) == 0 || !httpURL(prm.AuthorizationServers[0]) {
			last = fmt.Errorf("%w: the server's resource metadata names no http(s) authorization server", errUnavailable)
			continue
		}
		if prm.Resource != "" {
			r, err := url.Parse(prm.Resource)
			if err != nil || r.Scheme+"://"+r.Host != origin {
				last = fmt.Errorf("%w: the server's resource metadata names a resource on another origin", errUnavailable)
				continue
			}
		}
		return &prm, nil
	}
	return nil, last
}

// challenge asks the MCP server for its 401 challenge and returns the
// resource_metadata URL it names, if any.
func (d *discovery) challenge(ctx context.Context, serverURL string) string {
	body := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"toolbus","version":"1"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, strings.NewReader(body))
	if err != nil {
		return ""
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := d.do(req)
	if err != nil {
		return ""
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocument))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return ""
	}
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		if v := authParam(h, "resource_metadata"); v != "" {
			return v
		}
	}
	return ""
}

// authorizationServer fetches the RFC 8414 (or OpenID Connect discovery)
// metadata of issuer, whose issuer must be issuer exactly (a trailing slash
// aside).
func (d *discovery) authorizationServer(ctx context.Context, issuer string) (*asMetadata, error) {
	var last error
	for _, c := range metadataURLs(issuer) {
		var meta asMetadata
		if last = d.fetchJSON(ctx, c, &meta); last != nil {
			continue
		}
		if strings.TrimSuffix(meta.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
			return nil, fmt.Errorf("%w: its metadata names another issuer", errUnavailable)
		}
		return &meta, nil
	}
	return nil, last
}

// metadataURLs are the discovery URLs of issuer: RFC 8414 path insertion,
// then OpenID Connect discovery's two forms.
func metadataURLs(issuer string) []string {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil
	}
	origin := u.Scheme + "://" + u.Host
	p := strings.Trim(u.EscapedPath(), "/")
	if p == "" {
		return []string{origin + "/.well-known/oauth-authorization-server", origin + "/.well-known/openid-configuration"}
	}
	return []string{
		origin + "/.well-known/oauth-authorization-server/" + p,
		origin + "/.well-known/openid-configuration/" + p,
		origin + "/" + p + "/.well-known/openid-configuration",
	}
}

// fetchJSON GETs u (no redirects followed) and decodes its 200 JSON body
// into v. Errors name no URL and no body: they reach clients.
func (d *discovery) fetchJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: a bad metadata URL", errUnavailable)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: metadata answered HTTP %d", errUnavailable, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocument)).Decode(v); err != nil {
		return fmt.Errorf("%w: metadata is not a JSON document", errUnavailable)
	}
	return nil
}

// do sends req, bounded by d.timeout.
func (d *discovery) do(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), d.timeout)
	resp, err := d.client.Do(req.WithContext(ctx))
	if err != nil {
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: no answer within %s", errUnavailable, d.timeout)
		}
		return nil, fmt.Errorf("%w: unreachable", errUnavailable)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// newClient is the proxy's outbound HTTP client: bounded, following no
// redirect (a redirect is answered as it is, never followed to another
// host).
func newClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = fetchTimeout
	t.TLSHandshakeTimeout = fetchTimeout
	t.MaxIdleConnsPerHost = 16
	return &http.Client{
		Transport:     t,
		Timeout:       fetchTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// authParam returns the value of the auth-param name in a WWW-Authenticate
// challenge (quoted or token form), or "".
func authParam(challenge, name string) string {
	lower := strings.ToLower(challenge)
	for i := 0; ; {
		j := strings.Index(lower[i:], name+"=")
		if j < 0 {
			return ""
		}
		j += i
		if j > 0 && lower[j-1] != ' ' && lower[j-1] != ',' {
			i = j + len(name)
			continue
		}
		rest := challenge[j+len(name)+1:]
		if strings.HasPrefix(rest, `"`) {
			if end := strings.IndexByte(rest[1:], '"'); end >= 0 {
				return rest[1 : 1+end]
			}
			return ""
		}
		if end := strings.IndexAny(rest, ", "); end >= 0 {
			return rest[:end]
		}
		return rest
	}
}

func httpURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == "" && u.User == nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
