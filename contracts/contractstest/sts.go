package contractstest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Clients of the test security token service (StartSTS).
const (
	// STSClientID and STSClientSecret are the gateway's client at the STS,
	// allowed the token-exchange grant.
	STSClientID     = "toolbus-gateway"
	STSClientSecret = "sts-client-secret-must-not-leak"
)

// STS is a real OpenID provider that does RFC 8693 token exchange:
// zitadel/oidc's op with its example storage, on 127.0.0.1 until the test
// ends. The example's service user sid1 obtains subject tokens by the
// client_credentials grant (SubjectToken); tokens of another issuer are
// accepted as subject tokens where VerifySubject says so.
type STS struct {
	// URL is the issuer; TokenURL its token endpoint (from its discovery
	// document).
	URL, TokenURL string
	store         *stsStorage
}

// STSExchange is one token exchange the STS validated.
type STSExchange struct {
	Subject, ClientID string
	Audience, Scopes  []string
}

// stsStorage is the example storage recording each token exchange. The
// example's own ValidateTokenExchangeRequest admits only admin users; this
// one admits any subject token the provider verified, and issues an access
// token.
type stsStorage struct {
	*storage.Storage
	verify func(token string) (subject string, ok bool)

	jwt atomic.Bool // client_credentials access tokens are JWTs

	mu        sync.Mutex
	exchanges []STSExchange
}

// jwtClient is a client whose access tokens are JWTs.
type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// ClientCredentials authenticates a service user; with JWT access tokens
// switched on, its tokens are JWTs signed with the provider's key.
func (s *stsStorage) ClientCredentials(ctx context.Context, clientID, clientSecret string) (op.Client, error) {
	c, err := s.Storage.ClientCredentials(ctx, clientID, clientSecret)
	if err != nil || !s.jwt.Load() {
		return c, err
	}
	return jwtClient{c}, nil
}

func (s *stsStorage) ValidateTokenExchangeRequest(_ context.Context, r op.TokenExchangeRequest) error {
	r.SetRequestedTokenType(oidc.AccessTokenType)
	s.mu.Lock()
	s.exchanges = append(s.exchanges, STSExchange{Subject: r.GetSubject(), ClientID: r.GetClientID(),
		Audience: r.GetAudience(), Scopes: r.GetScopes()})
	s.mu.Unlock()
	return nil
}

// VerifyExchangeSubjectToken is op.TokenExchangeTokensVerifierStorage:
// the provider asks it about subject tokens it did not issue itself.
func (s *stsStorage) VerifyExchangeSubjectToken(_ context.Context, token string, _ oidc.TokenType) (string, string, map[string]any, error) {
	if s.verify != nil {
		if sub, ok := s.verify(token); ok {
			return token, sub, nil, nil
		}
	}
	return "", "", nil, oidc.ErrInvalidRequest()
}

func (s *stsStorage) VerifyExchangeActorToken(context.Context, string, oidc.TokenType) (string, string, map[string]any, error) {
	return "", "", nil, oidc.ErrInvalidRequest()
}

// StartSTS runs the STS. verifySubject, if not nil, accepts subject tokens
// of another issuer (returning their subject).
func StartSTS(t testing.TB, verifySubject func(token string) (subject string, ok bool)) *STS {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	clients := map[string]*storage.Client{STSClientID: storage.WebClient(STSClientID, STSClientSecret)}
	store := &stsStorage{Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer), clients), verify: verifySubject}
	provider, err := op.NewOpenIDProvider(issuer, &op.Config{CryptoKey: sha256.Sum256([]byte(t.Name())), AuthMethodPost: true},
		store, op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = provider
	ts.Start()
	t.Cleanup(ts.Close)
	s := &STS{URL: issuer, store: store}
	var disc struct {
		TokenEndpoint string   `json:"token_endpoint"`
		GrantTypes    []string `json:"grant_types_supported"`
	}
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(disc.GrantTypes, string(oidc.GrantTypeTokenExchange)) {
		t.Fatalf("the provider does not offer token exchange: %v", disc.GrantTypes)
	}
	s.TokenURL = disc.TokenEndpoint
	return s
}

// SubjectToken is an access token the STS issues to its service user sid1
// (client_credentials grant).
func (s *STS) SubjectToken(t testing.TB) string {
	t.Helper()
	resp, err := http.PostForm(s.TokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"sid1"},
		"client_secret": {"verysecret"}, "scope": {"openid"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("no subject token (HTTP %d): %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// Exchanges are the token exchanges the STS validated.
func (s *STS) Exchanges() []STSExchange {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	return slices.Clone(s.store.exchanges)
}

// ServiceJWT is a JWT access token the STS issues to its service user sid1
// (client_credentials): iss the STS, sub and aud "sid1", signed with the
// key its JWKS publishes.
func (s *STS) ServiceJWT(t testing.TB) string {
	t.Helper()
	s.store.jwt.Store(true)
	defer s.store.jwt.Store(false)
	return s.SubjectToken(t)
}
