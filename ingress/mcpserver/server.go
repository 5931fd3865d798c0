package mcpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/frontdoor"
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
	Config *config.File
	// Policy decides every request's server, tool, budget and credential
	// (package frontdoor), as on the REST API.
	Policy     *frontdoor.Policy
	Dispatcher *dispatch.Dispatcher
	// Jobs backs MCP Tasks; nil refuses task-augmented calls.
	Jobs *jobs.Store
	// Conn carries legacy SSE messages between replicas; nil keeps them on
	// the replica that holds the stream.
	Conn   *nats.Conn
	Logger zerolog.Logger
	// Version is reported as serverInfo.version; empty means "dev".
	Version string
	// Challenge, if set, is the WWW-Authenticate challenge of
	// /<server>/mcp for srv (invalid: the upstream refused the credential),
	// or "" (package oauthproxy): a request with no credential for such a
	// server is answered 401 with it, and an upstream's 401 carries it
	// instead of the upstream's own.
	Challenge func(c *gin.Context, srv *config.Server, invalid bool) string
}

// Server is the MCP endpoint. Mount it on the HTTP API's authenticated
// routes; Close it on shutdown, before the HTTP server's Shutdown, so that
// legacy SSE streams end. Safe for concurrent use.
type Server struct {
	cfg     *config.File
	policy  *frontdoor.Policy
	d       *dispatch.Dispatcher
	jobs    *jobs.Store
	log     zerolog.Logger
	version string

	abort     func(*gin.Context, *contracts.Error)
	challenge func(c *gin.Context, srv *config.Server, invalid bool) string

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
	if o.Config == nil || o.Policy == nil || o.Dispatcher == nil {
		return nil, errors.New("mcpserver: Config, Policy and Dispatcher are required")
	}
	s := &Server{
		cfg: o.Config, policy: o.Policy, d: o.Dispatcher, jobs: o.Jobs, log: o.Logger,
		version: o.Version, inflight: make(map[string]bool), done: make(chan struct{}),
		challenge: o.Challenge,
	}
	if s.version == "" {
		s.version = "dev"
	}
	hub, err := newSSEHub(o.Conn, o.Logger)
	if err != nil {
		return nil, err
	}
	s.sse = hub
	return s, nil
}

// Mount adds the MCP routes: requests to requests, the long-lived legacy
// SSE streams to streams. Both must already authenticate the gateway key (a
// wrong key is refused before any MCP traffic) and record the caller in
// the request's frontdoor.Request; abort writes an error response the way
// the rest of the API does (JSON body, status mapping).
//
// <sel> is LiteLLM's server selection (frontdoor.Selection): a server's
// name, alias or LiteLLM server id, an access group, or a comma list of
// them. Without one in the path, the x-mcp-servers and x-mcp-access-groups
// headers select; without those, every server the key may use.
//
//	POST|GET|DELETE /mcp                   streamable HTTP, tools of the selected servers as <prefix>-<tool>
//	POST|GET|DELETE /mcp/<sel>, /<sel>/mcp streamable HTTP, the selected servers; one server (not a
//	                                       group) is its own endpoint: tools, resources (and their
//	                                       subscriptions' updates on GET), prompts, completion
//	GET /sse, POST /message                legacy HTTP+SSE (also GET /mcp/sse, POST /mcp/sse/messages,
//	                                       LiteLLM's paths)
//	GET /<sel>/sse, POST /<sel>/message    legacy HTTP+SSE, the selected servers (also
//	                                       GET /mcp/<sel>/sse, POST /mcp/<sel>/sse/messages)
func (s *Server) Mount(requests, streams gin.IRoutes, abort func(*gin.Context, *contracts.Error)) {
	s.abort = abort
	for _, path := range []string{"/mcp", "/:sel/mcp", "/mcp/:sel"} {
		requests.POST(path, s.guard, s.postMCP)
		streams.GET(path, s.guard, s.getMCP)
		requests.DELETE(path, s.guard, s.deleteMCP)
	}
	for _, prefix := range []string{"", "/:sel"} {
		streams.GET(prefix+"/sse", s.guard, s.getSSE)
		requests.POST(prefix+"/message", s.guard, s.postMessage)
		streams.GET("/mcp"+prefix+"/sse", s.guard, s.getSSE)
		requests.POST("/mcp"+prefix+"/sse/messages", s.guard, s.postMessage)
	}
}

// Close ends every legacy SSE stream and standalone stream this replica
// holds and stops taking messages for them. Other streamable HTTP requests
// are ordinary requests: the HTTP server's Shutdown waits for them.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.sse.close()
}

// scope is the servers an MCP request reaches, as its path and headers
// select them (frontdoor.Policy.Servers).
type scope struct {
	// only is the one server a path names (not an access group): the
	// server's own endpoint. nil otherwise.
	only *config.Server
	// within are the servers of any other selection; nil: every server the
	// key may use.
	within []*config.Server
	// id names the scope in SSE sessions and call ids: "" for every
	// server, else the selected servers' names.
	id string
}

// endpoint resolves the servers of the request's selection through the
// front-door policy, writing the error response when it names none the key
// may use. It returns the request's caller too.
func (s *Server) endpoint(c *gin.Context) (*frontdoor.Caller, scope, bool) {
	r := frontdoor.Of(c)
	sel := frontdoor.SelectionOf(c.Param("sel"), c.Request.Header)
	if sel.IsZero() {
		return r.Caller, scope{}, true
	}
	servers, err := s.policy.Servers(r.Caller, sel)
	if err != nil {
		s.abort(c, err)
		return nil, scope{}, false
	}
	names := make([]string, len(servers))
	for i, srv := range servers {
		names[i] = srv.Name
	}
	sc := scope{id: strings.Join(names, ",")}
	if name, single := s.policy.Single(sel); single {
		sc.only = s.cfg.MCPServers[name]
	} else {
		sc.within = servers
	}
	r.Server = sc.id
	if srv := sc.only; srv != nil {
		if ch := s.challengeFor(c, srv, false); ch != "" && r.Caller.Credential(srv, frontdoor.Targeted).IsZero() {
			e := contracts.NewError(contracts.CodeUpstreamUnauthorized, "%s needs the user's OAuth token: authorize as the WWW-Authenticate challenge says", srv.Name)
			e.WWWAuthenticate = ch
			s.abort(c, e)
			return nil, scope{}, false
		}
	}
	return r.Caller, sc, true
}

// challengeFor is Options.Challenge's answer, "" without one.
func (s *Server) challengeFor(c *gin.Context, srv *config.Server, invalid bool) string {
	if s.challenge == nil {
		return ""
	}
	return s.challenge(c, srv, invalid)
}

// exchange is one MCP request being answered: who asks, on which endpoint,
// and how to reach the client while the answer is on its way.
type exchange struct {
	s       *Server
	c       *gin.Context
	caller  *frontdoor.Caller
	only    *config.Server   // the server of /<server>/mcp; nil on the aggregated endpoint
	within  []*config.Server // a selection's servers on the aggregated endpoint; nil: all the key may use
	session string           // the client's Mcp-Session-Id (or legacy session), if any
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

// token is the caller's credential for srv (frontdoor.Credential).
// Calls and relays name their server (frontdoor.Targeted).
func (x *exchange) token(srv *config.Server) contracts.Token {
	return x.caller.Credential(srv, frontdoor.Targeted)
}

// owner is the caller as the owner of tasks (jobs), as on the REST async
// API, so that a task is the same job there.
func (x *exchange) owner() string { return x.caller.Owner() }

// record is the request's front-door record (its log fields).
func (x *exchange) record() *frontdoor.Request { return frontdoor.Of(x.c) }

// callID is the toolbus request id of the tools/call with JSON-RPC id id:
// derived from the caller (its owner: key and user), the endpoint, the session and the id,
// so that a notifications/cancelled for it, arriving on any replica, names
// the same id and cancels it through contracts.CancelSubject. Nothing about
// the call is kept in memory for it.
func (x *exchange) callID(id []byte) string {
	return callIDOf(x.owner(), x.scopeID(), x.session, id)
}

// callIDOf is callID: SHA-256 over the parts, each followed by a zero
// byte, hashed from one stack buffer (a heap one for long parts).
func callIDOf(owner, scope, session string, id []byte) string {
	var buf [256]byte
	data := buf[:0]
	for _, part := range [...]string{"toolbus.mcp.call.v1", owner, scope, session} {
		data = append(append(data, part...), 0)
	}
	data = append(appendIDKey(data, id), 0)
	sum := sha256.Sum256(data)
	var out [3 + 32]byte
	copy(out[:], "mcp")
	hex.Encode(out[3:], sum[:16])
	return string(out[:])
}

func (x *exchange) endpointName() string {
	if x.only == nil {
		return ""
	}
	return x.only.Name
}

// scopeID names the exchange's servers (scope.id).
func (x *exchange) scopeID() string {
	switch {
	case x.only != nil:
		return x.only.Name
	case x.within != nil:
		names := make([]string, len(x.within))
		for i, srv := range x.within {
			names[i] = srv.Name
		}
		return strings.Join(names, ",")
	}
	return ""
}

// reaches reports whether server is one of the exchange's servers (the
// key's permission is checked apart).
func (x *exchange) reaches(server string) bool {
	switch {
	case x.only != nil:
		return x.only.Name == server
	case x.within != nil:
		return slices.ContainsFunc(x.within, func(s *config.Server) bool { return s.Name == server })
	}
	return true
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
