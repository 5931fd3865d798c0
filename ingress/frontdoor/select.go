package frontdoor

import (
	"net/http"
	"strings"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Headers of LiteLLM's server selection (docs.litellm.ai/docs/mcp, "MCP
// server selection"): comma-separated lists, read when the path names no
// servers.
const (
	HeaderMCPServers      = "x-mcp-servers"
	HeaderMCPAccessGroups = "x-mcp-access-groups"
)

// maxSelected bounds the entries of one selection.
const maxSelected = 64

// Selection is the servers a request names, as LiteLLM's doors name them:
// the path's <sel> of /mcp/<sel>, /<sel>/mcp and /<sel>/sse (or the REST
// list's server_id / mcp_server_name), else the x-mcp-servers and
// x-mcp-access-groups headers. Each entry of a list is a server's name,
// alias or LiteLLM server id, or an access group. A path selection wins
// over the headers. The zero Selection names no server: every server the
// key may use.
type Selection struct {
	// Path is the path's (or query's) selection, a comma-separated list.
	Path string
	// Servers and Groups are the headers' lists, read when Path is empty.
	Servers, Groups string
}

// SelectionOf is the selection of a request whose path names path ("" for
// none) with the headers h.
func SelectionOf(path string, h http.Header) Selection {
	if path != "" {
		return Selection{Path: path}
	}
	return Selection{Servers: h.Get(HeaderMCPServers), Groups: h.Get(HeaderMCPAccessGroups)}
}

// IsZero reports whether the selection names no server.
func (s Selection) IsZero() bool {
	return strings.TrimSpace(s.Path) == "" && strings.TrimSpace(s.Servers) == "" && strings.TrimSpace(s.Groups) == ""
}

// Single reports whether the selection is a path naming one server (not an
// access group): the door is then that server's own endpoint (as
// /<server>/mcp always was), with its resources, prompts and completion.
func (p *Policy) Single(sel Selection) (string, bool) {
	if sel.Path == "" || strings.Contains(sel.Path, ",") {
		return "", false
	}
	name, ok := p.cfg.ServerRef(strings.TrimSpace(sel.Path))
	return name, ok
}

// entries splits a comma-separated list, dropping empty entries.
func entries(list string) []string {
	var out []string
	for _, e := range strings.Split(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// selectServers resolves a non-zero selection for the caller: every entry
// must name a server (by name, alias or LiteLLM server id) or an access
// group. A server the key may not use is forbidden (Server); an access
// group stands for its servers the key may use, forbidden when it has
// none. An entry that names nothing is unknown_server, naming the servers
// the key may use. The servers are in the configuration's order, once
// each.
func (p *Policy) selectServers(c *Caller, sel Selection) ([]*config.Server, *contracts.Error) {
	type entry struct {
		ref       string
		groupOnly bool
	}
	var list []entry
	if sel.Path != "" {
		for _, e := range entries(sel.Path) {
			list = append(list, entry{ref: e})
		}
	} else {
		for _, e := range entries(sel.Servers) {
			list = append(list, entry{ref: e})
		}
		for _, e := range entries(sel.Groups) {
			list = append(list, entry{ref: e, groupOnly: true})
		}
	}
	if len(list) > maxSelected {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "a selection names at most %d servers or access groups", maxSelected)
	}
	chosen := map[string]bool{}
	groups := p.cfg.AccessGroups()
	for _, e := range list {
		if !e.groupOnly {
			if name, ok := p.cfg.ServerRef(e.ref); ok {
				if _, err := p.Server(c, name); err != nil {
					return nil, err
				}
				chosen[name] = true
				continue
			}
		}
		members, ok := groups[e.ref]
		if !ok {
			what := "server or access group"
			if e.groupOnly {
				what = "access group"
			}
			return nil, p.unknownServer(c, "no %s %q", what, Clip(e.ref))
		}
		any := false
		for _, name := range members {
			if c.Key.AllowsServer(name) {
				chosen[name], any = true, true
			}
		}
		if !any {
			return nil, contracts.NewError(contracts.CodeForbidden, "this key may use no server of the access group %q", e.ref)
		}
	}
	if len(chosen) == 0 {
		return nil, p.unknownServer(c, "the selection names no server")
	}
	var out []*config.Server
	for _, name := range p.cfg.ServerNames() {
		if chosen[name] {
			out = append(out, p.cfg.MCPServers[name])
		}
	}
	return out, nil
}

// unknownServer is unknown_server with the servers the caller may use.
func (p *Policy) unknownServer(c *Caller, format string, args ...any) *contracts.Error {
	e := contracts.NewError(contracts.CodeUnknownServer, format, args...)
	for _, n := range p.cfg.ServerNames() {
		if c.Key.AllowsServer(n) {
			e.Available = append(e.Available, n)
		}
	}
	return e
}
