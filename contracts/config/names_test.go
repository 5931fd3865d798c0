package config

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The server ids below were computed with LiteLLM's own code
// (litellm/proxy/_experimental/mcp_server/mcp_server_manager.py,
// MCPServerManager._generate_stable_server_id, as load_servers_from_config
// calls it), run under Python 3.11 with LiteLLM's MCPTransport (a str,
// Enum; litellm/types/mcp.py) as the default transport:
//
//	params_string = f"{server_name}|{url}|{transport}|{auth_type or ''}|{alias or ''}"
//	hashlib.sha256(params_string.encode("utf-8")).hexdigest()[:32]
func TestLiteLLMServerID_MatchesLiteLLM(t *testing.T) {
	f, err := Decode([]byte(`
litellm_settings:
  mcp_aliases: {deepwiki: deepwiki.mcp, ghost: no_such_server}
mcp_servers:
  deepwiki_mcp: {url: "http://127.0.0.1:7501/mcp", transport: "http", auth_type: "none"}
  deepwiki.mcp: {url: "http://127.0.0.1:7101/mcp"}
`), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"deepwiki_mcp": "87c344629040123564fb6e480b6f2d89", // transport and auth_type as written
		"deepwiki.mcp": "7d573bf1e1ac708def952ab24a6cbb4d", // no transport (LiteLLM's default member), alias from mcp_aliases
	} {
		if got := f.MCPServers[name].ServerID(); got != want {
			t.Errorf("%s: server id %s, LiteLLM's is %s", name, got, want)
		}
		if got, ok := f.ServerRef(f.MCPServers[name].ServerID()); !ok || got != name {
			t.Errorf("ServerRef(id of %s) = %q, %v", name, got, ok)
		}
	}
	if got := f.MCPServers["deepwiki.mcp"]; got.Alias != "deepwiki" || got.Prefix() != "deepwiki" {
		t.Errorf("alias from mcp_aliases: %q, prefix %q", got.Alias, got.Prefix())
	}
	if got, ok := f.ServerRef("deepwiki"); !ok || got != "deepwiki.mcp" {
		t.Errorf("ServerRef(alias) = %q, %v", got, ok)
	}
}

func TestNames_AliasGroupsAndKeys(t *testing.T) {
	f, err := Decode([]byte(`
mcp_servers:
  "My Server": {url: "http://127.0.0.1:1/mcp", access_groups: [dev], mcp_info: {logo_url: "https://x/logo.png"}}
  gh: {url: "http://127.0.0.1:2/mcp", alias: github, access_groups: [dev, ops], description: GitHub}
  other: {url: "http://127.0.0.1:3/mcp"}
keys:
  - {name: by-group, key: k1, access_groups: [ops]}
  - {name: by-alias-and-id, key: k2, servers: [github]}
  - {name: all, key: k3}
`), yaml.Unmarshal)
	if err != nil {
		t.Fatal(err)
	}
	if p := f.MCPServers["My Server"].Prefix(); p != "My_Server" {
		t.Errorf("prefix of a name with a space: %q (LiteLLM writes spaces as _)", p)
	}
	if p := f.MCPServers["gh"].Prefix(); p != "github" {
		t.Errorf("prefix of an aliased server: %q", p)
	}
	groups := f.AccessGroups()
	if !slices.Equal(groups["dev"], []string{"My Server", "gh"}) || !slices.Equal(groups["ops"], []string{"gh"}) {
		t.Errorf("groups %v", groups)
	}
	for i, want := range [][]string{{"gh"}, {"gh"}, nil} {
		if got := f.Keys[i].Servers; !slices.Equal(got, want) {
			t.Errorf("key %s: servers %v, want %v", f.Keys[i].Name, got, want)
		}
	}
	info := f.MCPServers["gh"].MCPInfoMap()
	if info["server_name"] != "gh" || info["description"] != "GitHub" {
		t.Errorf("mcp_info defaults: %v", info)
	}
	if f.MCPServers["My Server"].MCPInfoMap()["logo_url"] != "https://x/logo.png" {
		t.Error("configured mcp_info lost")
	}
	if f.Ingress.PerServerToolNames != ToolNamesPrefixed {
		t.Errorf("per_server_tool_names default %q", f.Ingress.PerServerToolNames)
	}
}

func TestNames_Refused(t *testing.T) {
	_, err := Decode([]byte(`
litellm_settings:
  mcp_aliases: {x1: a, x2: a}
mcp_servers:
  a: {url: "http://127.0.0.1:1/mcp"}
  "b c": {url: "http://127.0.0.1:1/mcp"}
  b_c: {url: "http://127.0.0.1:1/mcp"}
  d: {url: "http://127.0.0.1:1/mcp", alias: a}
  e: {url: "http://127.0.0.1:1/mcp", alias: "e,f"}
ingress: {per_server_tool_names: sometimes}
keys:
  - {name: k, key: k1, access_groups: [nobody]}
`), yaml.Unmarshal)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`x1, x2 all name server "a"`, `tool prefix "b_c"`, `mcp_servers.d.alias: "a" is the name of another server`,
		"mcp_servers.e.alias", "per_server_tool_names", `keys[0].access_groups: no server declares the access group "nobody"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}
