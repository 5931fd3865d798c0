package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
)

// MCPEndpoint is the MCP endpoint (package mcpserver), mounted by the API
// behind the same key middleware as every other route, so that a wrong key
// is refused with the API's JSON 401 before any MCP traffic.
type MCPEndpoint interface {
	// Mount adds the endpoint's routes: requests to requests (the API's
	// group, with its in-flight bound), long-lived streams to streams (key
	// and body limit only: the endpoint bounds its streams itself). Both
	// have checked the key: frontdoor.Of(c).Caller is the caller. abort
	// writes an error response as the API does.
	Mount(requests, streams gin.IRoutes, abort func(*gin.Context, *contracts.Error))
}

// PublicEndpoint is a set of routes that take no gateway key (package
// oauthproxy). Mount adds them to r; abort writes an error response as the
// API does.
type PublicEndpoint interface {
	Mount(r gin.IRoutes, abort func(*gin.Context, *contracts.Error))
}

// mountMCP mounts o.MCP, if any.
func mountMCP(r *gin.Engine, api gin.IRoutes, o Options) {
	if o.MCP == nil {
		return
	}
	streams := r.Group("", limitBody(o.Config.Ingress.MaxBodyBytes), authenticate(o.Policy), limitKeyRate(o.Limits), limitKeyStreams(o.Limits))
	o.MCP.Mount(api, streams, abortWithError)
}
