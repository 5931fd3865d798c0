package mcpserver_test

import (
	"context"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

// A resource subscription made through the gateway reaches the upstream;
// the upstream's updates reach the subscriber's standalone stream (and no
// other user's); an unsubscription reaches the upstream too.
func TestMCP_ResourceSubscriptions(t *testing.T) {
	resourceSubscriptions(t, headers(masterKey, userToken), headers(masterKey, "Bearer someone-else"))
}

// The same for two users of one key who send their credentials per server,
// forced to one short fingerprint: a subscription belongs to its caller's
// identity, never to a 48-bit fingerprint (were it, the other user's
// stream would get the updates).
func TestMCP_ResourceSubscriptionsCollidingFingerprint(t *testing.T) {
	restore := contracts.OverrideFingerprintForTest("fp_000000000000")
	defer restore()
	perServer := func(token string) map[string]string {
		h := headers(masterKey, "")
		h["x-mcp-watched-authorization"] = token
		return h
	}
	resourceSubscriptions(t, perServer(userToken), perServer("Bearer someone-else"))
}

func resourceSubscriptions(t *testing.T, subscriber, someoneElse map[string]string) {
	ctx := contractstest.Ctx(t)
	subs := &demoserver.Subscriptions{}
	up, err := demoserver.Start(ctx, demoserver.Options{Subscriptions: subs}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close(context.Background()) })
	g := startGateway(t, func(f *config.File) { f.MCPServers["watched"] = &config.Server{URL: up.URL} })
	url := g.URL + "/watched/mcp"

	c, n := connectListening(t, url, subscriber)
	_, other := connectListening(t, url, someoneElse)
	var sub mcp.SubscribeRequest
	sub.Params.URI = demoserver.ResourceReadme
	if err := c.Subscribe(ctx, sub); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	contractstest.Eventually(t, "the upstream to hold the subscription", func() bool { return subs.Subscribed() == 1 })

	updated := func(n *notifications) []mcp.JSONRPCNotification {
		return n.of(string(mcp.MethodNotificationResourceUpdated))
	}
	// The standalone stream may open after the first update is sent: touch
	// until one arrives.
	contractstest.Eventually(t, "a resource update on the subscriber's stream", func() bool {
		res, err := callTool(ctx, c, demoserver.ToolTouch, map[string]any{"uri": demoserver.ResourceReadme})
		if err != nil || text(t, res) != "notified 1 subscriber(s)" {
			t.Fatalf("touch: %v %+v", err, res)
		}
		return len(updated(n)) > 0
	})
	if got := updated(n)[0].Params.AdditionalFields["uri"]; got != demoserver.ResourceReadme {
		t.Fatalf("update for %v, want %s", got, demoserver.ResourceReadme)
	}
	if len(updated(other)) != 0 {
		t.Fatalf("another user's stream got %d updates of a subscription it did not make", len(updated(other)))
	}

	var unsub mcp.UnsubscribeRequest
	unsub.Params.URI = demoserver.ResourceReadme
	if err := c.Unsubscribe(ctx, unsub); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	contractstest.Eventually(t, "the upstream to drop the subscription", func() bool { return subs.Subscribed() == 0 })
	res, err := callTool(ctx, c, demoserver.ToolTouch, map[string]any{"uri": demoserver.ResourceReadme})
	if err != nil || text(t, res) != "notified 0 subscriber(s)" {
		t.Fatalf("touch after unsubscribe: %v %+v", err, res)
	}
}
