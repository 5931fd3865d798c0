package mcpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// Streamable HTTP (MCP 2025-03-26 and later): every client message is one
// POST. A request is answered in the POST's response: JSON, or an SSE
// stream when there are notifications to send first (a tool call's
// progress and log messages) and the client accepts one. Notifications and
// responses from the client are acknowledged with 202. The endpoint keeps
// no session state: any replica answers any request.

const (
	headerSessionID       = "Mcp-Session-Id"
	headerProtocolVersion = "Mcp-Protocol-Version"
)

// maxBodyBuffer bounds what a declared Content-Length reserves before the
// body's bytes arrive (readMessage): a client that declares a large body
// and stalls holds no more (the rest grows as it comes).
const maxBodyBuffer = 64 << 10

// jsonContentType is the Content-Type of a JSON answer, shared: net/http
// copies the response's header map before writing it, and nothing changes
// the slice in place.
var jsonContentType = []string{"application/json"}

// postMCP serves POST /mcp and /:server/mcp.
func (s *Server) postMCP(c *gin.Context) {
	caller, sc, ok := s.endpoint(c)
	if !ok {
		return
	}
	msg, ok := s.readMessage(c)
	if !ok {
		return
	}
	if v := c.GetHeader(headerProtocolVersion); v != "" && !slices.Contains(protocolVersions, v) &&
		msg.Method != "initialize" && msg.Method != "server/discover" {
		s.abort(c, contracts.NewError(contracts.CodeInvalidRequest, "unsupported MCP-Protocol-Version %q (supported: %s)", clip(v), strings.Join(protocolVersions, ", ")))
		return
	}
	x := &exchange{s: s, c: c, caller: caller, only: sc.only, within: sc.within, session: c.GetHeader(headerSessionID)}
	logMethod(c, msg)
	if x.nonRequest(msg) {
		return
	}
	st := &stream{c: c, sse: acceptsSSE(c.Request)}
	if st.sse {
		x.emit = st.emit
	}
	ans := x.request(msg)
	st.finish(s, msg.ID, ans)
}

// nonRequest answers a message that is not a request - a notification, a
// client's answer to a request relayed from the upstream (clientAnswer),
// or no valid JSON-RPC message - and reports whether it did. Both
// transports take client messages this way.
func (x *exchange) nonRequest(msg *message) bool {
	switch {
	case msg.isNotification():
		x.notification(msg)
		writeStatus(x.c, http.StatusAccepted)
	case msg.isResponse():
		x.clientAnswer(msg)
	case !msg.isRequest() || !validID(msg.ID) || msg.JSONRPC != "2.0":
		x.c.Data(http.StatusBadRequest, "application/json", encodeResponse(nil, nil, newRPCError(codeInvalidRequest, "not a JSON-RPC 2.0 request, notification or response")))
	default:
		return false
	}
	return true
}

// readMessage reads and parses the (size-limited) body as one JSON-RPC
// message, writing the error response when it is not one.
func (s *Server) readMessage(c *gin.Context) (*message, bool) {
	// A body the front door read already (into memory) is written into a
	// buffer of its size in one piece (io.Copy, its WriteTo); another one
	// is read as it comes, the buffer sized for at most maxBodyBuffer of
	// its declared length before the bytes arrive.
	var buf bytes.Buffer
	if n := c.Request.ContentLength; n > 0 {
		buf.Grow(int(min(n, maxBodyBuffer)))
	}
	if _, err := io.Copy(&buf, c.Request.Body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.abort(c, contracts.NewError(contracts.CodeRequestTooLarge, "the body is larger than %d bytes", tooLarge.Limit))
		} else {
			s.abort(c, contracts.NewError(contracts.CodeInvalidRequest, "reading the body failed"))
		}
		return nil, false
	}
	body := bytes.TrimSpace(buf.Bytes())
	if len(body) > 0 && body[0] == '[' {
		c.Data(http.StatusBadRequest, "application/json", encodeResponse(nil, nil, newRPCError(codeInvalidRequest, "JSON-RPC batches are not supported")))
		return nil, false
	}
	msg, err := parseMessage(body)
	if err != nil {
		c.Data(http.StatusBadRequest, "application/json", encodeResponse(nil, nil, newRPCError(codeParseError, "the body is not a JSON-RPC message")))
		return nil, false
	}
	return msg, true
}

// acceptsSSE reports whether the client takes an SSE stream as the answer
// to its POST.
func acceptsSSE(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(mt, "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// deleteMCP serves DELETE /mcp: ending a session. There is no session
// state to end, so it always succeeds.
func (s *Server) deleteMCP(c *gin.Context) {
	if _, _, ok := s.endpoint(c); !ok {
		return
	}
	writeStatus(c, http.StatusOK)
}

// stream writes the answer of one POST: as JSON, or - once a notification
// has been sent - as SSE events. Headers are written as late as possible,
// so an answer that turns out to be an HTTP error (401 from the upstream)
// can still be one.
type stream struct {
	c       *gin.Context
	sse     bool
	mu      sync.Mutex
	started bool
	broken  bool
}

// emit sends data as one SSE event, starting the stream if needed; false
// when the client is gone.
func (st *stream) emit(data []byte) bool { return st.emitParts(data) }

// emitParts is emit of a message in pieces (responseParts).
func (st *stream) emitParts(data ...[]byte) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.broken {
		return false
	}
	st.startLocked()
	w := st.c.Writer
	if err := writeEvent(w, "message", data...); err != nil {
		st.broken = true
		return false
	}
	w.Flush()
	return true
}

// start sends the stream's headers now.
func (st *stream) start() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.startLocked()
	st.c.Writer.Flush()
}

func (st *stream) startLocked() {
	if st.started {
		return
	}
	h := st.c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	st.c.Writer.WriteHeader(http.StatusOK)
	st.started = true
}

// comment sends an SSE comment (a keep-alive); false when the client is
// gone.
func (st *stream) comment(text string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.broken {
		return false
	}
	st.startLocked()
	if _, err := st.c.Writer.WriteString(": " + text + "\n\n"); err != nil {
		st.broken = true
		return false
	}
	st.c.Writer.Flush()
	return true
}

// finish writes the answer to request id.
func (st *stream) finish(s *Server, id json.RawMessage, ans answer) {
	st.mu.Lock()
	started := st.started
	st.mu.Unlock()
	if ans.httpErr != nil && !started {
		s.abort(st.c, ans.httpErr)
		return
	}
	head, body, tail := responseParts(id, ans.result, ans.err)
	if started {
		st.emitParts(head, body, tail)
		return
	}
	// Written in its pieces: a large result is not copied into one buffer.
	w := st.c.Writer
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("Content-Length", strconv.Itoa(len(head)+len(body)+len(tail)))
	w.WriteHeader(http.StatusOK)
	for _, part := range [][]byte{head, body, tail} {
		if _, err := w.Write(part); err != nil {
			return // the client is gone
		}
	}
}

// writeEvent writes one SSE event whose data is the pieces of one JSON
// text, one after the other (a large result is not copied into a buffer).
// JSON strings hold no raw line breaks; one between tokens (a result
// spliced in as the upstream wrote it, see responseParts) would end the
// event's data line, so it is written as a space.
func writeEvent(w io.Writer, event string, data ...[]byte) error {
	if _, err := io.WriteString(w, "event: "+event+"\ndata: "); err != nil {
		return err
	}
	for _, part := range data {
		if bytes.IndexByte(part, '\n') >= 0 || bytes.IndexByte(part, '\r') >= 0 {
			line := bytes.Clone(part)
			for i, c := range line {
				if c == '\n' || c == '\r' {
					line[i] = ' '
				}
			}
			part = line
		}
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n\n")
	return err
}

// logMethod adds the JSON-RPC method to the request's access log line.
func logMethod(c *gin.Context, msg *message) {
	if msg.Method != "" {
		frontdoor.Of(c).MCPMethod = clip(msg.Method)
	}
}
