package mcpserver

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
)

// Resource subscriptions on /<server>/mcp. resources/subscribe is relayed
// to a worker (contracts.RPCMethods), whose client of the upstream
// subscribes and keeps the subscription; resources/unsubscribe is announced
// to every worker of the server (the one holding it ends it). The
// upstream's notifications/resources/updated reach the caller on its
// standalone stream, GET /<server>/mcp, which any replica serves: it
// subscribes to the caller's notification subject (its gateway key and
// credential, contracts.Subscriber), so nothing about a subscription is
// kept in an ingress. A caller with no stream open misses the updates sent
// meanwhile (MCP makes no promise to replay them).

// maxListens bounds the standalone streams one replica holds (idle ones
// get an SSE comment every sseKeepAlive, as legacy SSE streams do).
const maxListens = 10000

// subscriber names the caller of x: its identity, which the worker also
// takes from the request's caller field.
func (x *exchange) subscriber() string { return x.owner() }

// unsubscribe answers resources/unsubscribe.
func (x *exchange) unsubscribe(m *message) answer {
	var p struct {
		URI string `json:"uri"`
	}
	if e := asParams(m.Params, &p); e != nil || p.URI == "" {
		return answer{err: newRPCError(codeInvalidParams, "resources/unsubscribe needs a uri")}
	}
	if err := x.s.d.Unsubscribe(x.only.Name, x.subscriber(), p.URI); err != nil {
		x.s.log.Warn().Err(err).Str("server", x.only.Name).Msg("unsubscribe not published")
		return answer{err: newRPCError(codeInternalError, "the unsubscription could not be announced; send it again")}
	}
	return answer{result: json.RawMessage("{}")}
}

// getMCP serves GET /mcp and /<server>/mcp. On a server's endpoint it is the
// standalone SSE stream of the caller's resource updates; the aggregated
// endpoint has nothing to send outside a request's answer, which MCP
// answers with 405.
func (s *Server) getMCP(c *gin.Context) {
	caller, sc, ok := s.endpoint(c)
	if !ok {
		return
	}
	only := sc.only
	if only == nil {
		c.Header("Allow", "POST, DELETE")
		s.abort(c, contracts.NewError(contracts.CodeMethodNotAllowed, "the aggregated MCP endpoint offers no standalone SSE stream; POST requests to it"))
		return
	}
	if !acceptsSSE(c.Request) {
		s.abort(c, contracts.NewError(contracts.CodeInvalidRequest, "GET opens the standalone SSE stream: it needs Accept: text/event-stream"))
		return
	}
	if s.listens.Add(1) > maxListens {
		s.listens.Add(-1)
		c.Header("Retry-After", "1")
		s.abort(c, contracts.NewError(contracts.CodeOverloaded, "this replica holds as many standalone streams as it may"))
		return
	}
	defer s.listens.Add(-1)
	x := &exchange{s: s, c: c, caller: caller, only: only, session: c.GetHeader(headerSessionID)}
	updates, err := s.d.Notifications(only.Name, x.subscriber())
	if err != nil {
		s.log.Warn().Err(err).Msg("standalone stream: notifications not subscribed")
		s.abort(c, contracts.NewError(contracts.CodeNoWorkers, "the stream cannot be opened right now"))
		return
	}
	defer updates.Close()

	// A long-lived stream: the server's write timeout, meant for requests,
	// must not cut it (keep-alives show a dead client instead).
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{})
	st := &stream{c: c, sse: true}
	st.start()
	keepAlive := time.NewTicker(sseKeepAlive)
	defer keepAlive.Stop()
	ctx := requestCtx(c)
	for {
		select {
		case m := <-updates.C():
			n, err := contracts.DecodeServerNotification(m.Data)
			if err != nil || n.Server != only.Name {
				continue
			}
			var params any
			if len(n.Params) > 0 {
				params = n.Params
			}
			if !st.emit(encodeNotification(n.Method, params)) {
				return
			}
		case <-keepAlive.C:
			if !st.comment("keep-alive") {
				return
			}
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}
