package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts"
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
  - {name: k1, key: sk-1, tools: ["c-x", "echo"]}
  - {name: k2, key: sk-2, servers: [c], tools: ["whoami"]}
  - {name: k3, key: sk-3, servers: [c], tools: ["a-echo"]}
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"k1": {"a-b-echo", "a-echo", "c-echo", "c-x"},
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

// The example: with servers pyup and pyup-x, the entry
// pyup-x-secret could be tool secret of pyup-x or tool x-secret of pyup.
// In a key's tools, or in pyup's own lists, it is a start-up error naming
// both readings; in pyup-x's lists it is pyup-x's own tool.
func TestToolLists_AmbiguousEntry(t *testing.T) {
	const servers = `
mcp_servers:
  pyup: {url: "http://127.0.0.1:7001/mcp"%s}
  pyup-x: {url: "http://127.0.0.1:7002/mcp"%s}
`
	for name, tc := range map[string]struct{ pyup, pyupX, keys string }{
		"key tools":             {keys: "keys:\n  - {name: k, key: sk-1, tools: [pyup-x-secret]}\n"},
		"key tools and servers": {keys: "keys:\n  - {name: k, key: sk-1, servers: [pyup-x], tools: [pyup-x-secret]}\n"},
		"allowed_tools":         {pyup: ", allowed_tools: [pyup-x-secret]"},
		"disallowed_tools":      {pyup: ", disallowed_tools: [pyup-x-secret]"},
		"allowed_params":        {pyup: ", allowed_params: {pyup-x-secret: [a]}"},
	} {
		_, _, err := Parse([]byte(fmt.Sprintf(servers, tc.pyup, tc.pyupX)+tc.keys), Options{})
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, want := range []string{`tool "secret" of server "pyup-x"`, `tool "x-secret" of server "pyup"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not name %s", name, err, want)
			}
		}
	}
	// In pyup-x's own lists the prefix is its own, the longest reading.
	f, _, err := Parse([]byte(fmt.Sprintf(servers, "", ", allowed_tools: [pyup-x-secret]")+
		"keys:\n  - {name: k, key: sk-1, servers: [pyup-x], tools: [secret]}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := f.MCPServers["pyup-x"]; !s.ToolAllowed("secret") || s.ToolAllowed("x-secret") {
		t.Error("pyup-x's allowed_tools: want its own tool secret only")
	}
	refs, restricted := f.Keys[0].ToolRefs()
	if want := []contracts.ToolRef{{Server: "pyup-x", Tool: "secret"}}; !restricted || !slices.Equal(refs, want) {
		t.Errorf("key tools resolve to %v %v, want %v", refs, restricted, want)
	}
}

// An empty servers or tools list in a key is refused: read as "all" it
// would open every server to a key meant to reach none.
func TestKeys_EmptyLists(t *testing.T) {
	for _, field := range []string{"servers", "tools"} {
		_, _, err := Parse([]byte(`
mcp_servers:
  a: {url: "http://127.0.0.1:7001/mcp"}
keys:
  - {name: k, key: sk-1, `+field+`: []}
`), Options{})
		if err == nil || !strings.Contains(err.Error(), "keys[0]."+field+": an empty list") {
			t.Errorf("%s: []: err = %v", field, err)
		}
	}
}

// A server's alias (alias:, or litellm_settings.mcp_aliases) prefixes its
// tools where tools of several servers meet, so its lists and keys' tools
// may name a tool with that prefix as well as with the server's name.
func TestToolFilters_AliasPrefix(t *testing.T) {
	f, _, err := Parse([]byte(`
litellm_settings:
  mcp_aliases:
    gh: github_mcp
mcp_servers:
  github_mcp:
    url: http://127.0.0.1:7001/mcp
    allowed_tools: ["gh-list_issues", "github_mcp-get_issue", "search"]
    disallowed_tools: ["gh-search"]
  deep wiki:
    url: http://127.0.0.1:7002/mcp
    allowed_tools: ["deep_wiki-ask"]
keys:
  - name: team
    key: sk-team-0123456789
    tools: ["gh-get_issue", "deep_wiki-ask"]
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	gh := f.MCPServers["github_mcp"]
	for tool, want := range map[string]bool{"list_issues": true, "get_issue": true, "search": false, "gh-list_issues": false} {
		if got := gh.ToolAllowed(tool); got != want {
			t.Errorf("github_mcp %s: allowed %v, want %v", tool, got, want)
		}
	}
	if wiki := f.MCPServers["deep wiki"]; !wiki.ToolAllowed("ask") {
		t.Error("deep wiki: the prefix with spaces as underscores was not stripped")
	}
	refs, _ := f.Keys[0].ToolRefs()
	want := []contracts.ToolRef{{Server: "deep wiki", Tool: "ask"}, {Server: "github_mcp", Tool: "get_issue"}}
	if !slices.Equal(refs, want) {
		t.Errorf("key tool refs %v, want %v", refs, want)
	}
}
