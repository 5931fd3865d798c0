package frontdoor

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/dispatch"
)

// Policy decides every request's key, servers, tool, budget and
// credentials. Safe for concurrent use.
type Policy struct {
	cfg      *config.File
	keys     *auth.Keys
	oidc     *auth.OIDC // nil: no OIDC issuer configured
	catalog  *dispatch.Catalog
	identity *auth.Identity
	// credentials are what reading a caller's credentials needs of the
	// configuration (readPresented).
	credentials credentialHeaders
	sep         string
	// prefixes are the names a <prefix><sep><tool> name may start with
	// (each server's prefix, and its name where that differs), longest
	// first, so that a prefix that holds the separator itself resolves to
	// the longest that matches.
	prefixes []prefix
}

// prefix is one name that prefixes a server's tools.
type prefix struct {
	label  string
	server string
}

// New returns the policy of cfg's servers and ingress limits, keys' gateway
// keys, and catalog's tool lists; identity keys callers' identities.
func New(cfg *config.File, keys *auth.Keys, catalog *dispatch.Catalog, identity *auth.Identity) *Policy {
	p := &Policy{cfg: cfg, keys: keys, oidc: auth.NewOIDC(cfg, auth.OIDCOptions{}), catalog: catalog, identity: identity, sep: cfg.Ingress.Separator(),
		credentials: newCredentialHeaders(cfg)}
	for _, name := range cfg.ServerNames() {
		srv := cfg.MCPServers[name]
		p.prefixes = append(p.prefixes, prefix{srv.Prefix(), name})
		if srv.Prefix() != name {
			p.prefixes = append(p.prefixes, prefix{name, name})
		}
	}
	slices.SortStableFunc(p.prefixes, func(x, y prefix) int { return len(y.label) - len(x.label) })
	return p
}

// Separator joins a server and a tool name where tools of several servers
// meet (ingress.tool_separator).
func (p *Policy) Separator() string { return p.sep }

// Authenticate finds the gateway key h presents (auth.Keys.Find; in
// Authorization only when no key header is present) and reads the
// credentials the caller presented (ReadPresented): the caller, or
// unauthorized, or invalid_request for a malformed credential header.
// With OIDC issuers configured, a JWT access token of theirs in
// Authorization also authenticates (authenticateOIDC).
func (p *Policy) Authenticate(h http.Header) (*Caller, *contracts.Error) {
	key, inAuthorization, err := p.keys.Find(h)
	if err != nil {
		return p.authenticateOIDC(h, err)
	}
	pc := &presentedCaller{}
	if err := readPresented(&pc.presented, h, &p.credentials, inAuthorization); err != nil {
		return nil, err
	}
	pc.caller.init(key, &pc.presented, p.identity)
	return &pc.caller, nil
}

// Server returns the server ref names (its name, alias or LiteLLM server
// id: config.File.ServerRef) if the caller may use it: unknown_server
// (naming the servers it may use) when there is none, forbidden when the
// key may not use it.
func (p *Policy) Server(c *Caller, ref string) (*config.Server, *contracts.Error) {
	name, ok := p.cfg.ServerRef(ref)
	if !ok {
		return nil, p.unknownServer(c, "no server %q", Clip(ref))
	}
	if !c.Key.AllowsServer(name) {
		return nil, contracts.NewError(contracts.CodeForbidden, "this key may not use server %q", name)
	}
	return p.cfg.MCPServers[name], nil
}

// Servers returns the servers a request covers: those its selection names
// (a path's /mcp/<sel>, /<sel>/mcp, the REST list's server_id, else the
// x-mcp-servers and x-mcp-access-groups headers: see Selection), or, when
// it names none, every server the caller may use. It is the one place a
// selection is decided, so that a selection outside the key's servers is
// the same refusal on every door.
func (p *Policy) Servers(c *Caller, sel Selection) ([]*config.Server, *contracts.Error) {
	if !sel.IsZero() {
		return p.selectServers(c, sel)
	}
	var out []*config.Server
	for _, n := range p.cfg.ServerNames() {
		if c.Key.AllowsServer(n) {
			out = append(out, p.cfg.MCPServers[n])
		}
	}
	return out, nil
}

// ToolName is the name of srv's tool where tools of several servers meet
// (the aggregated /mcp, a selection, the REST API): <prefix><sep><tool>,
// the prefix being the server's alias or name (config.Server.Prefix).
func (p *Policy) ToolName(srv *config.Server, tool string) string {
	return srv.Prefix() + p.sep + tool
}

// PerServerPrefixed reports whether /<server>/mcp lists tools prefixed
// (ingress.per_server_tool_names: prefixed, LiteLLM's form).
func (p *Policy) PerServerPrefixed() bool {
	return p.cfg.Ingress.PerServerToolNames != config.ToolNamesBare
}

// CheckTool refuses, as forbidden, a tool of srv that the server's
// allowed_tools / disallowed_tools or the key's tool list exclude.
func (p *Policy) CheckTool(c *Caller, srv *config.Server, tool string) *contracts.Error {
	if !srv.ToolAllowed(tool) {
		return contracts.NewError(contracts.CodeForbidden, "tool %q is not allowed on server %q", Clip(tool), srv.Name)
	}
	if !c.Key.AllowsTool(srv.Name, tool) {
		return contracts.NewError(contracts.CodeForbidden, "this key may not use tool %s%s%s", srv.Name, p.sep, Clip(tool))
	}
	return nil
}

// CheckArguments refuses, as forbidden_param, a call of tool on srv whose
// arguments (a JSON object; empty or null is none) name one that the
// server's allowed_params does not let the tool take. The error names the
// refused arguments (clipped) and lists the allowed ones.
func CheckArguments(srv *config.Server, tool string, args json.RawMessage) *contracts.Error {
	allowed, restricted := srv.AllowedParamsOf(tool)
	if !restricted {
		return nil
	}
	var fields map[string]json.RawMessage
	if a := bytes.TrimSpace(args); len(a) > 0 && string(a) != "null" {
		if err := json.Unmarshal(a, &fields); err != nil {
			return contracts.NewError(contracts.CodeInvalidRequest, "arguments must be a JSON object")
		}
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	bad := srv.ForbiddenParams(tool, names)
	if len(bad) == 0 {
		return nil
	}
	for i, b := range bad {
		bad[i] = strconv.Quote(Clip(b))
	}
	const maxNamed = 10
	if len(bad) > maxNamed {
		bad = append(bad[:maxNamed], "…")
	}
	e := contracts.NewError(contracts.CodeForbiddenParam, "tool %q of server %q may not take the argument(s) %s (its allowed_params)",
		Clip(tool), srv.Name, strings.Join(bad, ", "))
	e.Available = slices.Clone(allowed)
	return e
}

// visible reports whether the caller may see and use tool on srv.
func (p *Policy) visible(c *Caller, srv *config.Server, tool string) bool {
	return srv.ToolAllowed(tool) && c.Key.AllowsTool(srv.Name, tool)
}

// Budget is a request's time on srv: what the caller asks (0: the
// server's default), within the server's and the ingress's maximum.
func (p *Policy) Budget(srv *config.Server, asked time.Duration) time.Duration {
	t := srv.Timeout.D()
	if asked > 0 {
		t = asked
	}
	return min(t, srv.MaxTimeout.D(), p.cfg.Ingress.MaxTimeout.D())
}

// RPC is the relay of an MCP request (contracts.RPCMethods) to srv for the
// caller: its credential for srv, the server's default budget.
func (p *Policy) RPC(c *Caller, srv *config.Server, method string, params json.RawMessage) dispatch.RPC {
	return dispatch.RPC{
		KeyID: c.Key.Name, Server: srv.Name, Method: method, Params: params,
		Token: c.Credential(srv, Targeted), Caller: c.Owner(), Timeout: p.Budget(srv, 0),
	}
}

// Clip bounds a client-supplied string quoted in an error (contracts.Clip).
func Clip(s string) string { return contracts.Clip(s) }
