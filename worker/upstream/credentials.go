package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Service credential defaults.
const (
	// DefaultTokenTimeout bounds one request to an OAuth2 token endpoint
	// or to AWS STS.
	DefaultTokenTimeout = 10 * time.Second
	// tokenEarlyRefresh is how long before its expiry a token is replaced
	// (LiteLLM's 60 s), or half its lifetime when that is shorter.
	tokenEarlyRefresh = 60 * time.Second
	// defaultTokenLifetime is how long a token whose response names no
	// expires_in is used.
	defaultTokenLifetime = 5 * time.Minute
)

// Wire errors of service credentials, made fresh for each failure (a wire
// error may be changed on its way). Their messages are fixed phrases: they
// never quote a token endpoint's or MCP server's response, which could echo
// a secret.
func authFailed(msg string) func() *contracts.Error {
	return func() *contracts.Error { return contracts.NewError(contracts.CodeUpstreamAuthFailed, "%s", msg) }
}

var (
	errTokenEndpoint  = authFailed("the MCP server's OAuth2 token endpoint failed")
	errTokenTimeout   = authFailed("the MCP server's OAuth2 token endpoint did not answer in time")
	errTokenRefused   = authFailed("the MCP server's OAuth2 token endpoint refused the gateway's client credentials")
	errSigning        = authFailed("the request to the MCP server could not be signed")
	errServiceRefused = authFailed("the MCP server refused the gateway's own credential for it")
)

// serviceAuth applies one server's own credential (auth_type api_key,
// bearer_token, basic, authorization, oauth2 client_credentials,
// aws_sigv4) and its static_headers to every HTTP request the pool sends
// that server. It wraps the pool's shared transport; it holds the
// secrets, which never leave it except in those requests.
type serviceAuth struct {
	base http.RoundTripper
	// replace is true for a server with a service credential: any
	// Authorization already on a request is removed first.
	replace bool
	// set are headers every request carries (the static credential);
	// add are headers set only where the request has none (static_headers).
	set, add http.Header
	tokens   *tokenSource // oauth2 client_credentials, or nil
	exchange *exchanger   // oauth2_token_exchange, or nil
	sigv4    *sigv4Signer // aws_sigv4, or nil
	// secrets are removed from error details (an upstream may echo them).
	secrets []string
}

// newServiceAuth returns the serviceAuth of srv, or nil when srv has neither
// a service credential nor static headers.
func (p *Pool) newServiceAuth(srv *config.Server) *serviceAuth {
	if !srv.HasServiceCredential() && len(srv.StaticHeaders) == 0 && srv.AuthType != config.AuthTypeOAuth2TokenExchange {
		return nil
	}
	a := &serviceAuth{base: p.opts.Transport, replace: srv.HasServiceCredential(), set: http.Header{}, add: http.Header{}}
	if name, value := srv.ServiceHeader(); name != "" {
		a.set.Set(name, value)
		a.secrets = append(a.secrets, value)
		if _, cred, ok := strings.Cut(value, " "); ok {
			a.secrets = append(a.secrets, cred)
		}
	}
	for name, value := range srv.StaticHeaders {
		a.add.Set(name, value)
		a.secrets = append(a.secrets, value)
	}
	a.secrets = append(a.secrets, srv.AuthValue, srv.ClientSecret, srv.AWSSecretAccessKey, srv.AWSSessionToken)
	switch {
	case srv.AuthType == config.AuthTypeOAuth2 && srv.OAuth2Flow == config.OAuth2ClientCredentials:
		a.tokens = &tokenSource{
			server: srv.Name,
			conf: clientcredentials.Config{
				ClientID: srv.ClientID, ClientSecret: srv.ClientSecret, TokenURL: srv.TokenURL, Scopes: srv.Scopes,
				// In the form, as LiteLLM sends them: one request per
				// fetch (auto-detection would try twice on a refusal).
				AuthStyle: oauth2.AuthStyleInParams,
			},
			client:  &http.Client{Transport: p.opts.Transport},
			timeout: p.opts.TokenTimeout,
			now:     p.opts.Now,
			life:    p.ctx,
			bg:      &p.background,
			log:     p.log,
		}
	case srv.AuthType == config.AuthTypeOAuth2TokenExchange:
		x := &exchanger{server: srv.Name, creds: srv.Credentials, client: &http.Client{Transport: p.opts.Transport},
			sources: map[[sha256.Size]byte]*tokenSource{}}
		x.newSource = func(get func(context.Context) (string, time.Duration, *Error)) *tokenSource {
			return &tokenSource{server: srv.Name, get: get, timeout: p.opts.TokenTimeout, now: p.opts.Now,
				life: p.ctx, bg: &p.background, log: p.log}
		}
		a.exchange = x
	case srv.AuthType == config.AuthTypeAWSSigV4:
		creds, role := p.awsCredentials(srv)
		a.sigv4 = &sigv4Signer{
			creds:   creds,
			role:    role,
			signer:  v4.NewSigner(),
			region:  srv.AWSRegionName,
			service: srv.AWSServiceName,
			now:     p.opts.Now,
		}
	}
	return a
}

// RoundTrip adds the credential to a copy of req and sends it.
func (a *serviceAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	var subject string
	if a.exchange != nil {
		// The caller's token is exchanged, never sent.
		subject = subjectOf(r.Header.Get("Authorization"))
		r.Header.Del("Authorization")
	}
	if a.replace {
		r.Header.Del("Authorization")
	}
	for name, values := range a.set {
		r.Header[name] = values
	}
	for name, values := range a.add {
		if _, ok := r.Header[name]; !ok {
			r.Header[name] = values
		}
	}
	if a.tokens != nil {
		tok, err := a.tokens.Token(r.Context())
		if err != nil {
			closeBody(req)
			return nil, err
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	if a.exchange != nil {
		tok, err := a.exchange.Token(r.Context(), subject)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	if a.sigv4 != nil {
		if err := a.sigv4.sign(r); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	return a.base.RoundTrip(r)
}

// refused is called when the server answered 401 to the service credential:
// a cached OAuth2 token or assumed AWS role is dropped, so the next call
// fetches a new one.
func (a *serviceAuth) refused() {
	if a != nil && a.tokens != nil {
		a.tokens.invalidate()
	}
	if a != nil && a.sigv4 != nil && a.sigv4.role != nil {
		a.sigv4.creds.Invalidate()
	}
}

// redact removes a's secrets (and the current OAuth2 token) from an error
// detail.
func (a *serviceAuth) redact(s string) string {
	if a == nil {
		return s
	}
	secrets := a.secrets
	if a.tokens != nil {
		a.tokens.mu.Lock()
		secrets = append(slices.Clip(secrets), a.tokens.token)
		a.tokens.mu.Unlock()
	}
	if a.exchange != nil {
		secrets = append(slices.Clip(secrets), a.exchange.tokens()...)
	}
	if a.sigv4 != nil && a.sigv4.role != nil {
		secrets = append(slices.Clip(secrets), a.sigv4.role.secrets()...)
	}
	for _, secret := range secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[credential]")
		}
	}
	return s
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// tokenSource obtains and caches the access token of an oauth2
// client_credentials server. Concurrent callers share one token request;
// each waits for it only as long as its own context allows, and the request
// itself is bounded by timeout (and the pool's lifetime), so a slow or dead
// token endpoint fails calls with upstream_auth_failed instead of hanging
// them. golang.org/x/oauth2's own ReuseTokenSource is not used: it holds a
// mutex for the whole fetch, which waiters cannot leave when their context
// ends.
type tokenSource struct {
	server string
	conf   clientcredentials.Config
	// get, when set, requests the token instead of conf (token exchange);
	// it returns the token, its lifetime (0: unknown) and a classified
	// failure.
	get     func(ctx context.Context) (string, time.Duration, *Error)
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
	life    context.Context
	bg      *backgroundWork
	log     zerolog.Logger

	fetches atomic.Uint64

	mu        sync.Mutex
	token     string
	refreshAt time.Time
	inflight  *tokenFetch
}

// tokenFetch is one request to the token endpoint; done is closed when it
// has ended, with token or err set.
type tokenFetch struct {
	done  chan struct{}
	token string
	err   *Error
}

// Token returns a valid access token, fetching one when none is cached or
// the cached one is about to expire.
func (s *tokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	if s.token != "" && s.now().Before(s.refreshAt) {
		tok := s.token
		s.mu.Unlock()
		return tok, nil
	}
	f := s.inflight
	if f == nil {
		if !s.bg.enter() {
			s.mu.Unlock()
			return "", errBackgroundClosed()
		}
		f = &tokenFetch{done: make(chan struct{})}
		s.inflight = f
		go s.fetch(f)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			// Each waiter gets its own copy of the shared failure.
			e, wire := *f.err, *f.err.Wire
			e.Wire = &wire
			return "", &e
		}
		return f.token, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// fetch runs one token request on its own bounded context: a caller that
// gives up does not fail the others waiting for it.
func (s *tokenSource) fetch(f *tokenFetch) {
	defer s.bg.leave()
	s.fetches.Add(1)
	ctx, cancel := context.WithTimeout(s.life, s.timeout)
	defer cancel()
	token, lifetime, failed := s.request(ctx)
	if failed != nil && s.get != nil {
		// client_credentials failures are logged by failure; this is the
		// exchange's (its detail holds a status and an OAuth error code).
		s.log.Warn().Str("server", s.server).Str("class", string(failed.Wire.Code)).
			Str("detail", failed.Detail).Msg("oauth2 token exchange failed")
	}
	s.mu.Lock()
	if failed == nil {
		s.token = token
		if lifetime == 0 {
			lifetime = defaultTokenLifetime
		}
		s.refreshAt = s.now().Add(lifetime - min(tokenEarlyRefresh, lifetime/2))
		f.token = token
	} else {
		f.err = failed
	}
	s.inflight = nil
	s.mu.Unlock()
	close(f.done)
}

// request asks for a token: s.get's way, or the client_credentials grant.
func (s *tokenSource) request(ctx context.Context) (string, time.Duration, *Error) {
	if s.get != nil {
		return s.get(ctx)
	}
	tok, err := s.conf.Token(context.WithValue(ctx, oauth2.HTTPClient, s.client))
	if err == nil && tok.AccessToken == "" {
		err = errors.New("no access_token in the response")
	}
	if err != nil {
		return "", 0, s.failure(ctx, err)
	}
	// x/oauth2 sets Expiry from the response's expires_in on the real
	// clock; the lifetime carries over to s.now's.
	var lifetime time.Duration
	if !tok.Expiry.IsZero() {
		lifetime = time.Until(tok.Expiry)
	}
	return tok.AccessToken, lifetime, nil
}

// failure classifies a failed token request, and logs its status and class
// only (the response body may echo the client secret).
func (s *tokenSource) failure(ctx context.Context, err error) *Error {
	wire, status := errTokenEndpoint(), 0
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re):
		status = re.Response.StatusCode
		if status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden {
			wire = errTokenRefused()
		}
	case ctx.Err() != nil:
		wire = errTokenTimeout()
	}
	s.log.Warn().Str("server", s.server).Str("class", string(wire.Code)).Int("status", status).
		Str("error", wire.Message).Msg("oauth2 token request failed")
	return &Error{Wire: wire, Detail: fmt.Sprintf("token endpoint: HTTP %d", status)}
}

// invalidate drops the cached token.
func (s *tokenSource) invalidate() {
	s.mu.Lock()
	s.token = ""
	s.mu.Unlock()
}

// sigv4Signer signs requests with AWS Signature Version 4 (the AWS SDK for
// Go v2 signer): the body's SHA-256 in X-Amz-Content-Sha256, then the
// Authorization and X-Amz-Date headers (and X-Amz-Security-Token with a
// session token). With aws_role_name, creds are the role's, assumed by role.
type sigv4Signer struct {
	creds           *aws.CredentialsCache
	role            *assumeRole // aws_role_name, or nil
	signer          *v4.Signer
	region, service string
	now             func() time.Time
}

func (s *sigv4Signer) sign(r *http.Request) error {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return &Error{Wire: errSigning(), Detail: "reading the body: " + err.Error()}
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		r.ContentLength = int64(len(b))
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	r.Header.Set("X-Amz-Content-Sha256", hash)
	creds, err := s.creds.Retrieve(r.Context())
	if err != nil {
		var failed *Error
		switch {
		case errors.As(err, &failed):
			// The credentials cache hands one failure to every waiter:
			// each gets its own copy.
			e, wire := *failed, *failed.Wire
			e.Wire = &wire
			return &e
		case r.Context().Err() != nil:
			return r.Context().Err()
		}
		return &Error{Wire: errSigning(), Detail: "no credentials"}
	}
	if err := s.signer.SignHTTP(r.Context(), creds, r, hash, s.service, s.region, s.now()); err != nil {
		return &Error{Wire: errSigning(), Detail: "signing failed"}
	}
	return nil
}

// serviceClients holds the HTTP client of each server with a service
// credential or static headers (the others share Pool.httpClient).
type serviceClients struct {
	mu sync.Mutex
	m  map[string]*serviceClient
}

type serviceClient struct {
	srv  *config.Server // the configuration it was built from
	http *http.Client
	auth *serviceAuth
}

// httpClientFor returns the HTTP client of srv's requests: the shared one,
// or for a server with its own credential or static headers one that adds
// them (still recording challenges and trace context).
func (p *Pool) httpClientFor(srv *config.Server) *serviceClient {
	p.svc.mu.Lock()
	defer p.svc.mu.Unlock()
	if c, ok := p.svc.m[srv.Name]; ok && c.srv == srv {
		return c
	}
	c := &serviceClient{srv: srv, http: p.httpClient}
	if a := p.newServiceAuth(srv); a != nil {
		c.http, c.auth = &http.Client{Transport: challengeRecorder{base: a}}, a
	}
	if p.svc.m == nil {
		p.svc.m = make(map[string]*serviceClient)
	}
	p.svc.m[srv.Name] = c
	return c
}

// serviceRefusal turns the 401 with which a server refused its own service
// credential into upstream_auth_failed (the caller cannot fix it, and must
// not be sent the server's challenge) and drops a cached token.
func (p *Pool) serviceRefusal(srv *config.Server, err error) error {
	if !srv.HasServiceCredential() || !isAuthRequired(err) {
		return err
	}
	p.httpClientFor(srv).auth.refused()
	return errors.Join(errServiceRefused(), err)
}

// upstreamError is newError for a call to srv, with srv's own secrets also
// removed from the detail (which names classes only: a second guard).
func (p *Pool) upstreamError(srv *config.Server, err error, wwwAuth string) *Error {
	e := newError(err, wwwAuth)
	e.Detail = p.httpClientFor(srv).auth.redact(e.Detail)
	return e
}

// TokenRequests counts the requests made to srv's OAuth2 token endpoint
// (or AWS STS AssumeRole requests, with aws_role_name), for tests and
// metrics; 0 for other servers.
func (p *Pool) TokenRequests(srv *config.Server) uint64 {
	if a := p.httpClientFor(srv).auth; a != nil && a.tokens != nil {
		return a.tokens.fetches.Load()
	} else if a != nil && a.exchange != nil {
		return a.exchange.fetches.Load()
	} else if a != nil && a.sigv4 != nil && a.sigv4.role != nil {
		return a.sigv4.role.calls.Load()
	}
	return 0
}
