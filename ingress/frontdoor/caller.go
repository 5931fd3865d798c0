package frontdoor

import (
	"net/http"
	"slices"
	"strings"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
)

// Header names of the caller's credentials.
const (
	// HeaderAuthorization is the end user's credential, unless it carries
	// the gateway key (auth.Keys.Find): then it goes to no server.
	HeaderAuthorization = "Authorization"
	// serverHeaderPrefix frames x-mcp-<server>-<header>, a header for one
	// server only (LiteLLM's convention).
	serverHeaderPrefix = "x-mcp-"
)

// notServerHeaders are x-mcp-* headers of LiteLLM's that address no server.
var notServerHeaders = []string{"x-mcp-servers", "x-mcp-access-groups"}

// Caller is an authenticated request: the gateway key, the credentials it
// presented (read only through Credential), and its identity (Owner).
type Caller struct {
	// Key is the gateway key the request presented.
	Key       *auth.Principal
	presented *Presented
	owner     string
}

// Presented is what a caller presented besides its gateway key, read once
// from its headers (ReadPresented): the values Credential hands out, and
// what the caller's identity is computed from.
type Presented struct {
	// authorization is the generic Authorization ("" when it was the
	// gateway key); legacy is x-mcp-auth (or its configured name).
	authorization, legacy string
	// servers holds the x-mcp-<server>-<header> values: server name ->
	// lower-case header name -> value.
	servers map[string]map[string]string
	// plain holds the values of the headers some server forwards as they
	// came (extra_headers, ${Header-Name} in a stdio server's env), by
	// lower-case name.
	plain map[string]string
}

// ReadPresented reads the credentials in h for the servers of cfg.
// keyInAuthorization says h's Authorization was
// the gateway key, which is then nobody's credential. A malformed x-mcp-*
// header (no server, an unknown one, no header name, a header that may not
// be forwarded), a value with a control character, or a credential header
// sent twice is invalid_request; the error never quotes a value.
func ReadPresented(h http.Header, cfg *config.File, keyInAuthorization bool) (*Presented, *contracts.Error) {
	names := newCredentialHeaders(cfg)
	p := &Presented{}
	if err := readPresented(p, h, &names, keyInAuthorization); err != nil {
		return nil, err
	}
	return p, nil
}

// credentialHeaders is what reading a caller's credentials needs of the
// configuration, computed once (Policy): the legacy header's name, the
// names servers go by in x-mcp-* headers, and the plain headers. The
// names read from a request are held as configured (lower-case: for
// messages, and as the plain map's keys) and in canonical form (the keys
// of a request's header map, so that a look-up allocates nothing).
type credentialHeaders struct {
	legacy, legacyKey string
	labels            []prefix
	plain, plainKeys  []string
}

func newCredentialHeaders(cfg *config.File) credentialHeaders {
	n := credentialHeaders{legacy: cfg.GeneralSettings.ClientSideAuthHeader(), labels: headerLabels(cfg), plain: plainHeaders(cfg)}
	n.legacyKey = http.CanonicalHeaderKey(n.legacy)
	for _, name := range n.plain {
		n.plainKeys = append(n.plainKeys, http.CanonicalHeaderKey(name))
	}
	return n
}

// readPresented is ReadPresented into p, with the configuration's names.
func readPresented(p *Presented, h http.Header, names *credentialHeaders, keyInAuthorization bool) *contracts.Error {
	// single is the one value of the header whose canonical name is key
	// (name as the message names it).
	single := func(key, name string) (string, *contracts.Error) {
		vs := h.Values(key)
		switch {
		case len(vs) == 0:
			return "", nil
		case len(vs) > 1:
			return "", contracts.NewError(contracts.CodeInvalidRequest, "header %s is sent more than once", Clip(name))
		case !contracts.ValidHeaderValue(vs[0]):
			return "", contracts.NewError(contracts.CodeInvalidRequest, "header %s has a control character in its value", Clip(name))
		}
		return vs[0], nil
	}
	var err *contracts.Error
	if !keyInAuthorization {
		if p.authorization, err = single(HeaderAuthorization, HeaderAuthorization); err != nil {
			return err
		}
	}
	// mcp_client_side_auth_header_name: authorization (a LiteLLM
	// documentation example) names the generic credential itself.
	if names.legacy != "authorization" {
		if p.legacy, err = single(names.legacyKey, names.legacy); err != nil {
			return err
		}
	}
	for name := range h {
		// Most headers are not x-mcp-*: tell so before lowering the name.
		if len(name) < len(serverHeaderPrefix) || !strings.EqualFold(name[:len(serverHeaderPrefix)], serverHeaderPrefix) {
			continue
		}
		lower := strings.ToLower(name)
		if lower == names.legacy || lower == config.DefaultClientSideAuthHeader || slices.Contains(notServerHeaders, lower) {
			continue
		}
		server, header, perr := splitServerHeader(lower[len(serverHeaderPrefix):], names.labels)
		if perr != nil {
			return perr
		}
		v, err := single(name, name)
		if err != nil {
			return err
		}
		if v == "" {
			continue
		}
		if p.servers == nil {
			p.servers = map[string]map[string]string{}
		}
		if p.servers[server] == nil {
			p.servers[server] = map[string]string{}
		}
		p.servers[server][header] = v
	}
	for i, name := range names.plain {
		v, err := single(names.plainKeys[i], name)
		if err != nil {
			return err
		}
		if v != "" {
			if p.plain == nil {
				p.plain = map[string]string{}
			}
			p.plain[name] = v
		}
	}
	return nil
}

// headerLabels are the names an x-mcp-<label>-<header> header may name a
// server by - its name and its alias, as LiteLLM's x-mcp-<alias or
// server_name>-<header> - longest first.
func headerLabels(cfg *config.File) []prefix {
	var out []prefix
	for _, name := range cfg.ServerNames() {
		out = append(out, prefix{name, name})
		if a := cfg.MCPServers[name].Alias; a != "" && a != name {
			out = append(out, prefix{a, name})
		}
	}
	slices.SortStableFunc(out, func(x, y prefix) int { return len(y.label) - len(x.label) })
	return out
}

// splitServerHeader splits <label>-<header> (lower-case) at the longest
// label (a server's name or alias) it starts with, into the server's name
// and the header. LiteLLM splits at the first '-', which is the same for
// names without one.
func splitServerHeader(rest string, labels []prefix) (server, header string, err *contracts.Error) {
	for _, l := range labels {
		if len(rest) > len(l.label) && rest[len(l.label)] == '-' && strings.EqualFold(rest[:len(l.label)], l.label) {
			server, header = l.server, rest[len(l.label)+1:]
			break
		}
	}
	switch {
	case server == "":
		return "", "", contracts.NewError(contracts.CodeInvalidRequest,
			"header x-mcp-%s names no configured server (the form is x-mcp-<server>-<header>)", Clip(rest))
	case header == "" || !contracts.ValidHeaderName(header):
		return "", "", contracts.NewError(contracts.CodeInvalidRequest, "header x-mcp-%s names no header for server %s", Clip(rest), server)
	case !contracts.Forwardable(header):
		return "", "", contracts.NewError(contracts.CodeInvalidRequest, "header %s may not be forwarded to a server", header)
	}
	return server, header, nil
}

// plainHeaders are the (lower-case) names of the client headers some server
// of cfg forwards as they came: extra_headers, and ${Header-Name} in a
// stdio server's env.
func plainHeaders(cfg *config.File) []string {
	var out []string
	for _, s := range cfg.MCPServers {
		for _, name := range s.ExtraHeaders {
			if lower := strings.ToLower(name); lower != "authorization" {
				out = append(out, lower)
			}
		}
		out = append(out, s.HeaderPlaceholders()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// identity appends to out every credential of p, name and value, in
// canonical order: what the caller's identity is computed from. It holds
// every value a server may receive from the caller - Authorization, the
// legacy header, each x-mcp-<server>-<header>, and the headers servers
// forward as they came (an upstream may well take a tenant header as
// authority) - so two callers differ when anything they could send
// upstream differs.
func (p *Presented) identity(out [][2]string) [][2]string {
	if p.authorization != "" {
		out = append(out, [2]string{"authorization", p.authorization})
	}
	if p.legacy != "" {
		out = append(out, [2]string{"legacy", p.legacy})
	}
	for server, hs := range p.servers {
		for h, v := range hs {
			out = append(out, [2]string{"x-mcp\x00" + server + "\x00" + h, v})
		}
	}
	for h, v := range p.plain {
		out = append(out, [2]string{"plain\x00" + h, v})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// NewCaller is the caller of key who presented p; id keys its identity.
func NewCaller(key *auth.Principal, p *Presented, id *auth.Identity) *Caller {
	c := &Caller{}
	c.init(key, p, id)
	return c
}

// identityBuffer is how many credentials an identity is computed from
// without allocating.
const identityBuffer = 4

func (c *Caller) init(key *auth.Principal, p *Presented, id *auth.Identity) {
	var buf [identityBuffer][2]string
	*c = Caller{Key: key, presented: p, owner: id.Of(key.Name, p.identity(buf[:0]))}
}

// presentedCaller is a Caller with what it presented, allocated together.
type presentedCaller struct {
	caller    Caller
	presented Presented
}

// newSubjectCaller is NewCaller for a caller whose Authorization is what
// authenticated it (an OIDC access token): key names the token's verified
// subject, so the token itself is no part of the identity - a refreshed
// token of the same subject is the same caller - while it stays the
// credential passthrough servers receive.
func newSubjectCaller(key *auth.Principal, p *Presented, id *auth.Identity) *Caller {
	creds := slices.DeleteFunc(p.identity(nil), func(c [2]string) bool { return c[0] == "authorization" })
	return &Caller{Key: key, presented: p, owner: id.Of(key.Name, creds)}
}

// Reach is how a request reaches a server, which decides whether the
// caller's generic Authorization may go with it.
type Reach int

const (
	// Targeted: the request names the server (REST server_id or a
	// <server><sep><tool> name, /<server>/mcp, a prefixed tools/call on
	// /mcp), or is a call to the one server a bare tool name resolved to.
	Targeted Reach = iota
	// FanOut: the request reaches every server the key may use (the
	// aggregated tools/list, a REST list without server_id, the lists a
	// bare tool name is looked up in).
	FanOut
)

// Credential is what srv receives from this caller on a request of reach;
// see Credential.
func (c *Caller) Credential(srv *config.Server, reach Reach) contracts.Token {
	return Credential(c.presented, srv, reach)
}

// Owner is the caller's identity, the owner of its jobs, tasks,
// idempotency keys, cancellations and subscriptions: a keyed hash of the
// gateway key and every credential the caller presented (auth.Identity).
func (c *Caller) Owner() string { return c.owner }

// Credential decides the credential set server srv receives from a caller
// who presented p. It is the only place that decides it:
//
//   - a server with auth_type none (or the older auth: none) receives
//     nothing of the caller's;
//   - the headers forwarded as they came - the server's extra_headers, and
//     every x-mcp-<server>-<header> but Authorization, which win over an
//     extra header of the same name - go to srv whatever the reach, but
//     never one that srv's own credential or static_headers set
//     (config.Server.ReservedHeaders): a configured value is never
//     overridden. A stdio server receives only those its env's
//     ${Header-Name} placeholders name (x-mcp-<server>-<name>, else the
//     header <name>);
//   - a server with a credential of its own (api_key, bearer_token, basic,
//     authorization, oauth2 client_credentials, aws_sigv4) never receives
//     the caller's Authorization: its workers send the service credential;
//   - else (passthrough; for stdio only with auth_env) Authorization is
//     x-mcp-<server>-authorization when sent (whatever the reach; no
//     other server ever receives it); else, on a FanOut request, nothing,
//     unless the server sets passthrough_on_fanout or exchanges the
//     caller's token (oauth2_token_exchange: the token goes to the token
//     exchange endpoint only, sealed to the workers) - a token meant for one
//     server must not reach every server; else the legacy x-mcp-auth when
//     sent, else the caller's Authorization, unchanged.
func Credential(p *Presented, srv *config.Server, reach Reach) contracts.Token {
	if p == nil || srv.Auth == config.AuthNone || srv.AuthType == config.AuthTypeNone {
		return contracts.Token{}
	}
	own := p.servers[srv.Name]
	set := map[string]string{}
	if srv.Transport == config.TransportStdio {
		for _, name := range srv.HeaderPlaceholders() {
			if v := own[name]; v != "" {
				set[name] = v
			} else if v := p.plain[name]; v != "" {
				set[name] = v
			}
		}
	} else {
		for _, name := range srv.ExtraHeaders {
			if v := p.plain[strings.ToLower(name)]; v != "" {
				set[strings.ToLower(name)] = v
			}
		}
		for name, v := range own {
			set[name] = v
		}
	}
	delete(set, contracts.HeaderAuthorization)
	for _, name := range srv.ReservedHeaders() {
		delete(set, name)
	}
	if srv.ReceivesCaller() && (srv.Transport != config.TransportStdio || srv.AuthEnv != "") {
		if v := callerAuthorization(p, own, srv, reach); v != "" {
			set[contracts.HeaderAuthorization] = v
		}
	}
	return contracts.NewTokenSet(set)
}

// callerAuthorization is the Authorization a passthrough server receives.
func callerAuthorization(p *Presented, own map[string]string, srv *config.Server, reach Reach) string {
	if v := own[contracts.HeaderAuthorization]; v != "" {
		return v
	}
	if reach == FanOut && !srv.PassthroughOnFanout && !srv.ExchangesCaller() {
		return ""
	}
	if p.legacy != "" {
		return p.legacy
	}
	return p.authorization
}
