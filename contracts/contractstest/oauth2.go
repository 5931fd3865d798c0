package contractstest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4"
	oauth2errors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
)

// TokenEndpoint is a real OAuth2 authorization server's token endpoint
// (github.com/go-oauth2/oauth2/v4, client credentials grant, RFC 6749 §4.4)
// on loopback, for one client. It records every request, and can be made to
// fail or to hang.
type TokenEndpoint struct {
	// URL is the token endpoint.
	URL                    string
	ClientID, ClientSecret string

	mu      sync.Mutex
	forms   []url.Values // every request's form (the secret included)
	issued  []string     // access tokens issued, in order
	fail    int          // answer this HTTP status instead, when not 0
	hang    bool         // hold requests until the client gives up
	release chan struct{}
}

// StartTokenEndpoint serves a token endpoint for clientID and clientSecret
// whose tokens expire after expiresIn, until the test ends.
func StartTokenEndpoint(t testing.TB, clientID, clientSecret string, expiresIn time.Duration) *TokenEndpoint {
	t.Helper()
	manager := manage.NewDefaultManager()
	manager.SetClientTokenCfg(&manage.Config{AccessTokenExp: expiresIn})
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	if err := clients.Set(clientID, &models.Client{ID: clientID, Secret: clientSecret, Domain: "http://127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	manager.MapClientStorage(clients)
	srv := server.NewDefaultServer(manager)
	srv.SetAllowGetAccessRequest(false)
	srv.SetAllowedGrantType(oauth2.ClientCredentials)
	srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if _, _, ok := r.BasicAuth(); ok {
			return server.ClientBasicHandler(r)
		}
		return server.ClientFormHandler(r)
	})
	srv.SetClientScopeHandler(func(*oauth2.TokenGenerateRequest) (bool, error) { return true, nil })
	srv.SetInternalErrorHandler(func(error) *oauth2errors.Response { return nil })

	e := &TokenEndpoint{ClientID: clientID, ClientSecret: clientSecret, release: make(chan struct{})}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		e.mu.Lock()
		e.forms = append(e.forms, r.PostForm)
		fail, hang := e.fail, e.hang
		e.mu.Unlock()
		switch {
		case hang:
			select {
			case <-r.Context().Done():
			case <-e.release:
			}
			return
		case fail != 0:
			http.Error(w, `{"error":"server_error","error_description":"echoing `+clientSecret+`"}`, fail)
			return
		}
		rec := httptest.NewRecorder()
		if err := srv.HandleTokenRequest(rec, r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if tok := accessToken(rec.Body.String()); tok != "" {
			e.mu.Lock()
			e.issued = append(e.issued, tok)
			e.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	e.URL = hs.URL + "/oauth/token"
	t.Cleanup(func() {
		e.mu.Lock()
		if e.hang {
			close(e.release)
			e.hang = false
		}
		e.mu.Unlock()
		hs.Close()
	})
	return e
}

// accessToken picks access_token out of a token response.
func accessToken(body string) string {
	_, rest, ok := strings.Cut(body, `"access_token":"`)
	if !ok {
		return ""
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

// Requests is the number of token requests received.
func (e *TokenEndpoint) Requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.forms)
}

// Forms returns every request's form, oldest first.
func (e *TokenEndpoint) Forms() []url.Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]url.Values(nil), e.forms...)
}

// Issued returns the access tokens issued, oldest first.
func (e *TokenEndpoint) Issued() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.issued...)
}

// Fail makes every later request fail with status (0: answer again). The
// failure body echoes the client secret, as a careless server might.
func (e *TokenEndpoint) Fail(status int) {
	e.mu.Lock()
	e.fail = status
	e.mu.Unlock()
}

// Hang makes every later request wait until its client gives up (or the test
// ends).
func (e *TokenEndpoint) Hang() {
	e.mu.Lock()
	e.hang = true
	e.mu.Unlock()
}
