package demoserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// Transports.
const (
	TransportHTTP  = "http"  // streamable HTTP at PathMCP
	TransportSSE   = "sse"   // legacy SSE at PathSSE, messages to PathMessage
	TransportStdio = "stdio" // newline-delimited JSON-RPC on stdin/stdout
)

// HTTP paths.
const (
	PathMCP              = "/mcp"
	PathSSE              = "/sse"
	PathMessage          = "/message"
	PathResourceMetadata = "/.well-known/oauth-protected-resource"
)

// DefaultCloseTimeout bounds Close when its context has no deadline.
const DefaultCloseTimeout = 5 * time.Second

// Handler serves the demo MCP server over HTTP. It must be mounted at the root
// of its server: the SSE transport tells clients to post to PathMessage.
type Handler struct {
	opts          Options
	transport     string
	path          string
	rec           *Recorder
	inner         http.Handler
	closeSessions func(ctx context.Context)

	stop     chan struct{}
	stopOnce sync.Once
}

// NewHandler returns a handler for transport "http" or "sse". Every request
// is recorded in opts.Recorder (created when nil; see Handler.Recorder).
func NewHandler(opts Options, transport string) (*Handler, error) {
	if opts.Recorder == nil {
		opts.Recorder = &Recorder{}
	}
	h := &Handler{
		opts:      opts,
		transport: transport,
		rec:       opts.Recorder,
		stop:      make(chan struct{}),
	}
	mcpServer := newServer(opts, toolEnv{stop: h.stop})
	switch transport {
	case TransportHTTP:
		s := server.NewStreamableHTTPServer(mcpServer,
			server.WithEndpointPath(PathMCP),
			server.WithStreamableHTTPLogger(opts.logger()),
			server.WithStateLess(opts.Stateless),
		)
		h.path = PathMCP
		h.inner = s
		h.closeSessions = s.CloseSessions
	case TransportSSE:
		s := server.NewSSEServer(mcpServer,
			server.WithSSEEndpoint(PathSSE),
			server.WithMessageEndpoint(PathMessage),
		)
		h.path = PathSSE
		h.inner = s
		h.closeSessions = func(context.Context) { s.CloseSessions() }
	default:
		return nil, fmt.Errorf("demoserver: unknown HTTP transport %q (want %q or %q)", transport, TransportHTTP, TransportSSE)
	}
	return h, nil
}

// Recorder returns the recorder that sees every request.
func (h *Handler) Recorder() *Recorder { return h.rec }

// Path returns the endpoint a client connects to: PathMCP or PathSSE.
func (h *Handler) Path() string { return h.path }

// Close stops waiting tool calls, refuses new requests with 503 and ends open
// SSE and streamable GET streams, so that http.Server.Shutdown can finish. It
// may be called more than once; each call ends the streams open at the time.
func (h *Handler) Close(ctx context.Context) {
	h.stopOnce.Do(func() { close(h.stop) })
	h.closeSessions(ctx)
}

func (h *Handler) stopped() bool {
	select {
	case <-h.stop:
		return true
	default:
		return false
	}
}

// ServeHTTP records the request, applies the body limit and RequireToken, and
// hands the request to mcp-go.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.rec.record(r)
	if h.stopped() {
		http.Error(w, "demo server closing", http.StatusServiceUnavailable)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, h.opts.maxBodyBytes())
	}
	if h.opts.RequireToken != "" {
		if r.URL.Path == PathResourceMetadata {
			h.serveResourceMetadata(w, r)
			return
		}
		if !h.authorized(r) {
			h.unauthorized(w, r)
			return
		}
	}
	if h.transport == TransportHTTP && r.URL.Path != PathMCP {
		// mcp-go's streamable server answers on any path.
		http.NotFound(w, r)
		return
	}
	h.inner.ServeHTTP(w, r)
}

func (h *Handler) authorized(r *http.Request) bool {
	got := r.Header.Values("Authorization")
	return len(got) == 1 && subtle.ConstantTimeCompare([]byte(got[0]), []byte(h.opts.RequireToken)) == 1
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate",
		fmt.Sprintf(`Bearer realm="demo", resource_metadata="%s%s"`, baseURL(r), PathResourceMetadata))
	writeJSON(w, http.StatusUnauthorized, map[string]string{
		"error":             "invalid_token",
		"error_description": "missing or invalid bearer token",
	})
}

func (h *Handler) serveResourceMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"resource":                 baseURL(r) + h.path,
		"bearer_methods_supported": []string{"header"},
		"resource_name":            ServerName,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Running is a demo server started by Start.
type Running struct {
	// URL is the full endpoint URL, e.g. http://127.0.0.1:PORT/mcp or
	// http://127.0.0.1:PORT/sse.
	URL       string
	Transport string
	Recorder  *Recorder
	// Close shuts the server down gracefully: it stops waiting tool calls,
	// ends open streams and waits for in-flight requests, forcing connections
	// closed when ctx ends (after DefaultCloseTimeout if ctx has no deadline).
	// It is safe to call more than once.
	Close func(ctx context.Context) error
}

// Start listens on opts.Listen (default 127.0.0.1:0) and serves transport
// "http" or "sse" until Close is called or ctx is done.
func Start(ctx context.Context, opts Options, transport string) (*Running, error) {
	h, err := NewHandler(opts, transport)
	if err != nil {
		return nil, err
	}
	addr := opts.Listen
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demoserver: listen %s: %w", addr, err)
	}
	log := opts.logger()
	var handler http.Handler = h
	if opts.Wrap != nil {
		handler = opts.Wrap(h)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("demo server stopped", "error", err)
		}
	}()

	c := &closer{h: h, srv: srv, serveDone: serveDone}
	stopAfter := context.AfterFunc(ctx, func() { _ = c.close(context.Background()) })
	return &Running{
		URL:       "http://" + dialAddr(ln.Addr()) + h.Path(),
		Transport: transport,
		Recorder:  h.Recorder(),
		Close: func(ctx context.Context) error {
			stopAfter()
			return c.close(ctx)
		},
	}, nil
}

// dialAddr turns a listener address into one a local client can dial: an
// unspecified IP (0.0.0.0, ::) becomes 127.0.0.1, which also keeps mcp-go's
// DNS rebinding protection happy.
func dialAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	host := tcp.IP.String()
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

type closer struct {
	h         *Handler
	srv       *http.Server
	serveDone chan struct{}

	once sync.Once
	err  error
}

func (c *closer) close(ctx context.Context) error {
	c.once.Do(func() {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, DefaultCloseTimeout)
			defer cancel()
		}
		c.h.Close(ctx)

		// A stream may register after the first Close; keep ending streams
		// until Shutdown returns, as mcp-go's own Shutdown does.
		shutdownDone := make(chan error, 1)
		go func() { shutdownDone <- c.srv.Shutdown(ctx) }()
		ticker := time.NewTicker(10 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case err := <-shutdownDone:
				if err != nil {
					c.err = fmt.Errorf("demoserver: shutdown: %w", err)
					_ = c.srv.Close()
				}
				<-c.serveDone
				return
			case <-ticker.C:
				c.h.Close(ctx)
			}
		}
	})
	return c.err
}
