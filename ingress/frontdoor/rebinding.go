package frontdoor

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/toolbus/toolbus/contracts"
)

// CheckHost is the DNS-rebinding protection MCP asks of local servers,
// for every door (REST, async, admin, /mcp): on a loopback listener, a
// request whose Host or Origin names anything but a loopback host is
// refused (forbidden) before anything else reads it. A web page that
// rebinds its own name to 127.0.0.1 still sends its own name in Host, and
// its origin in Origin. Listeners on other addresses are reached by name
// through proxies and load balancers; the gateway key protects them.
func CheckHost(r *http.Request) *contracts.Error {
	if !onLoopback(r) {
		return nil
	}
	if !loopbackHost(r.Host) {
		return contracts.NewError(contracts.CodeForbidden, "the Host header must name a loopback host on a loopback listener (DNS rebinding protection)")
	}
	if origin := r.Header.Get("Origin"); origin != "" && !loopbackOrigin(origin) {
		return contracts.NewError(contracts.CodeForbidden, "the Origin header must be a loopback origin on a loopback listener (DNS rebinding protection)")
	}
	return nil
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
