package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/auth"
)

// MCPEndpoint is the MCP endpoint (package mcpserver), mounted by the API
// behind the same key middleware as every other route, so that a wrong key
// is refused with the API's JSON 401 before any MCP traffic.
type MCPEndpoint interface {
	// Mount adds the endpoint's routes: requests to requests (the API's
	// group, with its in-flight bound), long-lived streams to streams (key
	// and body limit only: the endpoint bounds its streams itself).
	// principal returns a request's authenticated key; abort writes an
	// error response as the API does.
	Mount(requests, streams gin.IRoutes, principal func(*gin.Context) *auth.Principal, abort func(*gin.Context, *contracts.Error))
}

// mountMCP mounts o.MCP, if any.
func mountMCP(r *gin.Engine, api gin.IRoutes, o Options) {
	if o.MCP == nil {
		return
	}
	streams := r.Group("", limitBody(o.Config.Ingress.MaxBodyBytes), authenticate(o.Keys))
	o.MCP.Mount(api, streams, principal, abortWithError)
}
