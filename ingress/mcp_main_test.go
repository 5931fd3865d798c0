package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/contractstest"
)

// The MCP endpoint as `go run ./ingress --dev` serves it: an mcp-go client
// with the two headers the banner names lists and calls the demo server's
// tools, a legacy SSE stream is open while the ingress shuts down and does
// not hold the shutdown up.
func TestRun_DevModeMCP(t *testing.T) {
	d := startDev(t)
	url, stdout, stderr := d.url, &d.stdout, &d.stderr
	if !strings.Contains(stdout.String(), url+"/mcp") {
		t.Fatalf("the banner does not name the MCP endpoint:\n%s", stdout.String())
	}

	callCtx := contractstest.Ctx(t)
	c, err := client.NewStreamableHttpClient(url+"/mcp", transport.WithHTTPHeaders(map[string]string{
		"x-litellm-key": "sk-1234", "Authorization": "Bearer user-token-5678",
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(callCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(callCtx, mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
	tools, err := c.ListTools(callCtx, mcp.ListToolsRequest{})
	if err != nil || len(tools.Tools) == 0 {
		t.Fatalf("tools/list: %v %+v", err, tools)
	}
	var req mcp.CallToolRequest
	req.Params.Name = "demo-whoami"
	res, err := c.CallTool(callCtx, req)
	if err != nil || len(res.Content) == 0 || res.Content[0].(mcp.TextContent).Text != "Bearer user-token-5678" {
		t.Fatalf("demo-whoami: %v %+v", err, res)
	}

	// A legacy SSE stream stays open until the shutdown ends it.
	sseReq, _ := http.NewRequestWithContext(callCtx, http.MethodGet, url+"/sse", nil)
	sseReq.Header.Set("x-litellm-key", "sk-1234")
	resp, err := http.DefaultClient.Do(sseReq)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse: %v %v", err, resp)
	}
	defer resp.Body.Close()

	if strings.Contains(stderr.String(), "user-token-5678") {
		t.Fatal("the user token is in the logs")
	}
	start := time.Now()
	d.stop(t)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("shutdown took %s with an SSE stream open", d)
	}
}
