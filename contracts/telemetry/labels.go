package telemetry

import (
	"sync"

	"github.com/toolbus/toolbus/contracts/config"
)

// Label values that stand for many.
const (
	// OtherTool is the tool label of a call whose tool is not (yet) known:
	// a name no call of the server has succeeded with, or one beyond the
	// per-server bound.
	OtherTool = "_other"
	// OtherServer is the server label of a name that is not configured.
	OtherServer = "_other"
)

// DefaultMaxToolsPerServer bounds the distinct tool label values of one
// server.
const DefaultMaxToolsPerServer = 256

// ToolLabels bounds the tool label values: a caller can send any tool name,
// and a label value per name would let it grow a metric without end. A tool
// is a label value once the server is configured and either the tool is in
// the server's allowed_tools or a call to it has succeeded (Learn), up to a
// bound per server; every other tool is OtherTool. Safe for concurrent use.
type ToolLabels struct {
	max int
	mu  sync.RWMutex
	// known is per configured server; servers never change after New.
	known map[string]map[string]struct{}
}

// NewToolLabels returns the labels of cfg's servers, each seeded with its
// allowed_tools. maxPerServer <= 0 means DefaultMaxToolsPerServer.
func NewToolLabels(cfg *config.File, maxPerServer int) *ToolLabels {
	if maxPerServer <= 0 {
		maxPerServer = DefaultMaxToolsPerServer
	}
	t := &ToolLabels{max: maxPerServer, known: make(map[string]map[string]struct{}, len(cfg.MCPServers))}
	for name, srv := range cfg.MCPServers {
		names := srv.AllowedToolNames()
		tools := make(map[string]struct{}, len(names))
		for _, tool := range names {
			if len(tools) < maxPerServer {
				tools[tool] = struct{}{}
			}
		}
		t.known[name] = tools
	}
	return t
}

// Server returns server if it is configured, else OtherServer ("" stays "":
// the request named none).
func (t *ToolLabels) Server(server string) string {
	if server == "" {
		return ""
	}
	if _, ok := t.known[server]; ok {
		return server
	}
	return OtherServer
}

// Tool returns the label value of server's tool: the tool if known, ""
// for none, else OtherTool.
func (t *ToolLabels) Tool(server, tool string) string {
	if tool == "" {
		return ""
	}
	t.mu.RLock()
	_, ok := t.known[server][tool]
	t.mu.RUnlock()
	if ok {
		return tool
	}
	return OtherTool
}

// Learn makes tool a label value of server, if server is configured and
// has room. Call it when a call to the tool has succeeded: the tool exists.
func (t *ToolLabels) Learn(server, tool string) {
	if tool == "" {
		return
	}
	t.mu.RLock()
	tools, configured := t.known[server]
	_, ok := tools[tool]
	t.mu.RUnlock()
	if ok || !configured {
		return
	}
	t.mu.Lock()
	if len(tools) < t.max {
		tools[tool] = struct{}{}
	}
	t.mu.Unlock()
}
