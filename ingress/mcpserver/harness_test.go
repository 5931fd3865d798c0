package mcpserver_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// Keys of the test gateway.
const (
	masterKey = gatewaytest.MasterKey
	teamAKey  = gatewaytest.TeamAKey // demo only; tools demo-echo and demo-whoami
	userToken = "Bearer user-token-5678"
)

// gateway is the whole system in one test (gatewaytest.Start): the real
// router with the MCP endpoint behind a real HTTP server on loopback.
type gateway struct{ *gatewaytest.Gateway }

// startGateway starts it; each change is applied to the configuration
// before anything starts.
func startGateway(t *testing.T, changes ...func(*config.File)) *gateway {
	t.Helper()
	var opts []gatewaytest.Option
	for _, change := range changes {
		opts = append(opts, gatewaytest.WithConfig(change))
	}
	return &gateway{gatewaytest.Start(t, opts...)}
}

// newIngress starts one more ingress on the gateway's NATS, as another
// replica would, and returns its URL.
func (g *gateway) newIngress(t *testing.T) string { return g.NewIngress(t).URL }

// headers are a gateway key and, if token is set, the user's token.
var headers = gatewaytest.Headers

// notifications collects the notifications a client receives.
type notifications struct {
	mu   sync.Mutex
	list []mcp.JSONRPCNotification
}

func (n *notifications) add(m mcp.JSONRPCNotification) {
	n.mu.Lock()
	n.list = append(n.list, m)
	n.mu.Unlock()
}

func (n *notifications) of(method string) []mcp.JSONRPCNotification {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []mcp.JSONRPCNotification
	for _, m := range n.list {
		if m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

// connect returns an initialized mcp-go streamable HTTP client of url.
func connect(t *testing.T, url string, h map[string]string) (*client.Client, *notifications) {
	t.Helper()
	return initClient(t, must(t)(client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(h))))
}

// connectSSE returns an initialized mcp-go legacy SSE client of url.
func connectSSE(t *testing.T, url string, h map[string]string) (*client.Client, *notifications) {
	t.Helper()
	return initClient(t, must(t)(client.NewSSEMCPClient(url, transport.WithHeaders(h))))
}

// connectListening returns an initialized client of url that keeps the
// standalone stream (GET) open, as MCP clients that subscribe do.
func connectListening(t *testing.T, url string, h map[string]string) (*client.Client, *notifications) {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(h), transport.WithContinuousListening())
	if err != nil {
		t.Fatal(err)
	}
	return initClient(t, client.NewClient(tr))
}

// must returns a constructor's client, failing the test on its error.
func must(t *testing.T) func(*client.Client, error) *client.Client {
	return func(c *client.Client, err error) *client.Client {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

func initClient(t *testing.T, c *client.Client) (*client.Client, *notifications) {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	n := &notifications{}
	c.OnNotification(n.add)
	ctx := contractstest.Ctx(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "mcpserver-test", Version: "0"}
	if _, err := c.Initialize(ctx, req); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return c, n
}

type rawResponse = gatewaytest.Response

// post sends body to url with headers, as a client that accepts JSON and SSE.
func post(t *testing.T, url string, h map[string]string, body string) *rawResponse {
	t.Helper()
	all := map[string]string{"Accept": "application/json, text/event-stream"}
	for k, v := range h {
		all[k] = v
	}
	return gatewaytest.Do(t, http.MethodPost, url, all, body)
}

// text returns the first text content of a tool result.
func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res == nil || len(res.Content) == 0 {
		t.Fatalf("no content in %+v", res)
	}
	tc, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("first content is %T", res.Content[0])
	}
	return tc.Text
}

func callTool(ctx context.Context, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	var req mcp.CallToolRequest
	req.Params.Name = name
	req.Params.Arguments = args
	return c.CallTool(ctx, req)
}

func newStreamable(url string, h map[string]string) (*client.Client, error) {
	return client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(h))
}
