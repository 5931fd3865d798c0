package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
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
