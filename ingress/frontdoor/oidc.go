package frontdoor

import (
	"net/http"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/auth"
)

// authenticateOIDC is Authenticate's second way in: when the request
// carries no gateway key header and its Authorization is a bearer JWT, the
// caller is the token's verified subject (auth.OIDC.Verify), whose
// Authorization stays its credential (passthrough servers receive that
// token; token-exchange servers' workers exchange it). Otherwise keyErr,
// the gateway key's refusal, stands.
func (p *Policy) authenticateOIDC(h http.Header, keyErr *contracts.Error) (*Caller, *contracts.Error) {
	if p.oidc == nil || h.Get(auth.HeaderKey) != "" || h.Get(auth.HeaderAPIKey) != "" {
		return nil, keyErr
	}
	tok := auth.Bearer(h.Get(HeaderAuthorization))
	if !auth.LooksLikeJWT(tok) {
		return nil, keyErr
	}
	prin, err := p.oidc.Verify(tok)
	if err != nil {
		return nil, err
	}
	presented := &Presented{}
	if err := readPresented(presented, h, &p.credentials, false); err != nil {
		return nil, err
	}
	return newSubjectCaller(prin, presented, p.identity), nil
}

// OIDC is the verifier of the configured OIDC issuers, or nil when none is
// configured.
func (p *Policy) OIDC() *auth.OIDC { return p.oidc }

// Challenge is the WWW-Authenticate value of a 401 answered to r: the
// pointer to the gateway's protected-resource metadata when OIDC callers
// are accepted (so that a client that can only do OAuth finds the
// issuers), else empty.
func (p *Policy) Challenge(r *http.Request) string {
	if p.oidc == nil {
		return ""
	}
	_, presented := r.Header[HeaderAuthorization]
	return p.oidc.Challenge(r, p.cfg.Ingress.PublicURL, presented)
}
