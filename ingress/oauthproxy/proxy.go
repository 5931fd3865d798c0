package oauthproxy

import (
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Flow bounds.
const (
	// flowTTL bounds an authorization (authorize → callback) and the life of
	// a code the proxy hands out (callback → token).
	flowTTL = 10 * time.Minute
	// maxRedirectURIs and maxRedirectURI bound a registration.
	maxRedirectURIs = 8
	maxRedirectURI  = 512
	// maxParam bounds every query or form value the proxy relays.
	maxParam = 4096
)

// Options are the proxy's dependencies.
type Options struct {
	Config *config.File
	// Conn holds the replicas' shared sealing key for servers without a
	// client_secret (contracts.OAuthBucket).
	Conn   *nats.Conn
	Logger zerolog.Logger
	// Client, if set, replaces the outbound HTTP client (tests).
	Client *http.Client
}

// Proxy answers the OAuth discovery and flow of every interactive oauth2
// server. Safe for concurrent use; it keeps no state but a bounded cache of
// discovered metadata and the sealing keys.
type Proxy struct {
	cfg    *config.File
	log    zerolog.Logger
	client *http.Client
	disc   *discovery
	keys   *keys
	abort  func(*gin.Context, *contracts.Error)
}

// New returns the proxy.
func New(o Options) *Proxy {
	client := o.Client
	if client == nil {
		client = newClient()
	}
	return &Proxy{cfg: o.Config, log: o.Logger, client: client, disc: newDiscovery(client), keys: newKeys(o.Conn)}
}

// Enabled reports whether any server uses the interactive flow.
func Enabled(cfg *config.File) bool {
	for _, name := range cfg.ServerNames() {
		if cfg.MCPServers[name].InteractiveOAuth2() {
			return true
		}
	}
	return false
}

// Mount adds the proxy's routes, which take no gateway key (OAuth clients
// reach them before they hold anything). abort writes a toolbus error the
// way the rest of the API does.
//
//	GET  /.well-known/oauth-protected-resource/:sel/mcp     RFC 9728 metadata of /<server>/mcp
//	GET  /.well-known/oauth-protected-resource/mcp/:sel     the same for LiteLLM's /mcp/<server>
//	GET  /.well-known/oauth-authorization-server/:sel       RFC 8414 metadata of the proxy
//	POST /:sel/register                                     RFC 7591 registration
//	GET  /:sel/authorize                                    authorization request
//	POST /:sel/token                                        token request
//
// (:sel is a server's name; the MCP endpoint's routes name the same
// wildcard so.)
//
//	GET  /callback                                           the upstream's redirect (configured clients)
func (p *Proxy) Mount(r gin.IRoutes, abort func(*gin.Context, *contracts.Error)) {
	p.abort = abort
	r.GET("/.well-known/oauth-protected-resource/:sel/mcp", p.protectedResource)
	r.GET("/.well-known/oauth-protected-resource/mcp/:sel", p.protectedResource)
	r.GET("/.well-known/oauth-authorization-server/:sel", p.authorizationServer)
	r.POST("/:sel/register", p.register)
	r.GET("/:sel/authorize", p.authorize)
	r.POST("/:sel/token", p.token)
	r.GET("/callback", p.callback)
}

// Challenge is the WWW-Authenticate challenge /<server>/mcp answers a
// request without a credential for srv with (invalid adds
// error="invalid_token", for a credential the upstream refused), or ""
// when srv is not an interactive oauth2 server.
func (p *Proxy) Challenge(c *gin.Context, srv *config.Server, invalid bool) string {
	if !srv.InteractiveOAuth2() {
		return ""
	}
	var b strings.Builder
	b.WriteString("Bearer ")
	if invalid {
		b.WriteString(`error="invalid_token", `)
	}
	// The metadata names the URL the client used: /<label>/mcp or
	// LiteLLM's /mcp/<label>, by the server's name, alias or id.
	label := srv.Name
	if sel := c.Param("sel"); sel != "" && slices.Contains(labels(srv), sel) {
		label = sel
	}
	path := url.PathEscape(label) + "/mcp"
	if strings.HasPrefix(c.FullPath(), "/mcp/") {
		path = "mcp/" + url.PathEscape(label) // LiteLLM's path form: its own resource
	}
	b.WriteString(`resource_metadata="` + p.base(c) + "/.well-known/oauth-protected-resource/" + path + `"`)
	if len(srv.Scopes) > 0 {
		b.WriteString(`, scope="` + strings.Join(srv.Scopes, " ") + `"`)
	}
	return b.String()
}

// base is the gateway's origin: ingress.public_url, else the request's.
func (p *Proxy) base(c *gin.Context) string {
	if u := p.cfg.Ingress.PublicURL; u != "" {
		return strings.TrimSuffix(u, "/")
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

// resource and issuer are the gateway's URLs for srv, named by label (its
// name, alias or id: what the client's URL used); altResource is the
// resource of LiteLLM's path form /mcp/<label>.
func (p *Proxy) resource(c *gin.Context, label string) string {
	return p.base(c) + "/" + url.PathEscape(label) + "/mcp"
}
func (p *Proxy) altResource(c *gin.Context, label string) string {
	return p.base(c) + "/mcp/" + url.PathEscape(label)
}

// ourResource reports whether r is one of the gateway's resources for srv,
// by any of its labels.
func (p *Proxy) ourResource(c *gin.Context, srv *config.Server, r string) bool {
	for _, label := range labels(srv) {
		if r == p.resource(c, label) || r == p.altResource(c, label) {
			return true
		}
	}
	return false
}
func (p *Proxy) issuer(c *gin.Context, srv *config.Server) string { return p.base(c) + "/" + srv.Name }

// labels are the names a URL may give srv by: its name, alias and id.
func labels(srv *config.Server) []string {
	out := []string{srv.Name}
	if srv.Alias != "" {
		out = append(out, srv.Alias)
	}
	if id := srv.ServerID(); id != "" {
		out = append(out, id)
	}
	return out
}

// server is the interactive oauth2 server ref names (its name, alias or
// id), or nil after answering 404.
func (p *Proxy) server(c *gin.Context, ref string) *config.Server {
	var srv *config.Server
	if name, ok := p.cfg.ServerRef(ref); ok {
		srv = p.cfg.MCPServers[name]
	}
	if srv == nil || !srv.InteractiveOAuth2() {
		p.abort(c, contracts.NewError(contracts.CodeNotFound, "no OAuth server %q", contracts.Clip(ref)))
		return nil
	}
	return srv
}

// configured reports whether the gateway is srv's OAuth client (client_id
// configured): the proxy then registers clients itself and the upstream
// redirects to /callback. Otherwise clients register with, and are
// redirected by, the upstream directly through the proxy.
func configured(srv *config.Server) bool { return srv.ClientID != "" }

// upstream is srv's discovered authorization server, or nil after
// answering 502.
func (p *Proxy) upstream(c *gin.Context, srv *config.Server) *upstreamAS {
	as, err := p.disc.get(c.Request.Context(), srv)
	if err != nil {
		p.log.Warn().Str("server", srv.Name).Str("error", err.Error()).Msg("oauth discovery failed")
		p.unavailable(c, srv, err)
		return nil
	}
	return as
}

// unavailable answers that srv's authorization server could not be used.
func (p *Proxy) unavailable(c *gin.Context, srv *config.Server, err error) {
	msg := "the authorization server of " + srv.Name + " is unavailable"
	if errors.Is(err, errUnavailable) {
		msg = strings.Replace(err.Error(), errUnavailable.Error(), msg, 1)
	}
	e := contracts.NewError(contracts.CodeUpstreamAuthFailed, "%s", msg)
	e.Retryable = true
	p.abort(c, e)
}

// protectedResource serves RFC 9728 metadata for /<server>/mcp: the
// gateway's URL is the resource, the proxy its authorization server.
func (p *Proxy) protectedResource(c *gin.Context) {
	srv := p.server(c, c.Param("sel"))
	if srv == nil {
		return
	}
	// The resource is the URL the client used: by the server's name, alias
	// or id, in either path form.
	resource := p.resource(c, c.Param("sel"))
	if strings.HasPrefix(c.FullPath(), "/.well-known/oauth-protected-resource/mcp/") {
		resource = p.altResource(c, c.Param("sel"))
	}
	doc := gin.H{
		"resource":                 resource,
		"authorization_servers":    []string{p.issuer(c, srv)},
		"bearer_methods_supported": []string{"header"},
		"resource_name":            srv.Name,
	}
	if len(srv.Scopes) > 0 {
		doc["scopes_supported"] = srv.Scopes
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, doc)
}

// authorizationServer serves RFC 8414 metadata naming the proxy's
// endpoints.
func (p *Proxy) authorizationServer(c *gin.Context) {
	srv := p.server(c, c.Param("sel"))
	if srv == nil {
		return
	}
	issuer := p.issuer(c, srv)
	doc := gin.H{
		"issuer":                           issuer,
		"authorization_endpoint":           issuer + "/authorize",
		"token_endpoint":                   issuer + "/token",
		"response_types_supported":         []string{"code"},
		"grant_types_supported":            []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported": []string{"S256"},
	}
	scopes := srv.Scopes
	if configured(srv) {
		doc["registration_endpoint"] = issuer + "/register"
		doc["token_endpoint_auth_methods_supported"] = []string{"none"}
		doc["authorization_response_iss_parameter_supported"] = true
	} else {
		as := p.upstream(c, srv)
		if as == nil {
			return
		}
		if as.RegistrationEndpoint != "" {
			doc["registration_endpoint"] = issuer + "/register"
		}
		if len(as.TokenAuthMethods) > 0 {
			doc["token_endpoint_auth_methods_supported"] = as.TokenAuthMethods
		}
		if len(scopes) == 0 {
			scopes = as.Scopes
		}
	}
	if len(scopes) > 0 {
		doc["scopes_supported"] = scopes
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, doc)
}

// oauthError answers an RFC 6749 error.
func oauthError(c *gin.Context, status int, code, description string) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, gin.H{"error": code, "error_description": description})
}

// register answers RFC 7591 registration. With a configured client the
// proxy is the registrar: the client_id it returns seals the redirect URIs
// (exact-matched at authorize and token), nothing is stored, and no secret
// is issued (the configured client_secret is added upstream by the
// proxy). Otherwise the request goes to the upstream's registration
// endpoint with its resource indicator rewritten.
func (p *Proxy) register(c *gin.Context) {
	srv := p.server(c, c.Param("sel"))
	if srv == nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxDocument))
	if err != nil {
		oauthError(c, http.StatusBadRequest, "invalid_client_metadata", "the body could not be read")
		return
	}
	var meta map[string]any
	if err := jsonUnmarshal(body, &meta); err != nil || meta == nil {
		oauthError(c, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON object")
		return
	}
	if !configured(srv) {
		p.registerUpstream(c, srv, meta)
		return
	}
	uris, ok := redirectURIs(meta["redirect_uris"])
	if !ok {
		oauthError(c, http.StatusBadRequest, "invalid_redirect_uri",
			"redirect_uris: 1 to 8 absolute URIs: https, http on a loopback host, or a private-use scheme (RFC 8252)")
		return
	}
	a, err := p.keys.aead(c.Request.Context(), srv)
	if err != nil {
		p.log.Error().Str("server", srv.Name).Str("error", err.Error()).Msg("oauth sealing key unavailable")
		p.abort(c, contracts.NewError(contracts.CodeInternal, "the OAuth proxy's key is unavailable"))
		return
	}
	now := time.Now()
	sealed, err := seal(a, purposeClient, srv.Name, registration{RedirectURIs: uris, Issued: now.Unix()})
	if err != nil {
		p.abort(c, contracts.NewError(contracts.CodeInternal, "sealing the registration failed"))
		return
	}
	out := gin.H{
		"client_id":                  clientPrefix + sealed,
		"client_id_issued_at":        now.Unix(),
		"redirect_uris":              uris,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	}
	if name, ok := meta["client_name"].(string); ok && len(name) <= 200 {
		out["client_name"] = name
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, out)
}

// registerUpstream relays a registration to the upstream's endpoint.
func (p *Proxy) registerUpstream(c *gin.Context, srv *config.Server, meta map[string]any) {
	as := p.upstream(c, srv)
	if as == nil {
		return
	}
	if as.RegistrationEndpoint == "" {
		p.abort(c, contracts.NewError(contracts.CodeNotFound, "the authorization server of %s does not support registration", srv.Name))
		return
	}
	if _, ok := meta["resource"]; ok {
		meta["resource"] = as.Resource
	}
	body, err := jsonMarshal(meta)
	if err != nil {
		oauthError(c, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON object")
		return
	}
	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodPost, as.RegistrationEndpoint, strings.NewReader(string(body)))
	if err != nil {
		p.unavailable(c, srv, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if h := c.GetHeader("Authorization"); h != "" {
		req.Header.Set("Authorization", h) // an initial access token (RFC 7591 §3)
	}
	p.relay(c, srv, req, false)
}

// redirectURIs validates a registration's redirect_uris.
func redirectURIs(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 || len(list) > maxRedirectURIs {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok || !validRedirect(s) {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// validRedirect accepts an absolute URI without fragment: https, http on a
// loopback host (native apps, RFC 8252 §7.3), or a private-use scheme with
// a dot in it (RFC 8252 §7.1).
func validRedirect(s string) bool {
	if len(s) > maxRedirectURI || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Fragment != "" || u.User != nil || !u.IsAbs() {
		return false
	}
	switch u.Scheme {
	case "https":
		return u.Host != ""
	case "http":
		h := u.Hostname()
		return h == "localhost" || h == "127.0.0.1" || h == "::1"
	}
	return strings.Contains(u.Scheme, ".")
}

// authorize forwards an authorization request to the upstream's
// authorization endpoint (a redirect), with the resource indicator
// rewritten to the upstream's. With a configured client the request is the
// gateway's own: the configured client_id, /callback as redirect URI, and
// the client's redirect URI, state and client sealed in the state.
func (p *Proxy) authorize(c *gin.Context) {
	srv := p.server(c, c.Param("sel"))
	if srv == nil {
		return
	}
	q := c.Request.URL.Query()
	for _, vs := range q {
		if len(vs) != 1 || len(vs[0]) > maxParam {
			oauthError(c, http.StatusBadRequest, "invalid_request", "every parameter once, each at most 4096 bytes")
			return
		}
	}
	if r := q.Get("resource"); r != "" && !p.ourResource(c, srv, r) {
		oauthError(c, http.StatusBadRequest, "invalid_target", "resource must be "+p.resource(c, srv.Name))
		return
	}
	if !configured(srv) {
		as := p.upstream(c, srv)
		if as == nil {
			return
		}
		q.Set("resource", as.Resource)
		if q.Get("scope") == "" && len(srv.Scopes) > 0 {
			q.Set("scope", strings.Join(srv.Scopes, " "))
		}
		p.redirect(c, as.AuthorizationEndpoint, q)
		return
	}
	clientID := q.Get("client_id")
	a, reg, ok := p.openClient(c, srv, clientID)
	if !ok {
		oauthError(c, http.StatusBadRequest, "invalid_client", "unknown client_id: register at "+p.issuer(c, srv)+"/register")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" && len(reg.RedirectURIs) == 1 {
		redirectURI = reg.RedirectURIs[0]
	}
	if !slices.Contains(reg.RedirectURIs, redirectURI) {
		oauthError(c, http.StatusBadRequest, "invalid_request", "redirect_uri is not one the client registered")
		return
	}
	// From here on errors go back to the client's redirect URI.
	fail := func(code, description string) {
		p.redirect(c, redirectURI, url.Values{"error": {code}, "error_description": {description},
			"state": {q.Get("state")}, "iss": {p.issuer(c, srv)}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method S256")
		return
	}
	as := p.upstream(c, srv)
	if as == nil {
		return
	}
	state, err := seal(a, purposeState, srv.Name, authState{
		RedirectURI: redirectURI, State: q.Get("state"), Client: clientTag(clientID),
		Expires: time.Now().Add(flowTTL).Unix(),
	})
	if err != nil {
		p.abort(c, contracts.NewError(contracts.CodeInternal, "sealing the state failed"))
		return
	}
	up := url.Values{
		"response_type":         {"code"},
		"client_id":             {srv.ClientID},
		"redirect_uri":          {p.base(c) + "/callback"},
		"state":                 {srv.Name + "." + state},
		"code_challenge":        {q.Get("code_challenge")},
		"code_challenge_method": {"S256"},
		"resource":              {as.Resource},
	}
	if s := q.Get("scope"); s != "" {
		up.Set("scope", s)
	} else if len(srv.Scopes) > 0 {
		up.Set("scope", strings.Join(srv.Scopes, " "))
	}
	p.redirect(c, as.AuthorizationEndpoint, up)
}

// openClient opens a client_id the proxy issued for srv.
func (p *Proxy) openClient(c *gin.Context, srv *config.Server, clientID string) (aead, registration, bool) {
	var reg registration
	sealed, ok := strings.CutPrefix(clientID, clientPrefix)
	if !ok {
		return nil, reg, false
	}
	a, err := p.keys.aead(c.Request.Context(), srv)
	if err != nil {
		p.log.Error().Str("server", srv.Name).Str("error", err.Error()).Msg("oauth sealing key unavailable")
		return nil, reg, false
	}
	if !open(a, purposeClient, srv.Name, sealed, &reg) {
		return nil, reg, false
	}
	return a, reg, true
}

// redirect answers 302 to target with params added to its query.
func (p *Proxy) redirect(c *gin.Context, target string, params url.Values) {
	u, err := url.Parse(target)
	if err != nil {
		p.abort(c, contracts.NewError(contracts.CodeInternal, "a bad redirect target"))
		return
	}
	q := u.Query()
	for k, vs := range params {
		if len(vs) > 0 && vs[0] != "" {
			q.Set(k, vs[0])
		}
	}
	u.RawQuery = q.Encode()
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, u.String())
	c.Abort()
}

// callback receives the upstream's redirect for a configured client and
// sends the browser on to the client's redirect URI, with a code that
// binds the upstream's to that client and redirect URI.
func (p *Proxy) callback(c *gin.Context) {
	q := c.Request.URL.Query()
	name, sealed, ok := strings.Cut(q.Get("state"), ".")
	srv := p.cfg.MCPServers[name]
	if !ok || srv == nil || !srv.InteractiveOAuth2() || !configured(srv) {
		oauthError(c, http.StatusBadRequest, "invalid_request", "no valid state")
		return
	}
	a, err := p.keys.aead(c.Request.Context(), srv)
	if err != nil {
		p.abort(c, contracts.NewError(contracts.CodeInternal, "the OAuth proxy's key is unavailable"))
		return
	}
	var st authState
	if !open(a, purposeState, srv.Name, sealed, &st) || expired(st.Expires, time.Now()) {
		oauthError(c, http.StatusBadRequest, "invalid_request", "no valid state (it expires after 10 minutes)")
		return
	}
	back := url.Values{"state": {st.State}, "iss": {p.issuer(c, srv)}}
	if iss := q.Get("iss"); iss != "" {
		// RFC 9207: the response must come from the issuer the request went to.
		as := p.upstream(c, srv)
		if as == nil {
			return
		}
		if as.Issuer != "" && iss != as.Issuer {
			back.Set("error", "invalid_request")
			back.Set("error_description", "the authorization response came from another issuer")
			p.redirect(c, st.RedirectURI, back)
			return
		}
	}
	if e := q.Get("error"); e != "" {
		back.Set("error", oauthCode(e))
		back.Set("error_description", "the authorization server of "+srv.Name+" refused")
		p.redirect(c, st.RedirectURI, back)
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > maxParam {
		back.Set("error", "server_error")
		back.Set("error_description", "the authorization server of "+srv.Name+" returned no code")
		p.redirect(c, st.RedirectURI, back)
		return
	}
	ours, err := seal(a, purposeCode, srv.Name, authCode{
		Code: code, RedirectURI: st.RedirectURI, Client: st.Client, Expires: time.Now().Add(flowTTL).Unix(),
	})
	if err != nil {
		p.abort(c, contracts.NewError(contracts.CodeInternal, "sealing the code failed"))
		return
	}
	back.Set("code", ours)
	p.redirect(c, st.RedirectURI, back)
}

// oauthCode keeps an upstream's error code if it is one of RFC 6749's.
func oauthCode(e string) string {
	switch e {
	case "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
		"invalid_scope", "server_error", "temporarily_unavailable", "invalid_target",
		"login_required", "consent_required", "interaction_required":
		return e
	}
	return "server_error"
}

// token forwards a token request to the upstream's token endpoint with the
// resource indicator rewritten. With a configured client the proxy checks
// the client and the code it issued, swaps in the upstream's code and
// authenticates as the configured client.
func (p *Proxy) token(c *gin.Context) {
	srv := p.server(c, c.Param("sel"))
	if srv == nil {
		return
	}
	if err := c.Request.ParseForm(); err != nil {
		oauthError(c, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	form := c.Request.PostForm
	for _, vs := range form {
		if len(vs) != 1 || len(vs[0]) > maxParam {
			oauthError(c, http.StatusBadRequest, "invalid_request", "every parameter once, each at most 4096 bytes")
			return
		}
	}
	if r := form.Get("resource"); r != "" && !p.ourResource(c, srv, r) {
		oauthError(c, http.StatusBadRequest, "invalid_target", "resource must be "+p.resource(c, srv.Name))
		return
	}
	as := p.upstream(c, srv)
	if as == nil {
		return
	}
	out := url.Values{}
	header := http.Header{}
	if !configured(srv) {
		for k, vs := range form {
			out[k] = vs
		}
		if h := c.GetHeader("Authorization"); h != "" {
			header.Set("Authorization", h) // the client's own credentials
		}
	} else {
		clientID := form.Get("client_id")
		if clientID == "" {
			clientID, _, _ = c.Request.BasicAuth()
			clientID, _ = url.QueryUnescape(clientID)
		}
		a, _, ok := p.openClient(c, srv, clientID)
		if !ok {
			oauthError(c, http.StatusUnauthorized, "invalid_client", "unknown client_id")
			return
		}
		switch form.Get("grant_type") {
		case "authorization_code":
			var code authCode
			if !open(a, purposeCode, srv.Name, form.Get("code"), &code) || expired(code.Expires, time.Now()) ||
				code.Client != clientTag(clientID) {
				oauthError(c, http.StatusBadRequest, "invalid_grant", "the code is not valid for this client")
				return
			}
			if r := form.Get("redirect_uri"); r != "" && r != code.RedirectURI {
				oauthError(c, http.StatusBadRequest, "invalid_grant", "redirect_uri is not the one the code was issued for")
				return
			}
			out.Set("grant_type", "authorization_code")
			out.Set("code", code.Code)
			out.Set("redirect_uri", p.base(c)+"/callback")
			if v := form.Get("code_verifier"); v != "" {
				out.Set("code_verifier", v)
			}
		case "refresh_token":
			out.Set("grant_type", "refresh_token")
			out.Set("refresh_token", form.Get("refresh_token"))
			if s := form.Get("scope"); s != "" {
				out.Set("scope", s)
			}
		default:
			oauthError(c, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
			return
		}
		if basicOnly(as.TokenAuthMethods) && srv.ClientSecret != "" {
			header.Set("Authorization", "Basic "+basicAuth(srv.ClientID, srv.ClientSecret))
		} else {
			out.Set("client_id", srv.ClientID)
			if srv.ClientSecret != "" {
				out.Set("client_secret", srv.ClientSecret)
			}
		}
	}
	if out.Get("resource") != "" || configured(srv) {
		out.Set("resource", as.Resource)
	}
	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodPost, as.TokenEndpoint, strings.NewReader(out.Encode()))
	if err != nil {
		p.unavailable(c, srv, err)
		return
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p.relay(c, srv, req, configured(srv))
}

// basicOnly reports whether an authorization server takes client secrets
// by HTTP Basic only.
func basicOnly(methods []string) bool {
	return slices.Contains(methods, "client_secret_basic") && !slices.Contains(methods, "client_secret_post")
}

// relay sends req upstream and answers with its JSON response, status kept
// for 2xx and 4xx; anything else is 502 upstream_auth_failed. Nothing of
// either body is logged. ours marks a request authenticated with the
// configured client's secret: an error answer is then reduced to its
// RFC 6749 code (an upstream may echo what it was sent), and an answer that
// holds the secret is not relayed.
func (p *Proxy) relay(c *gin.Context, srv *config.Server, req *http.Request, ours bool) {
	req.Header.Set("Accept", "application/json")
	resp, err := p.disc.do(req)
	if err != nil {
		p.log.Warn().Str("server", srv.Name).Str("error", err.Error()).Msg("oauth upstream request failed")
		p.unavailable(c, srv, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
	if err != nil {
		p.unavailable(c, srv, errUnavailable)
		return
	}
	if resp.StatusCode >= 500 || resp.StatusCode < 200 || resp.StatusCode >= 300 && resp.StatusCode < 400 || !jsonValid(body) {
		p.log.Warn().Str("server", srv.Name).Int("upstream_status", resp.StatusCode).Msg("oauth upstream answered badly")
		p.unavailable(c, srv, errUnavailable)
		return
	}
	if ours && resp.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		oauthError(c, resp.StatusCode, tokenErrorCode(e.Error), "the authorization server of "+srv.Name+" refused the token request")
		return
	}
	if ours && srv.ClientSecret != "" && strings.Contains(string(body), srv.ClientSecret) {
		p.log.Warn().Str("server", srv.Name).Int("upstream_status", resp.StatusCode).Msg("oauth upstream echoed the client secret")
		p.unavailable(c, srv, errUnavailable)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	c.Data(resp.StatusCode, "application/json", body)
}

// tokenErrorCode keeps a token endpoint's error code if it is one of RFC
// 6749's (or RFC 8707's).
func tokenErrorCode(e string) string {
	switch e {
	case "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
		"invalid_scope", "invalid_target":
		return e
	}
	return "invalid_request"
}

type aead = cipher.AEAD

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonValid(b []byte) bool             { return json.Valid(b) }

// basicAuth is the credentials of HTTP Basic client authentication, each
// form-encoded first (RFC 6749 §2.3.1).
func basicAuth(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}
