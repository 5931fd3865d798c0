package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Token exchange (RFC 8693) constants.
const (
	grantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	// maxExchangeCache bounds the exchanged tokens one server's exchanger
	// keeps (one per distinct caller token).
	maxExchangeCache = 4096
	// maxExchangeResponse bounds a token endpoint's response.
	maxExchangeResponse = 64 << 10
)

// Wire errors of token exchange; fixed phrases, as the other credential
// errors.
var (
	errExchangeEndpoint = authFailed("the MCP server's token exchange endpoint failed")
	errExchangeTimeout  = authFailed("the MCP server's token exchange endpoint did not answer in time")
	errExchangeClient   = authFailed("the MCP server's token exchange endpoint refused the gateway's client credentials")
	errExchangedRefused = authFailed("the MCP server refused the token obtained for it by token exchange")
)

// errSubjectRefused is the caller's fault: the token exchange endpoint
// refused the caller's token (or there was none), so the caller must bring
// a valid one.
func errSubjectRefused() *contracts.Error {
	return contracts.NewError(contracts.CodeUpstreamUnauthorized,
		"the token exchange endpoint refused the caller's token (subject_token): send a valid bearer token in Authorization")
}

// exchanger obtains, per caller token, a token for one oauth2_token_exchange
// server by RFC 8693 token exchange, and caches it (until shortly before it
// expires) by the SHA-256 of the caller's token. Each cache entry is a
// tokenSource, so concurrent calls with one caller token share one
// exchange, bounded as client_credentials requests are. The caller's token
// goes only to the token exchange endpoint.
type exchanger struct {
	server string
	creds  config.Credentials
	// newSource makes the tokenSource of one caller token.
	newSource func(get func(context.Context) (string, time.Duration, *Error)) *tokenSource
	client    *http.Client

	fetches atomic.Uint64

	mu      sync.Mutex
	sources map[[sha256.Size]byte]*tokenSource
}

// Token returns the exchanged token for the caller's subject token.
func (x *exchanger) Token(ctx context.Context, subject string) (string, error) {
	if subject == "" {
		return "", &Error{Wire: errSubjectRefused(), Detail: "token exchange: the request has no caller token"}
	}
	key := sha256.Sum256([]byte(subject))
	x.mu.Lock()
	s, ok := x.sources[key]
	if !ok {
		x.evict()
		s = x.newSource(func(ctx context.Context) (string, time.Duration, *Error) { return x.exchange(ctx, subject) })
		x.sources[key] = s
	}
	x.mu.Unlock()
	return s.Token(ctx)
}

// evict makes room for one more entry: entries whose token has expired
// (or that hold none) go first, then any. x.mu is held.
func (x *exchanger) evict() {
	if len(x.sources) < maxExchangeCache {
		return
	}
	for k, s := range x.sources {
		s.mu.Lock()
		stale := s.inflight == nil && (s.token == "" || !s.now().Before(s.refreshAt))
		s.mu.Unlock()
		if stale {
			delete(x.sources, k)
		}
	}
	for k := range x.sources {
		if len(x.sources) < maxExchangeCache {
			break
		}
		delete(x.sources, k)
	}
}

// invalidate drops the exchanged token of subject (the server refused it).
func (x *exchanger) invalidate(subject string) {
	key := sha256.Sum256([]byte(subject))
	x.mu.Lock()
	if s, ok := x.sources[key]; ok {
		s.invalidate()
	}
	x.mu.Unlock()
}

// tokens are the exchanged tokens cached now (to redact them from error
// details).
func (x *exchanger) tokens() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for _, s := range x.sources {
		s.mu.Lock()
		if s.token != "" {
			out = append(out, s.token)
		}
		s.mu.Unlock()
	}
	return out
}

// exchange is one RFC 8693 request: the caller's token as subject_token,
// the server's audience / resource and scopes, the gateway's client
// credentials in HTTP Basic authentication (RFC 6749 §2.3.1).
func (x *exchanger) exchange(ctx context.Context, subject string) (string, time.Duration, *Error) {
	x.fetches.Add(1)
	form := url.Values{
		"grant_type":           {grantTypeTokenExchange},
		"subject_token":        {subject},
		"subject_token_type":   {x.creds.SubjectTokenType},
		"requested_token_type": {tokenTypeAccessToken},
	}
	if x.creds.Audience != "" {
		form.Set("audience", x.creds.Audience)
	}
	if x.creds.Resource != "" {
		form.Set("resource", x.creds.Resource)
	}
	if len(x.creds.Scopes) > 0 {
		form.Set("scope", strings.Join(x.creds.Scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.creds.TokenExchangeEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, &Error{Wire: errExchangeEndpoint(), Detail: "token exchange: bad request"}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(x.creds.ClientID), url.QueryEscape(x.creds.ClientSecret))
	resp, err := x.client.Do(req)
	if err != nil {
		wire := errExchangeEndpoint()
		if ctx.Err() != nil {
			wire = errExchangeTimeout()
		}
		return "", 0, &Error{Wire: wire, Detail: "token exchange: " + wire.Message}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExchangeResponse))
	if err != nil {
		wire := errExchangeEndpoint()
		if ctx.Err() != nil {
			wire = errExchangeTimeout()
		}
		return "", 0, &Error{Wire: wire, Detail: "token exchange: reading the response failed"}
	}
	var r struct {
		AccessToken string      `json:"access_token"`
		TokenType   string      `json:"token_type"`
		ExpiresIn   json.Number `json:"expires_in"`
		Error       string      `json:"error"`
	}
	_ = json.Unmarshal(body, &r)
	if resp.StatusCode != http.StatusOK || r.AccessToken == "" {
		return "", 0, x.refusal(resp.StatusCode, r.Error)
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
		return "", 0, &Error{Wire: errExchangeEndpoint(), Detail: "token exchange: the issued token is not a bearer token"}
	}
	var lifetime time.Duration
	if secs, err := r.ExpiresIn.Int64(); err == nil && secs > 0 {
		lifetime = time.Duration(secs) * time.Second
	}
	return r.AccessToken, lifetime, nil
}

// refusal classifies a token endpoint's refusal: the gateway's client
// refused (401, or invalid_client) is upstream_auth_failed; the caller's
// token refused (400 with invalid_request, invalid_grant, invalid_target
// or the like) is the caller's to fix; anything else is the endpoint
// failing. Only the status and the OAuth error code (a fixed vocabulary)
// are logged; the description could echo the subject token.
func (x *exchanger) refusal(status int, code string) *Error {
	if !oauthErrorCode(code) {
		code = ""
	}
	var wire *contracts.Error
	switch {
	case status == http.StatusUnauthorized || code == "invalid_client" || code == "unauthorized_client":
		wire = errExchangeClient()
	case status == http.StatusBadRequest || status == http.StatusForbidden:
		wire = errSubjectRefused()
	default:
		wire = errExchangeEndpoint()
	}
	return &Error{Wire: wire, Detail: fmt.Sprintf("token exchange endpoint: HTTP %d %s", status, code)}
}

// oauthErrorCode reports whether code has the form of an OAuth error code
// (RFC 6749 §5.2: a short printable token), so that it may be logged.
func oauthErrorCode(code string) bool {
	if code == "" || len(code) > 40 {
		return false
	}
	for _, r := range code {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return true
}

// subjectOf is the caller's bearer token in an Authorization value, or
// empty.
func subjectOf(authorization string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// exchangeRefusal handles the 401 with which a token-exchange server
// refused the exchanged token: the cached token of that caller is dropped,
// and the caller sees upstream_auth_failed (a new token of its own would
// not help).
func (p *Pool) exchangeRefusal(srv *config.Server, cred contracts.Token, err error) error {
	if srv.AuthType != config.AuthTypeOAuth2TokenExchange || !isAuthRequired(err) || cred.IsZero() {
		return err
	}
	var wire *contracts.Error
	if errors.As(err, &wire) {
		return err // a refusal of the exchange itself, already classified
	}
	if a := p.httpClientFor(srv).auth; a != nil && a.exchange != nil {
		a.exchange.invalidate(subjectOf(cred.Reveal()[contracts.HeaderAuthorization]))
	}
	return errors.Join(errExchangedRefused(), err)
}
