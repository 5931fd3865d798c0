package upstream

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Defaults of Options.
const (
	DefaultClientName    = "toolbus"
	DefaultClientVersion = "dev"
	// sseResponseTimeout disables mcp-go's own 60 s bound on an SSE
	// response: every call has a deadline of its own, which may be longer.
	sseResponseTimeout = 24 * time.Hour
	// sseEndpointTimeout bounds the wait for an SSE server's endpoint event.
	sseEndpointTimeout = 30 * time.Second
	// maxConnectAttempts bounds how often a caller waiting on another
	// caller's connection retries after that caller gave up.
	maxConnectAttempts = 3
)

// Options configures a Pool. The zero value is usable.
type Options struct {
	// MaxClients bounds the pooled clients per server; 0 means
	// config.DefaultMaxClients. When every client of a server is busy, a
	// call that needs a new one fails with overloaded.
	MaxClients int
	// MaxStdioProcesses bounds the clients (processes) of each stdio
	// server, within MaxClients; 0 means config.DefaultMaxStdioProcesses.
	MaxStdioProcesses int
	// IdleTTL closes clients unused for this long; 0 means
	// config.DefaultClientIdleTTL.
	IdleTTL time.Duration
	// ReapInterval is how often idle clients are looked for; 0 means
	// IdleTTL/4, between 10 ms and 30 s.
	ReapInterval time.Duration
	// Transport carries every HTTP and SSE request; nil means
	// NewHTTPTransport(0). It is shared by all clients of the Pool.
	Transport http.RoundTripper
	// BaseEnv is the environment stdio servers start with, before their
	// configured env and credential; nil means InheritedEnv(os.Environ()).
	BaseEnv []string
	// ProtocolVersion pins the MCP protocol version of servers whose
	// protocol_version is empty; empty here too means mcp-go's default
	// (the stateless 2026-07-28 revision, falling back to 2025-11-25
	// sessions), as does config.ProtocolLatest.
	ProtocolVersion string
	// Notify receives the upstream's notifications/resources/updated params
	// for each subscriber of the resource (see Subscribe). It runs on the
	// transport's reader and must return quickly; nil drops them.
	Notify func(server, subscriber string, params json.RawMessage)
	// TokenTimeout bounds one request to an OAuth2 token endpoint (servers
	// with oauth2_flow client_credentials or oauth2_token_exchange) or to
	// AWS STS (aws_sigv4 with aws_role_name); 0 means DefaultTokenTimeout.
	TokenTimeout time.Duration
	// Now is the clock of token expiry and SigV4 signatures; nil means
	// time.Now.
	Now func() time.Time
	// ClientName and ClientVersion identify toolbus to MCP servers.
	ClientName, ClientVersion string
	// Logger receives pool events and mcp-go's own logs.
	Logger zerolog.Logger
}

// Stats counts what a Pool did, for metrics and tests.
type Stats struct {
	Clients         int    // clients pooled now, connecting ones included
	Connects        uint64 // clients started and initialized
	ConnectFailures uint64
	Evictions       uint64 // clients closed for being idle or to make room
	// Handshakes counts the clients that made an initialize handshake (or
	// server/discover) of their own; the other clients took theirs from
	// another client of the server (see stateless and discovered).
	Handshakes uint64
}

// Pool holds mcp-go clients, one per (server, user credential): a session
// created with one user's credential is never used for another user.
// Clients are created on first use, bounded per server, closed when idle,
// and replaced when the upstream ends their session. Safe for concurrent use.
type Pool struct {
	opts       Options
	log        zerolog.Logger
	slog       *slog.Logger
	httpClient *http.Client
	baseEnv    []string

	// ctx is the lifetime of every client (SSE streams, stdio processes):
	// never a request's context.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	servers map[string]*serverClients
	closed  bool
	closing sync.WaitGroup // client closes started before Close

	stopReaper chan struct{}
	reaperDone chan struct{}

	connects, connectFailures, evictions, handshakes atomic.Uint64

	subsMu sync.Mutex
	subs   map[subKey]*entry // resource subscriptions (subscribe.go)

	// svc holds the HTTP clients of servers with their own credential
	// (credentials.go); background counts their token requests.
	svc        serviceClients
	background backgroundWork
}

// serverClients is one server's clients, most recently used first.
type serverClients struct {
	entries map[clientKey]*entry
	lru     *list.List // of *entry
	// stateless is what the server's last initialize handshake showed, when
	// it answered without an Mcp-Session-Id; zero when it has sessions or
	// is not known. Guarded by Pool.mu.
	stateless stateless
	// refused is the configuration of the server under which it refused a
	// request made without a handshake (400, 404): its clients make one
	// from then on.
	refused *config.Server
	// discovered is the server's last server/discover result (discover.go).
	discovered discovered
}

// stateless describes a streamable HTTP server srv that answered an
// initialize with protocol version and no session ID: it keeps no session,
// so each request stands alone and a handshake of one credential's client
// tells the server nothing another's could not. A new client of it (that
// declares no client capabilities) starts ready on that version, without an
// initialize and notifications/initialized of its own: a new user's first
// call is one request, as any other. It is never shared: each client still
// sends only its own credential set.
type stateless struct {
	srv     *config.Server // the configuration it was learned with
	version string
}

// statelessFor returns sc's stateless record when a new client of srv with
// caps may skip its handshake; the zero value when not.
func (sc *serverClients) statelessFor(srv *config.Server, caps ClientCaps) stateless {
	if caps != 0 || srv.Transport != config.TransportHTTP || sc.stateless.srv != srv || sc.refused == srv ||
		sc.stateless.version == "" || mcp.IsModernProtocol(sc.stateless.version) {
		return stateless{}
	}
	return sc.stateless
}

// clientKey names a client: the server and the SHA-256 of the credential it
// sends (zero when it sends none). The full hash, not the short log
// fingerprint, so that two credentials never share a client.
type clientKey struct {
	server string
	cred   [sha256.Size]byte
	// caps are the client capabilities the client declares: a call made by
	// an MCP client that answers sampling or elicitation requests uses a
	// client that declares them, every other call one that does not, so an
	// upstream never asks a caller that cannot answer.
	caps ClientCaps
}

// entry is one pooled client.
type entry struct {
	key clientKey
	fp  string // credential fingerprint, for logs

	done chan struct{} // closed when connecting has ended
	c    *client.Client
	// progress routes the client's progress notifications to its calls.
	progress progressRoutes
	// clientReqs routes the upstream's sampling and elicitation requests to
	// its calls.
	clientReqs clientRoutes
	// subs are the resource subscriptions made on the client.
	subs entrySubs
	err  error // connect failure; set before done is closed
	// limit bounds the answers read on the client's long-lived streams
	// (an SSE transport's stream, a standalone GET stream); a call's own
	// answer has a limit of its own (do).
	limit *resultLimit

	// skipped is the stateless record the client started on without a
	// handshake of its own (zero when it made one); protocol is the
	// revision it speaks.
	skipped  stateless
	protocol string
	// answered is set once a client that took its handshake from another
	// (borrowed) has had a call answered: the server took it that way.
	answered atomic.Bool
	// discoverReused is set when the client's server/discover was answered
	// from another client's (discover.go); written and read on the
	// connecting goroutine.
	discoverReused bool

	// Guarded by Pool.mu.
	refs     int
	lastUsed time.Time
	elem     *list.Element // nil once out of the pool
	closed   bool
}

// clientRequestsProtocol is the protocol version of the clients that relay
// sampling and elicitation requests (see newClient).
const clientRequestsProtocol = "2025-11-25"

// New returns a Pool. Close it to stop its reaper and every client.
func New(opts Options) *Pool {
	if opts.MaxClients <= 0 {
		opts.MaxClients = config.DefaultMaxClients
	}
	if opts.MaxStdioProcesses <= 0 {
		opts.MaxStdioProcesses = config.DefaultMaxStdioProcesses
	}
	if opts.IdleTTL <= 0 {
		opts.IdleTTL = config.DefaultClientIdleTTL
	}
	if opts.ReapInterval <= 0 {
		opts.ReapInterval = min(max(opts.IdleTTL/4, 10*time.Millisecond), 30*time.Second)
	}
	if opts.Transport == nil {
		opts.Transport = NewHTTPTransport(0)
	}
	if opts.BaseEnv == nil {
		opts.BaseEnv = processEnv()
	}
	if opts.TokenTimeout <= 0 {
		opts.TokenTimeout = DefaultTokenTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClientName == "" {
		opts.ClientName = DefaultClientName
	}
	if opts.ClientVersion == "" {
		opts.ClientVersion = DefaultClientVersion
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		opts:       opts,
		log:        opts.Logger,
		slog:       slog.New(classHandler{next: zerolog.NewSlogHandler(opts.Logger.With().Str("lib", "mcp-go").Logger())}), // liblog.go
		httpClient: &http.Client{Transport: challengeRecorder{base: opts.Transport}},
		baseEnv:    opts.BaseEnv,
		ctx:        ctx,
		cancel:     cancel,
		servers:    make(map[string]*serverClients),
		subs:       make(map[subKey]*entry),
		stopReaper: make(chan struct{}),
		reaperDone: make(chan struct{}),
	}
	go p.reap()
	return p
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	n := 0
	for _, sc := range p.servers {
		n += len(sc.entries)
	}
	p.mu.Unlock()
	return Stats{
		Clients:         n,
		Connects:        p.connects.Load(),
		ConnectFailures: p.connectFailures.Load(),
		Evictions:       p.evictions.Load(),
		Handshakes:      p.handshakes.Load(),
	}
}

// credential is what a call to srv sends upstream of the caller's set
// token - the worker's own check of the audience rule the ingress applied
// (frontdoor.Credential): nothing for a server with auth none; never an
// Authorization for a server with a service credential of its own (or a
// stdio server without auth_env), even when one reached the worker; never
// a header the server's own credential or static_headers set; for a stdio
// server, only Authorization and the headers its env's placeholders name.
func credential(srv *config.Server, token contracts.Token) contracts.Token {
	if srv.Auth == config.AuthNone || srv.AuthType == config.AuthTypeNone || token.IsZero() {
		return contracts.Token{}
	}
	drop := srv.ReservedHeaders()
	stdio := srv.Transport == config.TransportStdio
	if !srv.ReceivesCaller() || (stdio && srv.AuthEnv == "") {
		drop = append(drop, contracts.HeaderAuthorization)
	}
	if stdio {
		placeholders := srv.HeaderPlaceholders()
		for _, name := range token.Names() {
			if name != contracts.HeaderAuthorization && !slices.Contains(placeholders, name) {
				drop = append(drop, name)
			}
		}
	}
	if !slices.ContainsFunc(drop, token.Has) {
		return token // nothing to drop: Without would copy the set
	}
	return token.Without(drop...)
}

// keyOf is the pool key of a client of server for the credential set cred:
// the SHA-256 of the whole set, so two sets that differ in any header never
// share a client (or a stdio process); the empty set is a key of its own.
func keyOf(server string, cred contracts.Token, caps ClientCaps) clientKey {
	k := clientKey{server: server, caps: caps}
	if !cred.IsZero() {
		k.cred = cred.Sum()
	}
	return k
}

var (
	errPoolClosed = contracts.NewError(contracts.CodeOverloaded, "the worker is shutting down")
)

// acquire returns a connected client for (srv, cred), creating it if needed.
// Concurrent first uses of one key create one client. The caller must
// release the entry.
// clientLimit is how many clients srv may have at once, and the setting
// that says so.
func (p *Pool) clientLimit(srv *config.Server) (int, string) {
	if srv.Transport == config.TransportStdio && p.opts.MaxStdioProcesses < p.opts.MaxClients {
		return p.opts.MaxStdioProcesses, "max_stdio_processes"
	}
	return p.opts.MaxClients, "max_clients"
}

func (p *Pool) acquire(ctx context.Context, srv *config.Server, cred contracts.Token, caps ClientCaps) (*entry, error) {
	k := keyOf(srv.Name, cred, caps)
	for attempt := 1; ; attempt++ {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, &Error{Wire: errPoolClosed, Detail: "pool closed"}
		}
		sc := p.servers[srv.Name]
		if sc == nil {
			sc = &serverClients{entries: make(map[clientKey]*entry), lru: list.New()}
			p.servers[srv.Name] = sc
		}
		e := sc.entries[k]
		if e == nil {
			if limit, what := p.clientLimit(srv); len(sc.entries) >= limit && !p.evictOneLocked(sc) {
				p.mu.Unlock()
				return nil, &Error{
					Wire:   contracts.NewError(contracts.CodeOverloaded, "every upstream client of server %q is busy", srv.Name),
					Detail: fmt.Sprintf("%s %d reached", what, limit),
				}
			}
			e = &entry{key: k, fp: cred.Fingerprint(), done: make(chan struct{}), refs: 1, limit: newResultLimit(srv.MaxResultBytes)}
			e.skipped = sc.statelessFor(srv, caps)
			e.elem = sc.lru.PushFront(e)
			sc.entries[k] = e
			p.mu.Unlock()
			p.connect(ctx, srv, cred, e)
			if e.err != nil {
				p.release(e)
				return nil, e.err
			}
			return e, nil
		}
		e.refs++
		sc.lru.MoveToFront(e.elem)
		p.mu.Unlock()

		select {
		case <-e.done:
		case <-ctx.Done():
			p.release(e)
			return nil, newError(ctx.Err(), "")
		}
		if e.err == nil {
			return e, nil
		}
		p.release(e)
		// The caller that was connecting gave up on its own context; ours
		// may still have time to connect.
		var ue *Error
		if attempt < maxConnectAttempts && ctx.Err() == nil && errors.As(e.err, &ue) &&
			(ue.Wire.Code == contracts.CodeTimeout || ue.Wire.Code == contracts.CodeUpstreamTimeout) {
			continue
		}
		return nil, e.err
	}
}

// release gives back an entry from acquire, closing it if it left the pool
// while in use.
func (p *Pool) release(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.refs--
	e.lastUsed = time.Now()
	if e.refs == 0 && e.elem == nil {
		p.closeLocked(e)
	}
}

// discard takes e out of the pool, so that the next call creates a new
// client; e is closed once its last user releases it.
func (p *Pool) discard(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeLocked(e)
	if e.refs == 0 {
		p.closeLocked(e)
	}
}

func (p *Pool) removeLocked(e *entry) {
	if e.elem == nil {
		return
	}
	if sc := p.servers[e.key.server]; sc != nil {
		sc.lru.Remove(e.elem)
		if sc.entries[e.key] == e {
			delete(sc.entries, e.key)
		}
	}
	e.elem = nil
}

// evictOneLocked closes the least recently used idle client of sc.
func (p *Pool) evictOneLocked(sc *serverClients) bool {
	for el := sc.lru.Back(); el != nil; el = el.Prev() {
		e := el.Value.(*entry)
		if e.refs == 0 {
			p.removeLocked(e)
			p.closeLocked(e)
			p.evictions.Add(1)
			return true
		}
	}
	return false
}

// closeLocked closes e's client, once.
func (p *Pool) closeLocked(e *entry) {
	if e.closed {
		return
	}
	e.closed = true
	if e.c != nil {
		p.closeClientLocked(e.c, e.key.server, e.fp)
	}
}

// closeClientLocked closes c off the caller's path (a stdio server may take
// seconds to exit, a session's DELETE a round trip). Close waits for the
// closes started before it; later ones (of clients that finished connecting
// after Close) run on their own.
func (p *Pool) closeClientLocked(c *client.Client, server, fp string) {
	if p.closed {
		go p.closeClient(c, server, fp)
		return
	}
	p.closing.Add(1)
	go func() {
		defer p.closing.Done()
		p.closeClient(c, server, fp)
	}()
}

func (p *Pool) closeClient(c *client.Client, server, fp string) {
	if err := c.Close(); err != nil {
		p.log.Debug().Str("server", server).Str("token_fp", fp).Str("error", err.Error()).Msg("closing upstream client")
	}
}

// reap closes idle clients until Close.
func (p *Pool) reap() {
	defer close(p.reaperDone)
	t := time.NewTicker(p.opts.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stopReaper:
			return
		case now := <-t.C:
			p.reapIdle(now)
		}
	}
}

func (p *Pool) reapIdle(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sc := range p.servers {
		for el := sc.lru.Back(); el != nil; {
			prev := el.Prev()
			if e := el.Value.(*entry); e.refs == 0 && now.Sub(e.lastUsed) >= p.opts.IdleTTL {
				p.removeLocked(e)
				p.closeLocked(e)
				p.evictions.Add(1)
			}
			el = prev
		}
	}
}

// Close closes every client (stdio servers are stopped, killed if they do
// not exit) and stops the reaper. Calls still running fail. It is safe to
// call more than once.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	var all []*entry
	for _, sc := range p.servers {
		for _, e := range sc.entries {
			all = append(all, e)
		}
	}
	for _, e := range all {
		p.removeLocked(e)
		p.closeLocked(e) // in use or not: running calls fail
	}
	p.closed = true
	p.mu.Unlock()

	close(p.stopReaper)
	<-p.reaperDone
	p.closing.Wait()
	p.cancel() // kills stdio servers that did not exit; ends token requests
	p.background.close()
	p.httpClient.CloseIdleConnections()
	return nil
}

// connect starts and initializes e's client, recording the outcome in e.
// Starting uses the pool's context (an SSE stream and a stdio process live
// as long as their context) and is abandoned when ctx ends first;
// initializing is bounded by ctx. A client of a stateless server (see
// stateless) makes no handshake.
func (p *Pool) connect(ctx context.Context, srv *config.Server, cred contracts.Token, e *entry) {
	ch := &challenge{}
	c, err := p.newClient(srv, cred, e)
	if err == nil {
		err = p.start(ctx, srv, c, ch, e.limit)
	}
	session := ""
	switch {
	case err != nil:
	case e.skipped.version != "":
		// The transport sends the revision in Mcp-Protocol-Version; the
		// client was built ready (newClient).
		c.GetTransport().(transport.HTTPConnection).SetProtocolVersion(e.skipped.version)
		e.protocol = e.skipped.version
	default:
		req := mcp.InitializeRequest{}
		req.Params.ClientInfo = mcp.Implementation{Name: p.opts.ClientName, Version: p.opts.ClientVersion}
		_, err = c.Initialize(withScope(ctx, &scope{ch: ch, lim: e.limit}), req)
		e.protocol = c.ProtocolVersion()
		session = c.GetSessionId()
		if !e.discoverReused {
			p.handshakes.Add(1)
		}
	}
	if err != nil && e.limit.exceeded() {
		err = errResultTooLarge
	}
	if err == nil {
		p.mu.Lock()
		if e.elem == nil {
			// Close ran, or the SSE stream broke, while connecting.
			err = errors.New("client left the pool while connecting")
			if p.closed {
				err = errPoolClosed
			}
		} else {
			e.c = c
			if srv.Transport == config.TransportHTTP && e.skipped.version == "" {
				p.learnLocked(srv, e.protocol, session)
			}
		}
		p.mu.Unlock()
	}
	if err == nil {
		p.connects.Add(1)
		p.log.Debug().Str("server", srv.Name).Str("token_fp", e.fp).Str("protocol", e.protocol).Bool("handshake", e.skipped.version == "").Msg("upstream client connected")
	} else {
		p.connectFailures.Add(1)
		e.err = p.upstreamError(srv, withContextErr(ctx, p.exchangeRefusal(srv, cred, p.serviceRefusal(srv, err))), ch.get())
		p.mu.Lock()
		p.removeLocked(e)
		e.closed = true
		if c != nil {
			p.closeClientLocked(c, srv.Name, e.fp)
		}
		p.mu.Unlock()
	}
	close(e.done)
}

// learnLocked records what a streamable HTTP client's handshake with srv
// showed: a server that answered protocol without a session ID is
// stateless, one that gave a session ID is not.
func (p *Pool) learnLocked(srv *config.Server, protocol, session string) {
	sc := p.servers[srv.Name]
	if sc == nil {
		return
	}
	if session == "" && protocol != "" && !mcp.IsModernProtocol(protocol) {
		sc.stateless = stateless{srv: srv, version: protocol}
	} else {
		sc.stateless = stateless{}
	}
}

// borrowed reports whether e's client took its handshake from another's:
// it skipped it (stateless) or reused a server/discover result
// (discover.go).
func (e *entry) borrowed() bool { return e.skipped.version != "" || e.discoverReused }

// forgetBorrowed stops new clients of srv from taking their handshake from
// another's because e, which did, failed: the next one makes its own and
// learns again - unless the server refused e's request (refused), after
// which none takes it from another any more.
func (p *Pool) forgetBorrowed(srv *config.Server, e *entry, refused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sc := p.servers[srv.Name]
	if sc == nil {
		return
	}
	if e.skipped.version != "" && sc.stateless == e.skipped {
		sc.stateless = stateless{}
	}
	if e.discoverReused && sc.discovered.srv == srv {
		sc.discovered = discovered{}
	}
	if refused {
		sc.refused = srv
	}
}

// start runs c.Start on the pool's context, giving up (and closing c) when
// ctx ends first. A streamable HTTP transport's Start returns at once (it
// starts a standalone stream's listener, when it has one, on its own).
func (p *Pool) start(ctx context.Context, srv *config.Server, c *client.Client, ch *challenge, lim *resultLimit) error {
	if srv.Transport == config.TransportHTTP {
		return c.Start(withScope(p.ctx, &scope{ch: ch, lim: lim}))
	}
	started := make(chan error, 1)
	go func() { started <- c.Start(withScope(p.ctx, &scope{ch: ch, lim: lim})) }()
	select {
	case err := <-started:
		return err
	case <-ctx.Done():
		_ = c.Close()
		<-started // Close ends a pending SSE handshake at once
		return ctx.Err()
	}
}

// newClient builds the mcp-go client of one pool entry. The credential set
// goes into HTTP headers (HTTP, SSE: each header of the set, Authorization
// included) or the environment (stdio: Authorization in auth_env, the
// others where ${Header-Name} names them) and nowhere else; no other
// header of the inbound request is ever sent. A server's own credential
// and static headers are added by its HTTP client (httpClientFor).
func (p *Pool) newClient(srv *config.Server, cred contracts.Token, e *entry) (*client.Client, error) {
	var headers map[string]string
	if !cred.IsZero() && srv.Transport != config.TransportStdio {
		headers = map[string]string{}
		for name, v := range cred.Reveal() {
			headers[http.CanonicalHeaderKey(name)] = v
		}
	}
	var tr transport.Interface
	switch srv.Transport {
	case config.TransportHTTP:
		topts := []transport.StreamableHTTPCOption{
			transport.WithHTTPBasicClient(p.httpClientFor(srv).http),
			transport.WithHTTPHeaders(headers),
			transport.WithHTTPLogger(p.slog),
		}
		if e.key.caps&(CapSampling|capListen) != 0 {
			// mcp-go servers send sampling requests only on the standalone
			// GET stream, not on the call's own response stream; resource
			// updates come there too.
			topts = append(topts, transport.WithContinuousListening())
		}
		t, err := transport.NewStreamableHTTP(srv.URL, topts...)
		if err != nil {
			return nil, err
		}
		tr = t
		if e.key.caps == 0 && e.skipped.version == "" {
			tr = &discoveringHTTP{StreamableHTTP: t, p: p, srv: srv, e: e}
		}
	case config.TransportSSE:
		t, err := transport.NewSSE(srv.URL,
			transport.WithHTTPClient(p.httpClientFor(srv).http),
			transport.WithHeaders(headers),
			transport.WithSSELogger(p.slog),
			transport.WithEndpointTimeout(sseEndpointTimeout),
			transport.WithResponseTimeout(sseResponseTimeout),
		)
		if err != nil {
			return nil, err
		}
		tr = &cancellingSSE{SSE: t}
	case config.TransportStdio:
		log := p.log.With().Str("server", srv.Name).Str("token_fp", e.fp).Logger()
		// A process that exited, or whose output was given up, leaves the
		// pool at once; calls still reading its last answers finish first.
		tr = newStdioTransport(srv.Command, srv.Args, stdioEnv(p.baseEnv, srv, cred), srv.MaxResultBytes,
			newStderrLog(log, cred), log, p.slog, func() { p.discard(e) })
	default:
		return nil, fmt.Errorf("server %q: unknown transport %q", srv.Name, srv.Transport)
	}
	var copts []client.ClientOption
	handler := clientHandler{routes: &e.clientReqs}
	if e.key.caps&CapSampling != 0 {
		copts = append(copts, client.WithSamplingHandler(handler))
	}
	if e.key.caps&CapElicitation != 0 {
		copts = append(copts, client.WithElicitationHandler(handler))
	}
	if e.skipped.version != "" {
		copts = append(copts, client.WithSession()) // no handshake: see stateless
	}
	version := p.opts.ProtocolVersion
	if srv.ProtocolVersion != "" {
		version = srv.ProtocolVersion
	}
	switch {
	case version == config.ProtocolLatest:
		// mcp-go negotiates its newest revision; a handler's input
		// requests reach the call's client requests within the call.
	case version != "":
		copts = append(copts, client.WithProtocolVersion(version))
	case e.key.caps != 0:
		// The 2026-07-28 revision replaced requests from the server during
		// a call by input_required results, and mcp-go servers refuse the
		// old kind to a 2026 client. A 2025-11-25 client gets both: mcp-go
		// turns a handler's input requests into requests to the client.
		copts = append(copts, client.WithProtocolVersion(clientRequestsProtocol))
	}
	c := client.NewClient(tr, copts...)
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationResourceUpdated) {
			p.notifyResource(e, n)
			return
		}
		e.progress.dispatch(n)
	})
	// An SSE client whose stream broke can never answer again: take it out
	// of the pool and fail its waiting calls now rather than at their
	// deadlines.
	c.OnConnectionLost(func(error) {
		p.mu.Lock()
		p.removeLocked(e)
		p.closeLocked(e)
		p.mu.Unlock()
	})
	return c, nil
}
