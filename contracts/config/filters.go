package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/toolbus/toolbus/contracts"
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

// BareTool returns tool without the prefix <server><sep> or <prefix><sep>
// (the alias LiteLLM prefixes tools with, see Prefix) when it has one (and
// something after it), else tool: the name the server itself gives the tool.
func (s *Server) BareTool(tool, sep string) string {
	for _, label := range s.labels() {
		if bare, ok := strings.CutPrefix(tool, label+sep); ok && bare != "" {
			return bare
		}
	}
	return tool
}

// labels are the names that prefix the server's tools: its name, and its
// Prefix when that differs.
func (s *Server) labels() []string {
	if p := s.Prefix(); p != s.Name {
		return []string{s.Name, p}
	}
	return []string{s.Name}
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

// validateToolPrefixes reports entries of the server's tool lists that
// carry its own prefix but could also name another server's tool: in the
// lists of server pyup, pyup-x-secret could be tool x-secret of pyup or
// tool secret of pyup-x. (An entry with another server's prefix only is a
// bare name of this server's, as LiteLLM reads it.)
func (s *Server) validateToolPrefixes(servers map[string]*Server, sep string, bad func(string, ...any)) {
	lists := []struct {
		key   string
		tools []string
	}{{"allowed_tools", s.AllowedTools}, {"disallowed_tools", s.DisallowedTools}, {"allowed_params", slices.Sorted(maps.Keys(s.AllowedParams))}}
	for _, list := range lists {
		for _, t := range list.tools {
			readings := toolReadings(t, servers, sep)
			// Ambiguous when another server's label is longer than the
			// label of this server's the entry starts with (its reading
			// leaves a shorter tool name).
			i := slices.IndexFunc(readings, func(r contracts.ToolRef) bool { return r.Server == s.Name })
			longer := i >= 0 && slices.ContainsFunc(readings, func(r contracts.ToolRef) bool {
				return r.Server != s.Name && len(r.Tool) < len(readings[i].Tool)
			})
			if longer {
				bad("mcp_servers.%s.%s: %v", s.Name, list.key, ambiguousEntry(t, readings))
			}
		}
	}
}

// resolveKeyTools resolves each key's tools to (server, tool) pairs, the
// pairs the gateway checks (Key.ToolRefs), and rewrites Tools to their
// <server><sep><tool> names for display: an entry that starts with one
// configured server's name and sep names that server's tool; an entry that
// could name tools of two servers (servers pyup and pyup-x, entry
// pyup-x-secret) is an error naming both readings; any other entry is a
// bare tool name, allowed on every server the key may use (LiteLLM's keys
// name tools either way).
func (f *File) resolveKeyTools(sep string, bad func(string, ...any)) {
	for i := range f.Keys {
		k := &f.Keys[i]
		if k.Tools == nil && k.rawTools == nil {
			continue
		}
		if k.rawTools == nil {
			k.rawTools = slices.Clone(k.Tools)
		}
		if len(k.rawTools) == 0 {
			continue // an error (validate)
		}
		refs, err := f.keyToolRefs(k.Servers, k.rawTools, sep)
		if err != nil {
			bad("keys[%d].tools: %v", i, err)
		}
		k.toolRefs, k.toolsResolved = refs, true
		k.Tools = refNames(refs, sep)
		if len(k.Tools) == 0 {
			// A key whose tools name none of its servers may use no tool:
			// keep one name no server has rather than an empty list (all).
			k.Tools = []string{fmt.Sprintf("%s(no tool)", sep)}
		}
	}
}

// resolveKeyGrants resolves each key's resources and prompts lists as
// resolveKeyTools resolves its tools (an entry with two readings is an
// error).
func (f *File) resolveKeyGrants(sep string, bad func(string, ...any)) {
	for i := range f.Keys {
		k := &f.Keys[i]
		for _, g := range []struct {
			field string
			list  []string
			refs  *[]contracts.ToolRef
		}{{"resources", k.Resources, &k.resourceRefs}, {"prompts", k.Prompts, &k.promptRefs}} {
			if len(g.list) == 0 {
				*g.refs = nil
				continue
			}
			refs, err := f.keyToolRefs(k.Servers, g.list, sep)
			if err != nil {
				bad("keys[%d].%s: %v", i, g.field, err)
			}
			*g.refs = refs
		}
	}
}

// ResourceRefs returns the key's resources as (server, URI pattern) pairs,
// and whether resources are restricted at all: with a resources list, or
// with a tools list (then refs may be empty: none). Before Normalize it
// reports no restriction.
func (k *Key) ResourceRefs() ([]contracts.ToolRef, bool) {
	return k.resourceRefs, k.resourceRefs != nil || k.toolsResolved
}

// PromptRefs is ResourceRefs for prompts (by name).
func (k *Key) PromptRefs() ([]contracts.ToolRef, bool) {
	return k.promptRefs, k.promptRefs != nil || k.toolsResolved
}

// ToolRefs returns the (server, tool) pairs the key may use, and whether
// its tool list restricts it at all (false: every tool of its servers).
// Before Normalize the pairs are unknown: it returns nil, false.
func (k *Key) ToolRefs() ([]contracts.ToolRef, bool) {
	return k.toolRefs, k.toolsResolved
}

// KeyToolNames resolves a key's tool list as Normalize does for the keys
// of the file, to <server><separator><tool> names (sorted; empty when no
// entry names a tool of a server the key may use, or an entry is
// ambiguous).
func (f *File) KeyToolNames(servers, tools []string) []string {
	refs, err := f.KeyToolRefs(servers, tools)
	if err != nil {
		return nil
	}
	return refNames(refs, f.Ingress.Separator())
}

// KeyToolRefs resolves a key's tool list as Normalize does for the keys of
// the file (`ingress keys create` uses it for managed keys): each entry
// prefixed <server><separator><tool> for one configured server names that
// tool; a bare name, that tool on every configured server in servers (all
// when servers is empty); an entry with two such readings is an error. The
// result is sorted.
func (f *File) KeyToolRefs(servers, tools []string) ([]contracts.ToolRef, error) {
	return f.keyToolRefs(servers, tools, f.Ingress.Separator())
}

func (f *File) keyToolRefs(keyServers, tools []string, sep string) ([]contracts.ToolRef, error) {
	servers := f.ServerNames()
	var out []contracts.ToolRef
	var errs []error
	for _, t := range tools {
		readings := toolReadings(t, f.MCPServers, sep)
		switch {
		case len(readings) > 1:
			errs = append(errs, ambiguousEntry(t, readings))
		case len(readings) == 1:
			out = append(out, readings[0]) // the key's servers still decide
		default:
			for _, s := range servers {
				if len(keyServers) == 0 || slices.Contains(keyServers, s) {
					out = append(out, contracts.ToolRef{Server: s, Tool: t})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b contracts.ToolRef) int {
		return cmp.Or(cmp.Compare(a.Server, b.Server), cmp.Compare(a.Tool, b.Tool))
	})
	return slices.Compact(out), errors.Join(errs...)
}

// toolReadings returns the (server, tool) pairs t names as
// <label><sep><tool>, for each server of servers and each of its labels
// (its name, its alias), in server order.
func toolReadings(t string, servers map[string]*Server, sep string) []contracts.ToolRef {
	var out []contracts.ToolRef
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		if servers[name] == nil {
			continue
		}
		for _, label := range servers[name].labels() {
			if rest, ok := strings.CutPrefix(t, label+sep); ok && rest != "" {
				out = append(out, contracts.ToolRef{Server: name, Tool: rest})
				break
			}
		}
	}
	return out
}

// ambiguousEntry is the error of an entry with several readings.
func ambiguousEntry(t string, readings []contracts.ToolRef) error {
	names := make([]string, len(readings))
	for i, r := range readings {
		names[i] = fmt.Sprintf("tool %q of server %q", r.Tool, r.Server)
	}
	return fmt.Errorf("%q is ambiguous: it could be %s; rename a server, or name the tool bare and restrict the key's servers", t, strings.Join(names, " or "))
}

func refNames(refs []contracts.ToolRef, sep string) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Server + sep + r.Tool
	}
	slices.Sort(out)
	return slices.Compact(out)
}
