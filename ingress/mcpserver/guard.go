package mcpserver

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
)

// guard is the DNS-rebinding protection MCP asks of local servers: on a
// loopback listener, a request whose Host or Origin names anything but a
// loopback host is refused (403) before any MCP processing. A web page that
// rebinds its own name to 127.0.0.1 still sends its own name in Host, and
// its origin in Origin. Listeners on other addresses are reached by name
// through proxies and load balancers; the gateway key protects them.
func (s *Server) guard(c *gin.Context) {
	if onLoopback(c.Request) {
		if !loopbackHost(c.Request.Host) {
			s.abort(c, contracts.NewError(contracts.CodeForbidden, "the Host header must name a loopback host on a loopback listener (DNS rebinding protection)"))
			return
		}
		if origin := c.GetHeader("Origin"); origin != "" && !loopbackOrigin(origin) {
			s.abort(c, contracts.NewError(contracts.CodeForbidden, "the Origin header must be a loopback origin on a loopback listener (DNS rebinding protection)"))
			return
		}
	}
	c.Next()
}

// onLoopback reports whether the request arrived on a loopback address.
func onLoopback(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// loopbackHost reports whether a Host header value (host, optional port)
// names localhost or a loopback IP.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return loopbackHost(u.Host)
}
