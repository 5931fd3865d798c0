package frontdoor

import (
	"net/http"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
)

// Header names of the caller's credentials.
const (
	// HeaderAuthorization is the end user's credential, unless it carries
	// the gateway key (auth.Keys.Find): then it goes to no server.
	HeaderAuthorization = "Authorization"
	// serverAuthz* frame x-mcp-<server>-authorization, the credential for
	// one server only (LiteLLM's convention).
	serverAuthzPrefix = "x-mcp-"
	serverAuthzSuffix = "-authorization"
)

// Caller is an authenticated request: the gateway key, and the credentials
// it presented (its headers, read only through Credential and Owner).
type Caller struct {
	// Key is the gateway key the request presented.
	Key    *auth.Principal
	header http.Header
}

// NewCaller is the caller of key with the request headers h. keyInAuthorization
// says the key came in h's Authorization (LiteLLM's fallback): that value is
// then no credential of the caller's, so no server receives it and it is
// not part of the caller's ownership.
func NewCaller(key *auth.Principal, h http.Header, keyInAuthorization bool) *Caller {
	if keyInAuthorization {
		h = h.Clone()
		h.Del(HeaderAuthorization)
	}
	return &Caller{Key: key, header: h}
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
	return Credential(c.header, srv, reach)
}

// Owner is the caller as the owner of jobs, tasks and subscriptions: the
// gateway key and the fingerprint of the caller's Authorization.
func (c *Caller) Owner() string {
	return contracts.Owner(c.Key.Name, contracts.Fingerprint(c.header.Get(HeaderAuthorization)))
}

// Credential decides the credential server srv receives from a caller
// who sent the headers h. It is the only place that decides it:
//
//   - a server with auth_type none (or the older auth: none) receives
//     nothing;
//   - a server with a credential of its own (api_key, bearer_token, basic,
//     authorization, oauth2 client_credentials, aws_sigv4) receives nothing
//     of the caller's: its workers send the service credential instead, so
//     the caller's Authorization is not even sealed for it;
//   - else (passthrough) x-mcp-<server>-authorization, when sent, goes to
//     that server (and to no other), whatever the reach;
//   - else, on a FanOut request, nothing, unless the server sets
//     passthrough_on_fanout: a token meant for one server must not reach
//     every server (a server that then refuses answers 401 with its
//     challenge, which tells the client to send x-mcp-<server>-authorization);
//   - else the caller's Authorization, unchanged.
func Credential(h http.Header, srv *config.Server, reach Reach) contracts.Token {
	if !srv.ReceivesCaller() || srv.Auth == config.AuthNone {
		return contracts.Token{}
	}
	if v := h.Get(serverAuthzPrefix + srv.Name + serverAuthzSuffix); v != "" {
		return contracts.NewToken(v)
	}
	if reach == FanOut && !srv.PassthroughOnFanout {
		return contracts.Token{}
	}
	return contracts.NewToken(h.Get(HeaderAuthorization))
}
