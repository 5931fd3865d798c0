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

// Credential is what srv receives from this caller; see Credential.
func (c *Caller) Credential(srv *config.Server) contracts.Token {
	return Credential(c.header, srv)
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
//     that server (and to no other);
//   - else the caller's Authorization, unchanged.
func Credential(h http.Header, srv *config.Server) contracts.Token {
	if !srv.ReceivesCaller() || srv.Auth == config.AuthNone {
		return contracts.Token{}
	}
	if v := h.Get(serverAuthzPrefix + srv.Name + serverAuthzSuffix); v != "" {
		return contracts.NewToken(v)
	}
	return contracts.NewToken(h.Get(HeaderAuthorization))
}
