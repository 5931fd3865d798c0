package mcpserver_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// toolServer serves an MCP server with the named tools (each answers its
// name) until the test ends.
func toolServer(t *testing.T, tools ...string) string {
	t.Helper()
	s := server.NewMCPServer("tools", "1")
	for _, name := range tools {
		s.AddTool(mcp.NewTool(name), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(name), nil
		})
	}
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// The example on /mcp: with servers pyup (tool x-secret) and
// pyup-x (tool secret), both would be listed as pyup-x-secret. Neither is:
// each server reports the clash (ambiguous_tool) in the list's failures,
// and its other tools stay listed.
func TestMCP_AggregatedNamesNeverClash(t *testing.T) {
	g := startGateway(t, func(f *config.File) {
		f.MCPServers["pyup"] = &config.Server{URL: toolServer(t, "x-secret", "plain")}
		f.MCPServers["pyup-x"] = &config.Server{URL: toolServer(t, "secret")}
	})
	ctx := contractstest.Ctx(t)
	c, _ := connect(t, g.URL+"/mcp", headers(masterKey, userToken))
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	listed := names(res.Tools)
	if slices.Contains(listed, "pyup-x-secret") || !slices.Contains(listed, "pyup-plain") {
		t.Errorf("listed %v: want pyup-plain, and no pyup-x-secret", listed)
	}
	raw, _ := json.Marshal(res.Meta)
	for _, want := range []string{`"server":"pyup"`, `"server":"pyup-x"`, `"code":"ambiguous_tool"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("_meta %s lacks %s", raw, want)
		}
	}
}
