// Package oidctest is a test OpenID Connect issuer: real RSA and ECDSA
// keys (go-jose), a discovery document and a JWKS served over HTTP on
// 127.0.0.1, and tokens signed with them. Tests rotate its keys, count its
// JWKS fetches, and sign tokens the gateway must refuse.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a running test issuer.
type Issuer struct {
	// URL is the issuer identifier (its iss), the server's base URL.
	URL string
	srv *httptest.Server

	mu      sync.Mutex
	keys    []Key // the published keys, the first one signs by default
	fetches atomic.Int64
	down    atomic.Bool
}

// Key is one signing key.
type Key struct {
	ID      string
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
}

// Public is the key's public JWK.
func (k Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"}
}

// NewKey makes a fresh key of alg (RS256 or ES256) named id.
func NewKey(t testing.TB, id string, alg jose.SignatureAlgorithm) Key {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return Key{ID: id, Alg: alg, Private: priv}
}

// Start runs an issuer with one RS256 key until the test ends.
func Start(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{keys: []Key{NewKey(t, "k1", jose.RS256)}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{
			"issuer": is.URL, "jwks_uri": is.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		is.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range is.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		is.mu.Unlock()
		writeJSON(w, set)
	})
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Keys are the published keys.
func (is *Issuer) Keys() []Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return append([]Key(nil), is.keys...)
}

// SetKeys replaces the published keys (a rotation).
func (is *Issuer) SetKeys(keys ...Key) {
	is.mu.Lock()
	is.keys = keys
	is.mu.Unlock()
}

// JWKSFetches counts the requests for the JWKS.
func (is *Issuer) JWKSFetches() int64 { return is.fetches.Load() }

// SetDown makes the discovery document and JWKS answer 503 (or not).
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// Claims are a token's claims: the registered ones and any others.
type Claims struct {
	jwt.Claims
	Extra map[string]any
}

// Valid are claims that a verifier of issuer is and audience aud accepts:
// subject sub, issued now, valid for an hour.
func (is *Issuer) Valid(aud, sub string) Claims {
	now := time.Now()
	return Claims{Claims: jwt.Claims{
		Issuer: is.URL, Audience: jwt.Audience{aud}, Subject: sub,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)), ID: time.Now().Format(time.RFC3339Nano),
	}}
}

// Sign signs c with k (its kid in the header).
func Sign(t testing.TB, k Key, c Claims) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Private},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), k.ID))
	if err != nil {
		t.Fatal(err)
	}
	b := jwt.Signed(s).Claims(c.Claims)
	if c.Extra != nil {
		b = b.Claims(c.Extra)
	}
	tok, err := b.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Token is a valid token of the issuer's first key for aud and sub, with
// extra claims.
func (is *Issuer) Token(t testing.TB, aud, sub string, extra map[string]any) string {
	c := is.Valid(aud, sub)
	c.Extra = extra
	return Sign(t, is.Keys()[0], c)
}
