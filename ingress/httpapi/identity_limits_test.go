package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// Users of one key each have their own share of it (identity_limits): one
// user holding his share is refused more, with a 429 that says it is his
// own share, while another user of the same key is served. Callers of a
// key who present no credential are one identity.
func TestAbuse_IdentityShareWithinAKey(t *testing.T) {
	g := startGateway(t, withFairShareKeys(config.KeyLimits{MaxRequests: 8}), func(c *config.File) {
		for i := range c.Keys {
			if c.Keys[i].Name == "team-a" {
				c.Keys[i].IdentityLimits = config.KeyLimits{MaxRequests: 1}
			}
		}
	})
	const aliceToken, bobToken = "Bearer alice-token-4242", "Bearer bob-token-1717"
	slow := `{"name":"counted-slow","arguments":{"ms":120000},"timeout_seconds":120}`
	echo := `{"name":"demo-echo","arguments":{"text":"hi"}}`
	alice, bob := gatewaytest.Headers(teamAKey, aliceToken), gatewaytest.Headers(teamAKey, bobToken)

	hold(t, g.URL, "/mcp/tools/call", alice, slow)
	contractstest.Eventually(t, "alice's call to run", func() bool { return g.Calls.Stats().Running == 1 })
	for _, path := range []string{"/mcp/tools/call", "/mcp-rest/tools/call"} {
		resp := g.do(t, http.MethodPost, path, alice, echo)
		if resp.Status != http.StatusTooManyRequests || resp.ErrorCode(t) != "rate_limited" || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(resp.Body), "this caller") {
			t.Fatalf("alice over her own share on %s: %d %s (Retry-After %q), want 429 rate_limited naming the caller's share",
				path, resp.Status, resp.Body, resp.Header.Get("Retry-After"))
		}
		if strings.Contains(string(resp.Body), "alice-token") || strings.Contains(string(resp.Body), teamAKey) {
			t.Fatalf("the refusal quotes a credential: %s", resp.Body)
		}
	}
	// Bob, and a caller with a per-server credential, use the same key.
	for name, h := range map[string]map[string]string{
		"bob":   bob,
		"carol": {"x-litellm-key": teamAKey, "x-mcp-demo-authorization": "Bearer carol-token"},
	} {
		if resp := g.do(t, http.MethodPost, "/mcp/tools/call", h, echo); resp.Status != http.StatusOK {
			t.Fatalf("%s, of alice's key, while alice is at her share: %d %s", name, resp.Status, resp.Body)
		}
	}

	// Callers with no credential are one identity of the key.
	anonymous := gatewaytest.Headers(teamAKey, "")
	hold(t, g.URL, "/mcp/tools/call", anonymous, slow)
	contractstest.Eventually(t, "the anonymous call to run", func() bool { return g.Calls.Stats().Running == 2 })
	if resp := g.do(t, http.MethodPost, "/mcp/tools/call", anonymous, echo); resp.Status != http.StatusTooManyRequests {
		t.Fatalf("a second caller without credentials: %d %s, want 429 (one identity)", resp.Status, resp.Body)
	}
	// Another key has no identity limits.
	b := gatewaytest.Headers(keyB, aliceToken)
	hold(t, g.URL, "/mcp/tools/call", b, slow)
	contractstest.Eventually(t, "key B's call to run", func() bool { return g.Calls.Stats().Running == 3 })
	if resp := g.do(t, http.MethodPost, "/mcp/tools/call", b, echo); resp.Status != http.StatusOK {
		t.Fatalf("key B with a call in flight: %d %s", resp.Status, resp.Body)
	}
}

// A managed key (`ingress keys create --identity-max-requests 1`) has its
// own share per caller, from its record, as a configured key has from
// keys[].identity_limits: one user holding his one request is refused
// more while another user of the key is served. A managed key without
// identity limits takes ingress.identity_limits.
func TestAbuse_ManagedKeyIdentityShare(t *testing.T) {
	g := startGateway(t, func(c *config.File) { c.Ingress.IdentityLimits = config.KeyLimits{MaxRequests: 2} })
	js, err := jetstream.New(g.Env.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); g.Ingress.Keys.Watch(ctx, js, zerolog.Nop()) }()
	t.Cleanup(func() { cancel(); <-watched })
	one := contracts.KeyLimits{MaxRequests: 1}
	oneKey, err := auth.CreateManagedKey(contractstest.Ctx(t), js, 1, contracts.ManagedKey{Name: "managed-one", IdentityLimits: &one})
	if err != nil {
		t.Fatal(err)
	}
	plainKey, err := auth.CreateManagedKey(contractstest.Ctx(t), js, 1, contracts.ManagedKey{Name: "managed-plain"})
	if err != nil {
		t.Fatal(err)
	}
	const aliceToken, bobToken = "Bearer alice-token-4242", "Bearer bob-token-1717"
	slow := `{"name":"counted-slow","arguments":{"ms":120000},"timeout_seconds":120}`
	echo := `{"name":"demo-echo","arguments":{"text":"hi"}}`
	contractstest.Eventually(t, "the managed keys to be accepted", func() bool {
		return g.do(t, http.MethodPost, "/mcp/tools/call", gatewaytest.Headers(oneKey, ""), echo).Status == http.StatusOK &&
			g.do(t, http.MethodPost, "/mcp/tools/call", gatewaytest.Headers(plainKey, ""), echo).Status == http.StatusOK
	})
	overShare := func(what string, h map[string]string) {
		t.Helper()
		resp := g.do(t, http.MethodPost, "/mcp/tools/call", h, echo)
		if resp.Status != http.StatusTooManyRequests || resp.ErrorCode(t) != "rate_limited" || !strings.Contains(string(resp.Body), "this caller") {
			t.Fatalf("%s: %d %s, want 429 rate_limited naming the caller's share", what, resp.Status, resp.Body)
		}
	}
	served := func(what string, h map[string]string) {
		t.Helper()
		if resp := g.do(t, http.MethodPost, "/mcp/tools/call", h, echo); resp.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", what, resp.Status, resp.Body)
		}
	}

	hold(t, g.URL, "/mcp/tools/call", gatewaytest.Headers(oneKey, aliceToken), slow)
	contractstest.Eventually(t, "alice's call to run", func() bool { return g.Calls.Stats().Running == 1 })
	overShare("alice over her one request of the managed key", gatewaytest.Headers(oneKey, aliceToken))
	served("bob, of alice's managed key, while alice is at her share", gatewaytest.Headers(oneKey, bobToken))

	// The managed key without identity limits: the ingress's default, 2.
	plainAlice := gatewaytest.Headers(plainKey, aliceToken)
	hold(t, g.URL, "/mcp/tools/call", plainAlice, slow)
	contractstest.Eventually(t, "the plain key's call to run", func() bool { return g.Calls.Stats().Running == 2 })
	served("alice's second request of the plain managed key (default 2)", plainAlice)
	hold(t, g.URL, "/mcp/tools/call", plainAlice, slow)
	contractstest.Eventually(t, "the plain key's second call to run", func() bool { return g.Calls.Stats().Running == 3 })
	overShare("alice's third request of the plain managed key", plainAlice)
}
