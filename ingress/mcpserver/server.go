package mcpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/jobs"
)

// Identity and limits.
const (
	// ServerName is the serverInfo.name of the aggregated endpoint; a
	// per-server endpoint is ServerName + "/" + the server's name.
	ServerName = "toolbus"
	// taskPollInterval is the poll interval tasks suggest, in ms.
	taskPollInterval = 1000
	// tasksPageSize is the size of a tasks/list page.
	tasksPageSize = 50
	// maxTaskResultWait bounds one tasks/result wait when the ingress's
	// max_timeout is shorter.
	maxTaskResultWait = 5 * time.Minute
)

// Protocol versions the endpoint speaks, newest first. initialize settles on
// the client's version when it is one of them, else on the first.
var protocolVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// Options are the MCP endpoint's dependencies.
type Options struct {
	Config     *config.File
	Dispatcher *dispatch.Dispatcher
	Catalog    *dispatch.Catalog
	// Jobs backs MCP Tasks; nil refuses task-augmented calls.
	Jobs *jobs.Store
	// Conn carries legacy SSE messages between replicas; nil keeps them on
	// the replica that holds the stream.
	Conn   *nats.Conn
	Logger zerolog.Logger
	// Version is reported as serverInfo.version; empty means "dev".
	Version string
}

// Server is the MCP endpoint. Mount it on the HTTP API's authenticated
// routes; Close it on shutdown, before the HTTP server's Shutdown, so that
// legacy SSE streams end. Safe for concurrent use.
type Server struct {
	cfg     *config.File
	d       *dispatch.Dispatcher
	catalog *dispatch.Catalog
	jobs    *jobs.Store
	log     zerolog.Logger
	version string
	// serversByLength is the server names, longest first, to split
	// <server>-<tool> names whose server name has a dash itself.
	serversByLength []string

	principal func(*gin.Context) *auth.Principal
	abort     func(*gin.Context, *contracts.Error)

	inflightMu sync.Mutex
	inflight   map[string]bool // call request ids running on this replica

	sse *sseHub

	// listens counts the standalone streams (GET /<server>/mcp) open here;
	// done ends them (Close).
	listens   atomic.Int64
	done      chan struct{}
	closeOnce sync.Once
}

// New returns the MCP endpoint.
func New(o Options) (*Server, error) {
	if o.Config == nil || o.Dispatcher == nil || o.Catalog == nil {
		return nil, errors.New("mcpserver: Config, Dispatcher and Catalog are required")
	}
	s := &Server{
		cfg: o.Config, d: o.Dispatcher, catalog: o.Catalog, jobs: o.Jobs, log: o.Logger,
		version: o.Version, inflight: make(map[string]bool), done: make(chan struct{}),
	}
	if s.version == "" {
		s.version = "dev"
	}
	s.serversByLength = o.Config.ServerNames()
	slices.SortStableFunc(s.serversByLength, func(x, y string) int { return len(y) - len(x) })
	hub, err := newSSEHub(o.Conn, o.Logger)
	if err != nil {
		return nil, err
	}
	s.sse = hub
	return s, nil
}

// Mount adds the MCP routes: requests to requests, the long-lived legacy
// SSE streams to streams. Both must already authenticate the gateway key (a
// wrong key is refused before any MCP traffic). principal returns the
// authenticated key of a request; abort writes an error response the way
// the rest of the API does (JSON body, status mapping).
//
//	POST|GET|DELETE /mcp            streamable HTTP, every server's tools as <server>-<tool>
//	POST|GET|DELETE /:server/mcp    streamable HTTP, one server: tools, resources (and their
//	                                subscriptions' updates on GET), prompts, completion
//	GET /sse, POST /message         legacy HTTP+SSE, aggregated
//	GET /:server/sse, POST /:server/message   legacy HTTP+SSE, one server
func (s *Server) Mount(requests, streams gin.IRoutes, principal func(*gin.Context) *auth.Principal, abort func(*gin.Context, *contracts.Error)) {
	s.principal, s.abort = principal, abort
	for _, prefix := range []string{"", "/:server"} {
		requests.POST(prefix+"/mcp", s.guard, s.postMCP)
		streams.GET(prefix+"/mcp", s.guard, s.getMCP)
		requests.DELETE(prefix+"/mcp", s.guard, s.deleteMCP)
		streams.GET(prefix+"/sse", s.guard, s.getSSE)
		requests.POST(prefix+"/message", s.guard, s.postMessage)
	}
}

// Close ends every legacy SSE stream and standalone stream this replica
// holds and stops taking messages for them. Other streamable HTTP requests
// are ordinary requests: the HTTP server's Shutdown waits for them.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.sse.close()
}

// endpoint resolves the server of a /:server/... route (nil for the
// aggregated routes), writing the error response when there is none the key
// may use.
func (s *Server) endpoint(c *gin.Context, p *auth.Principal) (*config.Server, bool) {
	name := c.Param("server")
	if name == "" {
		return nil, true
	}
	srv, ok := s.cfg.MCPServers[name]
	if !ok {
		e := contracts.NewError(contracts.CodeUnknownServer, "no server %q", name)
		for _, n := range s.cfg.ServerNames() {
			if p.AllowsServer(n) {
				e.Available = append(e.Available, n)
			}
		}
		s.abort(c, e)
		return nil, false
	}
	if !p.AllowsServer(name) {
		s.abort(c, contracts.NewError(contracts.CodeForbidden, "this key may not use server %q", name))
		return nil, false
	}
	c.Set("log.server", name)
	return srv, true
}

// exchange is one MCP request being answered: who asks, on which endpoint,
// and how to reach the client while the answer is on its way.
type exchange struct {
	s       *Server
	c       *gin.Context
	p       *auth.Principal
	only    *config.Server // the server of /:server/mcp; nil on the aggregated endpoint
	session string         // the client's Mcp-Session-Id (or legacy session), if any
	// emit sends a message related to the request to the client now; nil
	// when the transport cannot (a plain JSON response).
	emit func([]byte) bool
}

// answer is the outcome of one request: a result or a JSON-RPC error, or an
// HTTP error to answer with instead while nothing has been sent yet
// (upstream_unauthorized, so that the client sees the 401 and its
// WWW-Authenticate challenge, as MCP's authorization flow expects).
type answer struct {
	result  json.RawMessage
	err     *rpcError
	httpErr *contracts.Error
}

// token is the user's credential for srv: x-mcp-<server>-authorization if
// sent, else Authorization; none for auth: none servers. Exactly as on the
// REST API.
func (x *exchange) token(srv *config.Server) contracts.Token {
	if srv.Auth == config.AuthNone {
		return contracts.Token{}
	}
	if v := x.c.GetHeader("x-mcp-" + srv.Name + "-authorization"); v != "" {
		return contracts.NewToken(v)
	}
	return contracts.NewToken(x.c.GetHeader("Authorization"))
}

// owner is the caller as the owner of tasks (jobs): the gateway key and
// the user's Authorization, as on the REST async API, so that a task is
// the same job there.
func (x *exchange) owner() string {
	return contracts.Owner(x.p.Name, contracts.Fingerprint(x.c.GetHeader("Authorization")))
}

// timeout is a call's budget on srv: the server's default within its and
// the ingress's maximum.
func (x *exchange) timeout(srv *config.Server) time.Duration {
	return min(srv.Timeout.D(), srv.MaxTimeout.D(), x.s.cfg.Ingress.MaxTimeout.D())
}

// callID is the toolbus request id of the tools/call with JSON-RPC id id:
// derived from the caller (key, user), the endpoint, the session and the id,
// so that a notifications/cancelled for it, arriving on any replica, names
// the same id and cancels it through contracts.CancelSubject. Nothing about
// the call is kept in memory for it.
func (x *exchange) callID(id []byte) string {
	h := sha256.New()
	for _, part := range []string{"toolbus.mcp.call.v1", x.p.Name, contracts.Fingerprint(x.c.GetHeader("Authorization")), x.endpointName(), x.session, idKey(id)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "mcp" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (x *exchange) endpointName() string {
	if x.only == nil {
		return ""
	}
	return x.only.Name
}

// acquireID marks id as running on this replica. A client that reuses the
// id of a call still running (which JSON-RPC forbids) gets a random id for
// the second call, so the two are not confused; that call cannot be
// cancelled by notification.
func (s *Server) acquireID(id string) (string, func()) {
	s.inflightMu.Lock()
	if s.inflight[id] {
		id = "mcpdup" + nuid.Next()
	}
	s.inflight[id] = true
	s.inflightMu.Unlock()
	return id, func() {
		s.inflightMu.Lock()
		delete(s.inflight, id)
		s.inflightMu.Unlock()
	}
}

// requestCtx bounds the work of one request by its HTTP request.
func requestCtx(c *gin.Context) context.Context { return c.Request.Context() }

// writeStatus writes an empty response with status.
func writeStatus(c *gin.Context, status int) {
	c.Status(status)
	c.Writer.WriteHeaderNow()
}
