package config

import (
	"slices"
	"testing"
)

// LiteLLM's documented example: entries with or without the server's
// prefix, and disallowed_tools wins.
func TestToolFilters_PrefixedOrBare(t *testing.T) {
	f, _, err := Parse([]byte(`
mcp_servers:
  demo2:
    url: http://127.0.0.1:7001/mcp
    allowed_tools: ["demo2-echo", "demo2-whoami", "fail"]
    disallowed_tools: ["demo2-fail"]
    allowed_params:
      echo: ["text"]
      demo2-whoami: ["verbose"]
      demo2-echo: ["upper"]
  other:
    url: http://127.0.0.1:7002/mcp
    disallowed_tools: ["demo2-echo"]
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := f.MCPServers["demo2"]
	for tool, want := range map[string]bool{"echo": true, "whoami": true, "fail": false, "demo2-echo": false, "other": false} {
		if got := s.ToolAllowed(tool); got != want {
			t.Errorf("demo2 %s: allowed %v, want %v", tool, got, want)
		}
	}
	if got := s.AllowedToolNames(); !slices.Equal(got, []string{"echo", "fail", "whoami"}) {
		t.Errorf("allowed tool names %v", got)
	}
	// Another server's prefix is not this server's: the entry is a bare
	// name (a tool "demo2-echo" of other), and other's echo is allowed.
	o := f.MCPServers["other"]
	if !o.ToolAllowed("echo") || o.ToolAllowed("demo2-echo") {
		t.Error("other: a prefix of another server was stripped")
	}
	if p, ok := s.AllowedParamsOf("echo"); !ok || !slices.Equal(p, []string{"text", "upper"}) {
		t.Errorf("echo params %v %v (bare and prefixed entries merge)", p, ok)
	}
	if got := s.ForbiddenParams("whoami", []string{"verbose", "x", "a", "x"}); !slices.Equal(got, []string{"a", "x"}) {
		t.Errorf("forbidden %v", got)
	}
	if got := s.ForbiddenParams("fail", []string{"anything"}); got != nil {
		t.Errorf("a tool allowed_params does not name takes any argument, got %v", got)
	}

	// Normalize again with another separator (MCP_TOOL_PREFIX_SEPARATOR
	// applied after the file is read): resolved from the lists as written.
	f.Ingress.ToolSeparator = "__"
	s.AllowedTools = []string{"demo2__echo"}
	if err := f.Normalize(); err != nil {
		t.Fatal(err)
	}
	if !s.ToolAllowed("echo") || s.ToolAllowed("whoami") {
		t.Error("filters not resolved again with the new separator")
	}
}

func TestKeyTools_PrefixedOrBare(t *testing.T) {
	f, _, err := Parse([]byte(`
mcp_servers:
  a: {url: "http://127.0.0.1:7001/mcp"}
  a-b: {url: "http://127.0.0.1:7002/mcp"}
  c: {url: "http://127.0.0.1:7003/mcp"}
keys:
  - {name: k1, key: sk-1, tools: ["a-b-x", "echo"]}
  - {name: k2, key: sk-2, servers: [c], tools: ["whoami"]}
  - {name: k3, key: sk-3, servers: [c], tools: ["a-echo"]}
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"k1": {"a-b-echo", "a-b-x", "a-echo", "c-echo"},
		"k2": {"c-whoami"},
		"k3": {"a-echo"},
	}
	for _, k := range f.Keys {
		if !slices.Equal(k.Tools, want[k.Name]) {
			t.Errorf("%s: tools %v, want %v", k.Name, k.Tools, want[k.Name])
		}
	}
	// Idempotent: Normalize again changes nothing.
	if err := f.Normalize(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Keys[0].Tools, want["k1"]) {
		t.Errorf("after a second Normalize: %v", f.Keys[0].Tools)
	}
}

func TestKeyTools_NoneOfItsServers(t *testing.T) {
	f, _, err := Parse([]byte(`
keys:
  - {name: k, key: sk-1, tools: ["echo"]}
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Keys[0].Tools) != 1 || f.Keys[0].Tools[0] == "echo" {
		t.Errorf("a tool list naming no tool of any server must allow none, not all: %v", f.Keys[0].Tools)
	}
}

func TestToolFilters_EmptyNames(t *testing.T) {
	_, _, err := Parse([]byte(`
mcp_servers:
  a:
    url: http://127.0.0.1:7001/mcp
    allowed_tools: [""]
    allowed_params: {echo: [""]}
`), Options{})
	if err == nil {
		t.Fatal("empty names accepted")
	}
}
