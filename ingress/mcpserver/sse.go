package mcpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
)

// Legacy HTTP+SSE (MCP 2024-11-05): GET /sse opens a stream whose first
// event names the endpoint to POST messages to (/message?sessionId=...);
// answers and notifications come on the stream. The stream lives on one
// replica, but the POST may reach any: the replica that receives a POST
// answers it itself (with that request's own credentials) and hands the
// messages to the stream's replica over NATS, on a subject below that
// replica's own inbox that the session id names. No credential crosses
// NATS: only the JSON-RPC messages written to the stream.

// Limits of legacy SSE sessions.
const (
	// maxSSESessions bounds the streams one replica holds.
	maxSSESessions = 10000
	// sseQueue bounds the messages waiting to be written to one stream; a
	// client that does not read is disconnected.
	sseQueue = 256
	// sseKeepAlive is the pace of SSE comments that keep idle streams open
	// through proxies.
	sseKeepAlive = 25 * time.Second
	// sseDeliverTimeout bounds handing one message to another replica.
	sseDeliverTimeout = 5 * time.Second
	// Headers of a message handed to the stream's replica.
	hdrSSEKey      = "Toolbus-Key"
	hdrSSEEndpoint = "Toolbus-Endpoint"
	hdrSSEProbe    = "Toolbus-Probe"
)

var (
	errSessionGone = errors.New("no such SSE session")
	errSessionFull = errors.New("the SSE session's client is not reading")
)

// sseHub is the legacy SSE sessions this replica holds.
type sseHub struct {
	nc     *nats.Conn
	log    zerolog.Logger
	prefix string // this replica's token in session ids and subjects
	sub    *nats.Subscription

	mu       sync.Mutex
	sessions map[string]*sseSession // by secret
	closed   bool
}

// sseSession is one open stream.
type sseSession struct {
	key      string // the gateway key that opened it
	endpoint string // "" or the server of /:server/sse
	out      chan []byte
	done     chan struct{}
	once     sync.Once
}

func (ss *sseSession) end() { ss.once.Do(func() { close(ss.done) }) }

func newSSEHub(nc *nats.Conn, log zerolog.Logger) (*sseHub, error) {
	h := &sseHub{nc: nc, log: log, prefix: nuid.Next(), sessions: make(map[string]*sseSession)}
	if nc != nil {
		sub, err := nc.Subscribe(h.subject("*"), h.onRemote)
		if err != nil {
			return nil, err
		}
		h.sub = sub
	}
	return h, nil
}

// subject is where messages for session secret of the replica prefix go:
// below the inbox namespace, like every reply the ingress receives.
func sseSubject(prefix, secret string) string {
	return nats.InboxPrefix + "toolbus-sse." + prefix + "." + secret
}

func (h *sseHub) subject(secret string) string { return sseSubject(h.prefix, secret) }

// open registers a new session.
func (h *sseHub) open(key, endpoint string) (id string, ss *sseSession, err error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	secret := hex.EncodeToString(b[:])
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return "", nil, errors.New("shutting down")
	}
	if len(h.sessions) >= maxSSESessions {
		return "", nil, errors.New("too many SSE sessions")
	}
	ss = &sseSession{key: key, endpoint: endpoint, out: make(chan []byte, sseQueue), done: make(chan struct{})}
	h.sessions[secret] = ss
	return h.prefix + "-" + secret, ss, nil
}

func (h *sseHub) remove(id string) {
	_, secret, _ := strings.Cut(id, "-")
	h.mu.Lock()
	delete(h.sessions, secret)
	h.mu.Unlock()
}

// local returns this replica's session secret, if it is one of key's on
// endpoint.
func (h *sseHub) local(secret, key, endpoint string) *sseSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	ss := h.sessions[secret]
	if ss == nil || ss.key != key || ss.endpoint != endpoint {
		return nil
	}
	return ss
}

// push queues data on ss without blocking; a full queue ends the session.
func (h *sseHub) push(ss *sseSession, data []byte) error {
	select {
	case <-ss.done:
		return errSessionGone
	default:
	}
	select {
	case ss.out <- data:
		return nil
	default:
		ss.end()
		return errSessionFull
	}
}

// deliver hands data (nil: only check the session exists) to session id of
// key on endpoint, here or on the replica that holds it.
func (h *sseHub) deliver(ctx context.Context, id, key, endpoint string, data []byte) error {
	prefix, secret, ok := strings.Cut(id, "-")
	if !ok || !validToken(prefix) || !validToken(secret) {
		return errSessionGone
	}
	if prefix == h.prefix {
		ss := h.local(secret, key, endpoint)
		if ss == nil {
			return errSessionGone
		}
		if data == nil {
			return nil
		}
		return h.push(ss, data)
	}
	if h.nc == nil {
		return errSessionGone
	}
	m := nats.NewMsg(sseSubject(prefix, secret))
	m.Header.Set(hdrSSEKey, key)
	m.Header.Set(hdrSSEEndpoint, endpoint)
	if data == nil {
		m.Header.Set(hdrSSEProbe, "1")
	}
	m.Data = data
	ctx, cancel := context.WithTimeout(ctx, sseDeliverTimeout)
	defer cancel()
	reply, err := h.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return errSessionGone
		}
		return err
	}
	if string(reply.Data) != "ok" {
		return errSessionGone
	}
	return nil
}

// onRemote receives a message another replica hands to one of our
// sessions, and says whether it was taken.
func (h *sseHub) onRemote(m *nats.Msg) {
	secret := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	answer := "gone"
	if ss := h.local(secret, m.Header.Get(hdrSSEKey), m.Header.Get(hdrSSEEndpoint)); ss != nil {
		if m.Header.Get(hdrSSEProbe) != "" || h.push(ss, m.Data) == nil {
			answer = "ok"
		}
	}
	if m.Reply != "" {
		_ = m.Respond([]byte(answer))
	}
}

// close ends every session and stops taking remote messages.
func (h *sseHub) close() {
	h.mu.Lock()
	h.closed = true
	sessions := h.sessions
	h.sessions = map[string]*sseSession{}
	h.mu.Unlock()
	for _, ss := range sessions {
		ss.end()
	}
	if h.sub != nil {
		_ = h.sub.Unsubscribe()
	}
}

// validToken reports whether s is a usable session id part.
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// getSSE serves GET /sse and /:server/sse: the stream of one session, until
// the client leaves or the server shuts down.
func (s *Server) getSSE(c *gin.Context) {
	caller, sc, ok := s.endpoint(c)
	if !ok {
		return
	}
	endpoint := sc.id
	msgPath := messagePath(c)
	id, ss, err := s.sse.open(caller.Key.Name, endpoint)
	if err != nil {
		s.abort(c, contracts.NewError(contracts.CodeOverloaded, "no SSE session available: %v", err))
		return
	}
	defer s.sse.remove(id)

	w := c.Writer
	// The stream outlives the server's write timeout, which bounds requests.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if writeEvent(w, "endpoint", []byte(msgPath+"?sessionId="+id)) != nil {
		return
	}
	w.Flush()

	keepAlive := time.NewTicker(sseKeepAlive)
	defer keepAlive.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case data := <-ss.out:
			if writeEvent(w, "message", data) != nil {
				return
			}
			w.Flush()
		case <-keepAlive.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			w.Flush()
		case <-ss.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// messagePath is where the client of the stream GET c opened posts its
// messages: /message beside /sse and /<sel>/sse, /sse/messages below
// /mcp/sse and /mcp/<sel>/sse (LiteLLM's path), the selection as the
// client wrote it.
func messagePath(c *gin.Context) string {
	sel := ""
	if v := c.Param("sel"); v != "" {
		sel = "/" + url.PathEscape(v)
	}
	if strings.HasPrefix(c.FullPath(), "/mcp/") {
		return "/mcp" + sel + "/sse/messages"
	}
	return sel + "/message"
}

// postMessage serves POST /message?sessionId= (and /:server/message): one
// client message of a legacy SSE session. A request is answered on the
// session's stream (its notifications first); the POST itself answers 202
// once the answer is on its way, or an HTTP error: 404 for an unknown
// session, 401 with the upstream's challenge when the upstream refused the
// user's credential.
func (s *Server) postMessage(c *gin.Context) {
	caller, sc, ok := s.endpoint(c)
	if !ok {
		return
	}
	endpoint := sc.id
	id := c.Query("sessionId")
	ctx := c.Request.Context()
	if err := s.sse.deliver(ctx, id, caller.Key.Name, endpoint, nil); err != nil {
		s.abort(c, contracts.NewError(contracts.CodeNotFound, "no SSE session %q", clip(id)))
		return
	}
	msg, ok := s.readMessage(c)
	if !ok {
		return
	}
	x := &exchange{s: s, c: c, caller: caller, only: sc.only, within: sc.within, session: id}
	logMethod(c, msg)
	if x.nonRequest(msg) {
		return
	}
	send := func(data []byte) bool {
		// The notifications' own bound: they must not outlive the request.
		return s.sse.deliver(ctx, id, caller.Key.Name, endpoint, data) == nil
	}
	x.emit = send
	ans := x.request(msg)
	if ans.httpErr != nil {
		send(encodeResponse(msg.ID, nil, ans.err))
		s.abort(c, ans.httpErr)
		return
	}
	// The answer must reach the stream even if this POST's client left.
	deliverCtx := context.WithoutCancel(ctx)
	if err := s.sse.deliver(deliverCtx, id, caller.Key.Name, endpoint, encodeResponse(msg.ID, ans.result, ans.err)); err != nil {
		s.abort(c, contracts.NewError(contracts.CodeNotFound, "the SSE session %q ended", clip(id)))
		return
	}
	writeStatus(c, http.StatusAccepted)
}
