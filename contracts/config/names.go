package config

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/toolbus/toolbus/contracts"
)

// LiteLLMSettings is LiteLLM's litellm_settings section; toolbus reads
// mcp_aliases only (its other keys are named in a warning).
type LiteLLMSettings struct {
	// MCPAliases maps an alias to a server's name: the alias prefixes the
	// server's tools, and names it in selections (/mcp/<alias>,
	// x-mcp-servers) and in server_id, for a server that has no alias of
	// its own. An alias naming no configured server is ignored, as LiteLLM
	// ignores it.
	MCPAliases map[string]string `yaml:"mcp_aliases"`
}

// Per-server endpoint tool names (ingress.per_server_tool_names).
const (
	// ToolNamesPrefixed lists a server's tools on /<server>/mcp as
	// <prefix><separator><tool>, as LiteLLM does (the default).
	ToolNamesPrefixed = "prefixed"
	// ToolNamesBare lists them by the server's own names.
	ToolNamesBare = "bare"
)

// DefaultMCPInfoKeys are the mcp_info keys LiteLLM fills in when the config
// does not (litellm/proxy/_experimental/mcp_server/mcp_server_manager.py,
// load_servers_from_config).
const (
	mcpInfoServerName  = "server_name"
	mcpInfoDescription = "description"
)

// liteLLMDefaultTransport is how LiteLLM writes the transport of a server
// whose config has none into its server id: the default is the enum member
// MCPTransport.http, a (str, Enum) whose f-string form in Python 3.11 and
// later is its qualified name (litellm/types/mcp.py; see LiteLLMServerID).
const liteLLMDefaultTransport = "MCPTransport.http"

// LiteLLMServerID is the stable server id LiteLLM gives a server of its
// config.yaml, computed as LiteLLM computes it
// (litellm/proxy/_experimental/mcp_server/mcp_server_manager.py,
// MCPServerManager._generate_stable_server_id, called by
// load_servers_from_config): the first 32 hex digits of the SHA-256 of
// "<server_name>|<url>|<transport>|<auth_type or ”>|<alias or ”>", with
// the values as written in the config (transport: the literal value, or
// LiteLLM's default enum member when the key is absent; alias: the
// server's alias, else the first mcp_aliases entry naming it).
func LiteLLMServerID(name, url, transport, authType, alias string) string {
	if transport == "" {
		transport = liteLLMDefaultTransport
	}
	sum := sha256.Sum256([]byte(name + "|" + url + "|" + transport + "|" + authType + "|" + alias))
	return hex.EncodeToString(sum[:])[:32]
}

// Prefix is the name that prefixes the server's tools where tools of
// several servers meet: its alias (alias:, else litellm_settings.mcp_aliases),
// else its name, with spaces written as underscores (LiteLLM's
// add_server_prefix_to_name, litellm/proxy/_experimental/mcp_server/utils.py).
func (s *Server) Prefix() string {
	p := s.Alias
	if p == "" {
		p = s.Name
	}
	return strings.ReplaceAll(p, " ", "_")
}

// ServerID is the server's stable id as LiteLLM computes it
// (LiteLLMServerID), set by Normalize.
func (s *Server) ServerID() string { return s.liteLLMID }

// MCPInfoMap is the server's mcp_info as LiteLLM reports it: the configured
// map, with server_name and description filled in when it has none.
func (s *Server) MCPInfoMap() map[string]any {
	out := make(map[string]any, len(s.MCPInfo)+2)
	for k, v := range s.MCPInfo {
		out[k] = v
	}
	if _, ok := out[mcpInfoServerName]; !ok {
		out[mcpInfoServerName] = s.Name
	}
	if _, ok := out[mcpInfoDescription]; !ok && s.Description != "" {
		out[mcpInfoDescription] = s.Description
	}
	return out
}

// aliasOf is the alias of the server name: its own alias, else the
// mcp_aliases entry that names it (the first in sorted order; validate
// refuses two).
func (f *File) aliasOf(name string, s *Server) string {
	if s.Alias != "" {
		return s.Alias
	}
	var found []string
	for alias, target := range f.LiteLLMSettings.MCPAliases {
		if target == name {
			found = append(found, alias)
		}
	}
	if len(found) == 0 {
		return ""
	}
	slices.Sort(found)
	return found[0]
}

// resolveNames gives every server its alias (from mcp_aliases when it has
// none) and its LiteLLM server id, from the values as the file has them
// (so before applyDefaults normalizes the transport and auth_type; once).
func (f *File) resolveNames() {
	for name, s := range f.MCPServers {
		if s == nil {
			continue
		}
		if s.liteLLMID == "" {
			s.Alias = f.aliasOf(name, s)
			s.liteLLMID = LiteLLMServerID(name, s.URL, s.Transport, s.Credentials.AuthType, s.Alias)
		}
	}
}

// ServerRef finds the server a reference names: its name, its alias (or
// prefix) or its LiteLLM server id, in that order. ok is false for none.
func (f *File) ServerRef(ref string) (string, bool) {
	if _, ok := f.MCPServers[ref]; ok {
		return ref, true
	}
	for _, name := range f.ServerNames() {
		s := f.MCPServers[name]
		if s.Alias == ref || s.Prefix() == ref {
			return name, true
		}
	}
	for _, name := range f.ServerNames() {
		if f.MCPServers[name].liteLLMID == ref {
			return name, true
		}
	}
	return "", false
}

// AccessGroups maps each access group the servers declare to the names of
// its servers, sorted.
func (f *File) AccessGroups() map[string][]string {
	groups := map[string][]string{}
	for _, name := range f.ServerNames() {
		for _, g := range f.MCPServers[name].AccessGroups {
			if !slices.Contains(groups[g], name) {
				groups[g] = append(groups[g], name)
			}
		}
	}
	return groups
}

// KeyServers is the servers a key's servers and access_groups name: each
// server reference resolved (ServerRef; one that names no server is kept
// as it is, for validate to report), each group's servers added, sorted
// and without repeats. It is empty (every server) only when both are.
func (f *File) KeyServers(servers, groups []string) []string {
	if len(servers) == 0 && len(groups) == 0 {
		return nil
	}
	var out []string
	for _, ref := range servers {
		if name, ok := f.ServerRef(ref); ok {
			ref = name
		}
		out = append(out, ref)
	}
	all := f.AccessGroups()
	for _, g := range groups {
		out = append(out, all[g]...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{} // groups with no server: no server, not all
	}
	return out
}

// resolveKeyServers rewrites each key's servers to server names, its
// access groups' servers included (KeyServers).
func (f *File) resolveKeyServers() {
	for i := range f.Keys {
		k := &f.Keys[i]
		if len(k.AccessGroups) == 0 && len(k.Servers) == 0 {
			continue
		}
		if k.rawServers == nil {
			k.rawServers = slices.Clone(k.Servers)
			if k.rawServers == nil {
				k.rawServers = []string{}
			}
		}
		k.Servers = f.KeyServers(k.rawServers, k.AccessGroups)
		if len(k.Servers) == 0 {
			// Groups none of whose servers exist: a name no server has
			// rather than an empty list (all).
			k.Servers = []string{noServer}
		}
	}
}

// noServer is a server name no server can have (ServerNameAllowed refuses
// a slash): the servers of a key that may use none.
const noServer = "/"

// validateNames reports problems of aliases, prefixes, access groups and
// per_server_tool_names.
func (f *File) validateNames(bad func(format string, args ...any)) {
	switch f.Ingress.PerServerToolNames {
	case ToolNamesPrefixed, ToolNamesBare:
	default:
		bad("ingress.per_server_tool_names: %q is not %s or %s", f.Ingress.PerServerToolNames, ToolNamesPrefixed, ToolNamesBare)
	}
	targets := map[string][]string{}
	for alias, target := range f.LiteLLMSettings.MCPAliases {
		if _, ok := f.MCPServers[target]; ok {
			targets[target] = append(targets[target], alias)
		}
	}
	for target, aliases := range targets {
		if len(aliases) > 1 && slices.Contains(aliases, f.MCPServers[target].Alias) {
			slices.Sort(aliases)
			bad("litellm_settings.mcp_aliases: %s all name server %q; give it one alias", strings.Join(aliases, ", "), target)
		}
	}
	byPrefix := map[string]string{}
	for _, name := range f.ServerNames() {
		s := f.MCPServers[name]
		if s.Alias != "" && !contracts.ServerNameAllowed(s.Alias) {
			bad("mcp_servers.%s.alias: %q is not 1 to 64 characters without a comma, slash or control character", name, s.Alias)
		}
		p := s.Prefix()
		if other, dup := byPrefix[p]; dup {
			bad("mcp_servers.%s: its tool prefix %q is also server %q's (alias or name)", name, p, other)
		}
		byPrefix[p] = name
		if other, ok := f.MCPServers[s.Alias]; ok && s.Alias != "" && other != s {
			bad("mcp_servers.%s.alias: %q is the name of another server", name, s.Alias)
		}
		for _, g := range s.AccessGroups {
			if !contracts.ServerNameAllowed(g) {
				bad("mcp_servers.%s.access_groups: %q is not 1 to 64 characters without a comma, slash or control character", name, g)
			}
		}
	}
	groups := f.AccessGroups()
	for i, k := range f.Keys {
		for _, g := range k.AccessGroups {
			if _, ok := groups[g]; !ok {
				bad("keys[%d].access_groups: no server declares the access group %q", i, g)
			}
		}
	}
}
