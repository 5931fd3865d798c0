package gateway

import (
	"net"
	"net/http"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/httpapi"
)

// Listen listens on the TCP address addr for the ingress. Its connections
// answer the errors Go's HTTP server writes itself (a malformed request,
// headers over ServerMaxHeaderBytes, an unsupported transfer coding, ...)
// in the JSON error shape (httpapi.JSONErrors).
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return httpapi.JSONErrors(ln), nil
}

// NewServer is the ingress's HTTP server for h (Gateway.Handler): every
// timeout set, and Go's header bound above the router's (Go answers
// beyond it itself; serve it on Listen's listener to have that answer in
// JSON too).
func NewServer(cfg *config.File, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      cfg.Ingress.MaxTimeout.D() + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    httpapi.ServerMaxHeaderBytes,
	}
}
