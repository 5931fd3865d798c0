package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts"
)

// One JSON pass per side for a tools/call on streamable HTTP (callRaw).
// mcp-go's transport encodes a request with encoding/json, which compacts
// (scans and copies) the arguments, and decodes a JSON answer twice over (a
// Decoder reads the value, then unmarshals it). callRaw still sends its
// request through the transport - which keeps the session, its headers and
// their credential, the 401 and 404 handling, event-stream answers with
// their notifications and resumption, and the cancellation exactly as they
// are - but with params that stand in for the real ones (fastPlaceholder).
// The pool's RoundTripper (challengeRecorder) recognizes that request by its
// end - the params member, last, holding the placeholder - and sends the
// transport's own bytes up to the params with the real params after them:
// the arguments spliced in as the caller sent them, checked once by
// contracts.ScanJSON. Of a 200 application/json answer it reads the body,
// validates it with one ScanJSON pass that also finds "result", keeps the
// result as a slice of the body, and gives the transport the same answer
// with the result replaced by {} to decode. Any other answer (an event
// stream, a failure status, a body that is not one JSON object, one whose
// keys encoding/json could match to "result" otherwise) reaches the
// transport unchanged, and a body whose reading failed (max_result_bytes, a
// broken connection) as the read's error.

// fastPlaceholder is the params of the request callRaw gives the transport:
// not an object, so a server that ever received it would refuse it rather
// than run a tool.
const fastPlaceholder = `"toolbus: params spliced by the worker's HTTP transport"`

// fastParams is fastPlaceholder as the request's params (boxed once).
var fastParams any = json.RawMessage(fastPlaceholder)

// fastTail ends the body of the request callRaw gives the transport, and
// only of that request: the transport encodes a JSON-RPC message as an
// object, its params member last, and no other request or answer has a
// string as its params (an answer has none).
const fastTail = `"params":` + fastPlaceholder + `}`

// maxFastEnvelope bounds the length of that request's body (its envelope:
// jsonrpc, id, method and the placeholder are about 130 bytes): a longer
// body with the fast call in its context is not read to be looked at.
const maxFastEnvelope = 1 << 10

var fastResultWant = contracts.NewJSONWant("result")

// fastCall is one tools/call's params and answer, carried to the
// RoundTripper by the request's context (its scope).
type fastCall struct {
	// tool, args and progressToken make the params (appendCallParams);
	// ready is set once they are.
	tool, progressToken string
	args                json.RawMessage
	ready               bool
	// sent is set once the real params went out; result is the result of
	// the last 200 application/json answer read, nil if none. Both are
	// written by the RoundTripper during the transport's SendRequest and
	// read after it returns.
	sent   bool
	result json.RawMessage
}

// prepare readies fc for a tools/call of tool with args and progressToken
// (see appendCallParams), with request id id, and returns the request the
// transport is given: the placeholder in place of the params. Arguments
// that are not JSON fail here, as they failed the transport's encoding.
func (fc *fastCall) prepare(id, tool string, args json.RawMessage, progressToken string) (transport.JSONRPCRequest, error) {
	if len(args) > 0 {
		if _, err := contracts.ScanJSON(args, nil); err != nil {
			return transport.JSONRPCRequest{}, fmt.Errorf("failed to marshal request: %w", err)
		}
	}
	*fc = fastCall{tool: tool, args: args, progressToken: progressToken, ready: true}
	return transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION,
		ID:      mcp.NewRequestId(id),
		Method:  string(mcp.MethodToolsCall),
		Params:  fastParams,
	}, nil
}

// fastRequest returns req with fc's params in place of the placeholder,
// when fc (the request's scope's) is ready and req is the request that
// carries the placeholder; otherwise req itself (its body read back into
// place when it was inspected). The envelope is the transport's own
// encoding, byte for byte; the params are spliced in, so the arguments are
// copied once and not compacted.
func fastRequest(req *http.Request, fc *fastCall) (*http.Request, *fastCall, error) {
	if fc == nil || !fc.ready || req.Method != http.MethodPost || req.Body == nil ||
		req.ContentLength < int64(len(fastTail)) || req.ContentLength > maxFastEnvelope {
		return req, nil, nil
	}
	n := int(req.ContentLength)
	// Room for the body read (and the end of it seen), and for the body
	// sent: the envelope and the params.
	paramsLen := len(fc.tool) + len(fc.args) + len(fc.progressToken) + 64
	got, err := readInto(req.Body, make([]byte, 0, max(n+1, n-len(fastPlaceholder)+paramsLen)), 0)
	_ = req.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	// A RoundTripper must not change the caller's request: a shallow copy
	// (the header is not changed either).
	out := new(http.Request)
	*out = *req
	if !bytes.HasSuffix(got, []byte(fastTail)) {
		out.Body = io.NopCloser(bytes.NewReader(got))
		return out, nil, nil
	}
	body := got[:len(got)-len(fastPlaceholder)-1] // up to "params":
	body = append(appendCallParams(body, fc.tool, fc.args, fc.progressToken), '}')
	// A known in-memory body: net/http writes its headers and body at once.
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	fc.sent = true
	return out, fc, nil
}

// fastAnswer reads a 200 application/json answer to fc's request (resp's
// body already bounded by lim, the scope's limit) in one pass: fc keeps the
// result, and resp's body becomes the answer with the result replaced by
// {}. An answer it does not take reaches the transport as it came; one
// whose reading failed, as that error.
func fastAnswer(fc *fastCall, lim *resultLimit, resp *http.Response) {
	if resp.StatusCode != http.StatusOK || resp.Body == nil || !hasMediaType(resp.Header, "application/json") {
		return
	}
	fc.result = nil
	orig := resp.Body
	var limit int64
	if lim != nil {
		limit = lim.max
	}
	data, err := readAnswer(orig, resp.ContentLength, limit)
	if err != nil {
		// Cut at max_result_bytes (the limit has recorded it), broken
		// off, or the call's context ended: the transport fails with the
		// read's error, without reading the bytes again.
		resp.Body = readCloser{Reader: errReader{err}, Closer: orig}
		return
	}
	answer := data
	if scan, err := contracts.ScanJSON(data, fastResultWant); err == nil && !scan.Aliased {
		if i := scan.Last(-1, "result"); i >= 0 && scan.Members[i].Value[0] == '{' {
			v := scan.Members[i].Value
			fc.result = v[:len(v):len(v)] // an append copies rather than overwrite the body
			answer = scan.Replace(-1, []byte("{}"))
			resp.ContentLength = -1
		}
	}
	b := &bytesBody{closer: orig}
	b.Reset(answer)
	resp.Body = b
}

// bytesBody is an answer's body read from memory, closing the body it was
// read from.
type bytesBody struct {
	bytes.Reader
	closer io.Closer
}

func (b *bytesBody) Close() error { return b.closer.Close() }

// readAnswer reads r to its end: an answer of length n (-1: unknown) of
// which at most limit bytes (0: no limit) are read. The buffer starts at
// the whole answer when its length is known and within limit and a few
// MiB, and never grows past limit+1 bytes (the limit's reader fails on the
// byte after limit).
func readAnswer(r io.Reader, n, limit int64) ([]byte, error) {
	const start, most = 4 << 10, 16 << 20
	size := int64(start)
	if n >= 0 && n <= most && (limit <= 0 || n <= limit) {
		size = n + 1 // room to see the end
	}
	return readInto(r, make([]byte, 0, size), limit)
}

// readInto reads r to its end, appending to buf, of which at most limit
// bytes (0: no limit) are read; buf grows as readAnswer says.
func readInto(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			grown := max(2*int64(cap(buf)), 512)
			if limit > 0 && grown > limit+1 {
				grown = max(limit+1, int64(cap(buf))+1)
			}
			buf = append(make([]byte, 0, grown), buf...)
		}
		k, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
