package config

import (
	"fmt"
	"slices"
	"strings"
)

// toolFilters is a server's allowed_tools, disallowed_tools and
// allowed_params resolved to the server's bare tool names (Normalize does
// it, with the file's tool separator): LiteLLM lets each entry name a tool
// with or without its <server><separator> prefix.
type toolFilters struct {
	allowed    map[string]bool     // nil: every tool
	disallowed map[string]bool     // nil: none
	params     map[string][]string // by bare tool name; absent: every argument
}

// BareTool returns tool without the prefix <server><sep> when it has it
// (and something after it), else tool: the name the server itself gives
// the tool.
func (s *Server) BareTool(tool, sep string) string {
	if bare, ok := strings.CutPrefix(tool, s.Name+sep); ok && bare != "" {
		return bare
	}
	return tool
}

// resolveToolFilters resolves the server's tool filters with sep. It is
// recomputed from the lists as written on every Normalize, so a separator
// set later (MCP_TOOL_PREFIX_SEPARATOR) applies.
func (s *Server) resolveToolFilters(sep string) {
	f := toolFilters{}
	if len(s.AllowedTools) > 0 {
		f.allowed = make(map[string]bool, len(s.AllowedTools))
		for _, t := range s.AllowedTools {
			f.allowed[s.BareTool(t, sep)] = true
		}
	}
	if len(s.DisallowedTools) > 0 {
		f.disallowed = make(map[string]bool, len(s.DisallowedTools))
		for _, t := range s.DisallowedTools {
			f.disallowed[s.BareTool(t, sep)] = true
		}
	}
	if len(s.AllowedParams) > 0 {
		f.params = make(map[string][]string, len(s.AllowedParams))
		for t, params := range s.AllowedParams {
			bare := s.BareTool(t, sep)
			merged := append(slices.Clone(f.params[bare]), params...)
			slices.Sort(merged)
			f.params[bare] = slices.Compact(merged)
		}
	}
	s.filters = &f
}

// ToolAllowed applies the server's allowed_tools and disallowed_tools to
// tool, the server's own (bare) name for it. An entry of either list may
// name the tool with or without its <server><separator> prefix;
// disallowed_tools wins over allowed_tools. Before Normalize the lists are
// compared as written.
func (s *Server) ToolAllowed(tool string) bool {
	if f := s.filters; f != nil {
		return (f.allowed == nil || f.allowed[tool]) && !f.disallowed[tool]
	}
	if len(s.AllowedTools) > 0 && !slices.Contains(s.AllowedTools, tool) {
		return false
	}
	return !slices.Contains(s.DisallowedTools, tool)
}

// AllowedToolNames returns allowed_tools as the server's bare tool names,
// sorted (none: every tool is allowed).
func (s *Server) AllowedToolNames() []string {
	if s.filters == nil {
		return slices.Sorted(slices.Values(s.AllowedTools))
	}
	names := make([]string, 0, len(s.filters.allowed))
	for t := range s.filters.allowed {
		names = append(names, t)
	}
	slices.Sort(names)
	return names
}

// AllowedParamsOf returns the argument names allowed_params lets tool (the
// server's bare name for it) take, sorted, and whether allowed_params
// restricts the tool at all.
func (s *Server) AllowedParamsOf(tool string) ([]string, bool) {
	if s.filters != nil {
		p, ok := s.filters.params[tool]
		return p, ok
	}
	p, ok := s.AllowedParams[tool]
	return p, ok
}

// ForbiddenParams returns, sorted, the argument names that allowed_params
// does not let tool take (none when allowed_params does not name the tool).
func (s *Server) ForbiddenParams(tool string, args []string) []string {
	allowed, ok := s.AllowedParamsOf(tool)
	if !ok {
		return nil
	}
	var out []string
	for _, a := range args {
		if !slices.Contains(allowed, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// validateToolFilters reports entries that name no tool.
func (s *Server) validateToolFilters(bad func(string, ...any)) {
	for _, list := range []struct {
		key   string
		tools []string
	}{{"allowed_tools", s.AllowedTools}, {"disallowed_tools", s.DisallowedTools}} {
		for i, t := range list.tools {
			if strings.TrimSpace(t) == "" {
				bad("mcp_servers.%s.%s[%d]: an empty tool name", s.Name, list.key, i)
			}
		}
	}
	for t, params := range s.AllowedParams {
		if strings.TrimSpace(t) == "" {
			bad("mcp_servers.%s.allowed_params: an empty tool name", s.Name)
		}
		for i, p := range params {
			if p == "" {
				bad("mcp_servers.%s.allowed_params.%s[%d]: an empty parameter name", s.Name, t, i)
			}
		}
	}
}

// resolveKeyTools rewrites each key's tools to the <server><sep><tool>
// names the gateway checks: an entry that starts with a configured
// server's name and sep (the longest such name) stays as it is; any other
// entry is a bare tool name, allowed on every server the key may use
// (LiteLLM's keys name tools either way).
func (f *File) resolveKeyTools(sep string) {
	for i := range f.Keys {
		k := &f.Keys[i]
		if len(k.Tools) == 0 {
			continue
		}
		if k.rawTools == nil {
			k.rawTools = slices.Clone(k.Tools)
		}
		k.Tools = f.keyToolNames(k.Servers, k.rawTools, sep)
		if len(k.Tools) == 0 {
			// A key whose tools name none of its servers may use no tool:
			// keep one name no server has rather than an empty list (all).
			k.Tools = []string{fmt.Sprintf("%s(no tool)", sep)}
		}
	}
}

// KeyToolNames resolves a key's tool list as Normalize does for the keys
// of the file (`ingress keys create` uses it for managed keys): each entry prefixed
// <server><separator><tool> for a configured server stays; a bare name
// becomes that tool on every configured server in servers (all when
// servers is empty). The result is sorted; it is empty when no entry names
// a tool of a server the key may use.
func (f *File) KeyToolNames(servers, tools []string) []string {
	return f.keyToolNames(servers, tools, f.Ingress.Separator())
}

func (f *File) keyToolNames(keyServers, tools []string, sep string) []string {
	servers := f.ServerNames()
	slices.SortStableFunc(servers, func(x, y string) int { return len(y) - len(x) })
	var out []string
	for _, t := range tools {
		if prefixedTool(t, servers, sep) {
			out = append(out, t)
			continue
		}
		for _, s := range servers {
			if len(keyServers) == 0 || slices.Contains(keyServers, s) {
				out = append(out, s+sep+t)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// prefixedTool reports whether t is <server><sep><tool> for a server in
// servers (longest first).
func prefixedTool(t string, servers []string, sep string) bool {
	for _, s := range servers {
		if rest, ok := strings.CutPrefix(t, s+sep); ok && rest != "" {
			return true
		}
	}
	return false
}
