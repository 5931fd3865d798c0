package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
)

// withProtectedResource serves the gateway's OAuth 2.0 protected-resource
// metadata (RFC 9728) in front of next when OIDC issuers are configured:
// GET /.well-known/oauth-protected-resource (the whole gateway) and
// /.well-known/oauth-protected-resource/mcp (its MCP endpoint /mcp), each
// naming the configured issuers as authorization servers, without a key.
// Every other request goes to next. Without OIDC it returns next.
func withProtectedResource(v *auth.OIDC, cfg *config.File, next http.Handler) http.Handler {
	if v == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if path != auth.WellKnownProtectedResource && path != auth.WellKnownProtectedResourceMCP {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"error":{"code":"method_not_allowed","message":"use GET","retryable":false}}`))
			return
		}
		body, _ := json.Marshal(v.ProtectedResource(auth.BaseURL(r, cfg.Ingress.PublicURL), path))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	})
}
