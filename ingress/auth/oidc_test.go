package auth_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/internal/oidctest"
)

const testAudience = "https://gateway.test/mcp"

// clock is a settable clock for the verifier's refresh bound.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// verifier is an OIDC verifier of is with audience testAudience (issuer
// settings changed by edit), on the clock c.
func verifier(t *testing.T, is *oidctest.Issuer, c *clock, edit func(*config.OIDCIssuer)) *auth.OIDC {
	t.Helper()
	f := &config.File{
		MCPServers: map[string]*config.Server{
			"jira":   {URL: "http://127.0.0.1:1/mcp", AccessGroups: []string{"tickets"}},
			"github": {URL: "http://127.0.0.1:1/mcp", AccessGroups: []string{"code"}},
		},
		OIDC: []config.OIDCIssuer{{Issuer: is.URL, Audience: testAudience}},
	}
	if edit != nil {
		edit(&f.OIDC[0])
	}
	if err := f.Normalize(); err != nil {
		t.Fatal(err)
	}
	return auth.NewOIDC(f, auth.OIDCOptions{Now: c.Now})
}

func TestOIDC_Verify(t *testing.T) {
	is := oidctest.Start(t)
	c := &clock{now: time.Now()}
	v := verifier(t, is, c, nil)
	k1 := is.Keys()[0]
	other := oidctest.NewKey(t, "k1", jose.RS256) // same kid, not the issuer's key

	with := func(edit func(*oidctest.Claims)) oidctest.Claims {
		cl := is.Valid(testAudience, "alice")
		edit(&cl)
		return cl
	}
	tests := []struct {
		name  string
		token string
		why   string // in the refusal's message; "" for accepted
	}{
		{"valid", oidctest.Sign(t, k1, is.Valid(testAudience, "alice")), ""},
		{"one of several audiences", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.Audience = jwt.Audience{"other", testAudience} })), ""},
		{"wrong issuer", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.Issuer = is.URL + "/" })), "unknown issuer"},
		{"issuer of another case", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.Issuer = strings.ToUpper(is.URL) })), "unknown issuer"},
		{"wrong audience", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.Audience = jwt.Audience{"https://other.test"} })), "unknown issuer or audience"},
		{"expired", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })), "expired"},
		{"no exp", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.Expiry = nil })), "no exp"},
		{"nbf in the future", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(5 * time.Minute)) })), "not valid yet"},
		{"nbf within the leeway", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(10 * time.Second)) })), ""},
		{"no subject", oidctest.Sign(t, k1, with(func(c *oidctest.Claims) { c.Subject = "" })), "no sub"},
		{"signed by another key under the issuer's kid", oidctest.Sign(t, other, is.Valid(testAudience, "alice")), "bad signature"},
		{"alg none", unsigned(t, is.Valid(testAudience, "alice")), "accepted algorithm"},
		{"HS256 keyed with the issuer's public key", hmacWithPublicKey(t, k1, is.Valid(testAudience, "alice")), "accepted algorithm"},
		{"tampered payload", tamper(t, oidctest.Sign(t, k1, is.Valid(testAudience, "alice"))), "bad signature"},
		{"not a JWT", "a.b.c", "not a JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(tt.token)
			if tt.why == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !strings.HasPrefix(p.Name, auth.PrincipalPrefix) || !p.AllowsServer("jira") {
					t.Fatalf("principal %q", p.Name)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %s", p.Name)
			}
			if err.Code != contracts.CodeUnauthorized || !strings.Contains(err.Message, tt.why) {
				t.Fatalf("got %v, want unauthorized with %q", err, tt.why)
			}
			if strings.Contains(err.Message, tt.token) {
				t.Fatal("the refusal quotes the token")
			}
		})
	}
	// One subject is one caller; another subject or issuer another.
	a1, _ := v.Verify(is.Token(t, testAudience, "alice", nil))
	a2, _ := v.Verify(is.Token(t, testAudience, "alice", nil))
	b, _ := v.Verify(is.Token(t, testAudience, "bob", nil))
	if a1 == nil || a2 == nil || b == nil || a1.Name != a2.Name || a1.Name == b.Name {
		t.Fatalf("names: %v %v %v", a1, a2, b)
	}
	if n := is.JWKSFetches(); n != 1 {
		t.Errorf("%d JWKS fetches for one key set, want 1 (cached)", n)
	}
}

// unsigned is c as a JWT with alg none.
func unsigned(t *testing.T, c oidctest.Claims) string {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`))
	body, err := json.Marshal(c.Claims)
	if err != nil {
		t.Fatal(err)
	}
	return hdr + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}

// hmacWithPublicKey is the algorithm-confusion attack: c signed HS256 with
// the issuer's public key (PEM) as the HMAC secret, under its kid.
func hmacWithPublicKey(t *testing.T, k oidctest.Key, c oidctest.Claims) string {
	der, err := x509.MarshalPKIXPublicKey(k.Private.Public())
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), k.ID))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c.Claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamper changes the subject in a signed token's payload.
func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(body), `"alice"`, `"admin"`, 1)))
	return strings.Join(parts, ".")
}

// A token whose kid the cache lacks prompts one JWKS fetch; a kid still
// unknown after it is refused, and a flood of made-up kids costs the
// issuer no more fetches until refresh_interval has passed. A rotated key
// is picked up by that fetch.
func TestOIDC_KeyRefresh(t *testing.T) {
	is := oidctest.Start(t)
	c := &clock{now: time.Now()}
	v := verifier(t, is, c, func(o *config.OIDCIssuer) { o.RefreshInterval = config.Duration(time.Minute) })
	k1 := is.Keys()[0]
	if _, err := v.Verify(oidctest.Sign(t, k1, is.Valid(testAudience, "alice"))); err != nil {
		t.Fatal(err)
	}
	if n := is.JWKSFetches(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}

	// Unknown kid: one more fetch (the interval has passed), then refused.
	c.Add(2 * time.Minute)
	stranger := oidctest.NewKey(t, "k-unknown", jose.RS256)
	if _, err := v.Verify(oidctest.Sign(t, stranger, is.Valid(testAudience, "alice"))); err == nil || !strings.Contains(err.Message, "unknown signing key") {
		t.Fatalf("unknown kid: %v", err)
	}
	if n := is.JWKSFetches(); n != 2 {
		t.Fatalf("%d fetches after an unknown kid, want 2", n)
	}

	// A flood of made-up kids within the interval: no fetch at all.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			k := oidctest.Key{ID: "flood-" + string(rune('a'+i%26)) + time.Now().String(), Alg: k1.Alg, Private: k1.Private}
			if _, err := v.Verify(oidctest.Sign(t, k, is.Valid(testAudience, "alice"))); err == nil {
				t.Error("a made-up kid was accepted")
			}
		})
	}
	wg.Wait()
	if n := is.JWKSFetches(); n != 2 {
		t.Fatalf("%d fetches after a flood of unknown kids within the interval, want 2", n)
	}
	// The known key still works meanwhile.
	if _, err := v.Verify(oidctest.Sign(t, k1, is.Valid(testAudience, "alice"))); err != nil {
		t.Fatal(err)
	}

	// Rotation: the issuer publishes k2 and drops k1. Past the interval a
	// k2 token prompts a fetch and is accepted; k1 tokens then fail.
	k2 := oidctest.NewKey(t, "k2", jose.ES256)
	is.SetKeys(k2)
	c.Add(2 * time.Minute)
	var wg2 sync.WaitGroup
	for range 20 { // concurrent first uses of the new kid share one fetch
		wg2.Go(func() {
			if _, err := v.Verify(oidctest.Sign(t, k2, is.Valid(testAudience, "alice"))); err != nil {
				t.Errorf("rotated key: %v", err)
			}
		})
	}
	wg2.Wait()
	if n := is.JWKSFetches(); n != 3 {
		t.Fatalf("%d fetches after a rotation, want 3", n)
	}
	if _, err := v.Verify(oidctest.Sign(t, k1, is.Valid(testAudience, "alice"))); err == nil {
		t.Fatal("a token of the retired key was accepted")
	}
}

// The JWKS comes from the issuer's discovery document unless jwks_url is
// set; a discovery document naming another issuer is not followed; an
// issuer that is down refuses tokens at once, without a hang.
func TestOIDC_Discovery(t *testing.T) {
	is := oidctest.Start(t)
	c := &clock{now: time.Now()}
	tok := is.Token(t, testAudience, "alice", nil)

	v := verifier(t, is, c, func(o *config.OIDCIssuer) { o.JWKSURL = is.URL + "/keys" })
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("jwks_url: %v", err)
	}

	evil := oidctest.Start(t) // its discovery names itself, not is
	v = verifier(t, evil, c, nil)
	c2 := is.Valid(testAudience, "alice")
	c2.Issuer = evil.URL
	if _, err := v.Verify(oidctest.Sign(t, is.Keys()[0], c2)); err == nil {
		t.Fatal("a token signed by another issuer's key was accepted")
	}

	down := oidctest.Start(t)
	down.SetDown(true)
	v = verifier(t, down, c, nil)
	if _, err := v.Verify(down.Token(t, testAudience, "alice", nil)); err == nil || err.Code != contracts.CodeUnauthorized {
		t.Fatalf("issuer down: %v", err)
	}
}

// servers_claim and tools_claim narrow what a token may use.
func TestOIDC_ClaimsPolicy(t *testing.T) {
	is := oidctest.Start(t)
	c := &clock{now: time.Now()}
	v := verifier(t, is, c, func(o *config.OIDCIssuer) {
		o.ServersClaim, o.ToolsClaim = "mcp_servers", "mcp_tools"
		o.Servers = []string{"jira", "github"}
	})
	p, err := v.Verify(is.Token(t, testAudience, "alice", map[string]any{
		"mcp_servers": []string{"jira", "gitlab"}, "mcp_tools": "create_issue github-search",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !p.AllowsServer("jira") || p.AllowsServer("github") || p.AllowsServer("gitlab") {
		t.Error("servers_claim not applied")
	}
	if !p.AllowsTool("jira", "create_issue") || p.AllowsTool("jira", "delete_issue") {
		t.Error("tools_claim not applied")
	}
	// Limited to some tools, as a key with a tools list: no resource or
	// prompt; a claimed tool outside the claimed servers is not granted.
	if p.AllowsAnyResource("jira") || p.AllowsAnyPrompt("jira") || p.AllowsTool("github", "search") {
		t.Error("a tools-limited token may read resources or prompts, or a tool of another server")
	}
	unlimited, err := verifier(t, is, c, nil).Verify(is.Token(t, testAudience, "carol", nil))
	if err != nil || !unlimited.AllowsAnyResource("jira") || !unlimited.AllowsAnyPrompt("github") {
		t.Errorf("an issuer without lists limits resources or prompts (%v)", err)
	}
	none, err := v.Verify(is.Token(t, testAudience, "bob", nil))
	if err != nil {
		t.Fatal(err)
	}
	if none.AllowsServer("jira") || none.AllowsServer("github") {
		t.Error("a token without the servers claim may use a server")
	}
}

// access_groups_claim grants the servers of the groups a token names,
// within the issuer's own servers and access_groups.
func TestOIDC_AccessGroupsClaim(t *testing.T) {
	is := oidctest.Start(t)
	c := &clock{now: time.Now()}
	v := verifier(t, is, c, func(o *config.OIDCIssuer) {
		o.AccessGroupsClaim = "groups"
		o.AccessGroups = []string{"tickets", "code"}
	})
	for _, tc := range []struct {
		name         string
		groups       any
		jira, github bool
	}{
		{"one group", []string{"tickets"}, true, false},
		{"both, space-separated", "tickets code", true, true},
		{"an unknown group", []string{"payroll"}, false, false},
		{"no claim", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra map[string]any
			if tc.groups != nil {
				extra = map[string]any{"groups": tc.groups}
			}
			p, err := v.Verify(is.Token(t, testAudience, "alice", extra))
			if err != nil {
				t.Fatal(err)
			}
			if p.AllowsServer("jira") != tc.jira || p.AllowsServer("github") != tc.github {
				t.Errorf("jira %v github %v, want %v %v", p.AllowsServer("jira"), p.AllowsServer("github"), tc.jira, tc.github)
			}
		})
	}
	// The issuer's own groups bound the claim.
	v = verifier(t, is, c, func(o *config.OIDCIssuer) {
		o.AccessGroupsClaim = "groups"
		o.AccessGroups = []string{"tickets"}
	})
	p, err := v.Verify(is.Token(t, testAudience, "alice", map[string]any{"groups": []string{"tickets", "code"}}))
	if err != nil {
		t.Fatal(err)
	}
	if !p.AllowsServer("jira") || p.AllowsServer("github") {
		t.Error("a claimed group outside the issuer's was granted")
	}
}

// A real OpenID provider (zitadel's op): its discovery document, its JWKS
// and a JWT access token it issues. The verifier finds the keys by
// discovery and accepts the token; the provider's opaque tokens and
// tokens for another audience are refused.
func TestOIDC_RealProvider(t *testing.T) {
	sts := contractstest.StartSTS(t, nil)
	tok := sts.ServiceJWT(t)
	f := &config.File{
		MCPServers: map[string]*config.Server{"jira": {URL: "http://127.0.0.1:1/mcp"}},
		OIDC:       []config.OIDCIssuer{{Issuer: sts.URL, Audience: "sid1"}},
	}
	if err := f.Normalize(); err != nil {
		t.Fatal(err)
	}
	v := auth.NewOIDC(f, auth.OIDCOptions{})
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("the provider's JWT was refused: %v", err)
	}
	if !strings.HasPrefix(p.Name, auth.PrincipalPrefix) || !p.AllowsServer("jira") {
		t.Fatalf("principal %+v", p)
	}
	if n := v.KeyFetches(sts.URL); n != 1 {
		t.Errorf("%d key fetches, want 1", n)
	}
	if _, err := v.Verify(sts.SubjectToken(t)); err == nil {
		t.Fatal("the provider's opaque token was accepted")
	}
	f.OIDC[0].Audience = "another"
	if _, err := auth.NewOIDC(f, auth.OIDCOptions{}).Verify(tok); err == nil {
		t.Fatal("a token for another audience was accepted")
	}
}
