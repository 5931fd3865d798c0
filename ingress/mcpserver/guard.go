package mcpserver

import (
	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// guard is the DNS-rebinding protection (frontdoor.CheckHost) before any
// MCP processing.
func (s *Server) guard(c *gin.Context) {
	if e := frontdoor.CheckHost(c.Request); e != nil {
		s.abort(c, e)
		return
	}
	c.Next()
}
