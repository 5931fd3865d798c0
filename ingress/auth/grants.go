package auth

import (
	"strings"

	"github.com/toolbus/toolbus/contracts"
)

// grants are the MCP resources (by URI) or prompts (by name) a key may
// use, by server. A nil *grants allows everything.
type grants struct {
	by map[string][]string // server → names or patterns (a trailing * matches a prefix; * alone, all)
}

// newGrants returns the grants of refs, or nil (everything) when not
// restricted.
func newGrants(refs []contracts.ToolRef, restricted bool) *grants {
	if !restricted {
		return nil
	}
	g := &grants{by: map[string][]string{}}
	for _, r := range refs {
		g.by[r.Server] = append(g.by[r.Server], r.Tool)
	}
	return g
}

// allows reports whether name (a URI, a prompt name) of server is granted.
func (g *grants) allows(server, name string) bool {
	if g == nil {
		return true
	}
	for _, p := range g.by[server] {
		if p == name || strings.HasSuffix(p, "*") && strings.HasPrefix(name, p[:len(p)-1]) {
			return true
		}
	}
	return false
}

// any reports whether anything of server is granted.
func (g *grants) any(server string) bool { return g == nil || len(g.by[server]) > 0 }

// all reports whether everything of server is granted.
func (g *grants) all(server string) bool {
	if g == nil {
		return true
	}
	for _, p := range g.by[server] {
		if p == "*" {
			return true
		}
	}
	return false
}

// AllowsResource reports whether the key may read (or subscribe to) the
// resource uri of server.
func (p *Principal) AllowsResource(server, uri string) bool {
	return p.AllowsServer(server) && p.resources.allows(server, uri)
}

// AllowsAnyResource reports whether the key may use some resource of
// server (resources/list then shows those it may).
func (p *Principal) AllowsAnyResource(server string) bool {
	return p.AllowsServer(server) && p.resources.any(server)
}

// AllowsAllResources reports whether the key may use every resource of
// server (resource templates are listed only then).
func (p *Principal) AllowsAllResources(server string) bool {
	return p.AllowsServer(server) && p.resources.all(server)
}

// AllowsPrompt reports whether the key may get (or complete) the prompt
// name of server.
func (p *Principal) AllowsPrompt(server, name string) bool {
	return p.AllowsServer(server) && p.prompts.allows(server, name)
}

// AllowsAnyPrompt reports whether the key may use some prompt of server.
func (p *Principal) AllowsAnyPrompt(server string) bool {
	return p.AllowsServer(server) && p.prompts.any(server)
}

// AllowsAllPrompts reports whether the key may use every prompt of server.
func (p *Principal) AllowsAllPrompts(server string) bool {
	return p.AllowsServer(server) && p.prompts.all(server)
}
