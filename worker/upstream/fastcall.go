package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/mark3labs/mcp-go/client/transport"

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
// bytes and sends the real ones instead: the arguments spliced in as the
// caller sent them, checked once by contracts.ScanJSON. Of a 200
// application/json answer it reads the body, validates it with one
// ScanJSON pass that also finds "result", keeps the result as a slice of
// the body, and gives the transport the same answer with the result
// replaced by {} to decode. Any other answer (an event stream, a failure
// status, a body that is not one JSON object, one whose keys encoding/json
// could match to "result" otherwise) reaches the transport unchanged, and a
// body whose reading failed (max_result_bytes, a broken connection) as the
// read's error.

// fastPlaceholder is the params of the request callRaw gives the transport:
// not an object, so a server that ever received it would refuse it rather
// than run a tool.
const fastPlaceholder = `"toolbus: params spliced by the worker's HTTP transport"`

var fastResultWant = contracts.NewJSONWant("result")

// fastCall is one tools/call's request and answer, carried to the
// RoundTripper by the request's context.
type fastCall struct {
	// placeholder is the body the transport sends; body the one to send
	// instead.
	placeholder, body []byte
	// sent is set once body went out; result is the result of the last
	// 200 application/json answer read, nil if none. Both are written by
	// the RoundTripper during the transport's SendRequest and read after it
	// returns.
	sent   bool
	result json.RawMessage
}

type fastCallKey struct{}

// newFastCall builds the request req of a tools/call of tool with args and
// progressToken (see appendCallParams): the placeholder request the
// transport encodes, and the real one. The envelope of the real one is the
// transport's own encoding, byte for byte; the params are spliced in, so
// the arguments are copied once and not compacted. Arguments that are not
// JSON fail here, as they failed the transport's encoding.
func newFastCall(req transport.JSONRPCRequest, tool string, args json.RawMessage, progressToken string) (*fastCall, transport.JSONRPCRequest, error) {
	if len(args) > 0 {
		if _, err := contracts.ScanJSON(args, nil); err != nil {
			return nil, req, fmt.Errorf("failed to marshal request: %w", err)
		}
	}
	req.Params = json.RawMessage(fastPlaceholder)
	placeholder, err := json.Marshal(req)
	if err != nil {
		return nil, req, fmt.Errorf("failed to marshal request: %w", err)
	}
	tail := fastPlaceholder + "}"
	if !bytes.HasSuffix(placeholder, []byte(tail)) {
		return nil, req, errors.New("failed to marshal request: unexpected encoding")
	}
	head := placeholder[:len(placeholder)-len(tail)]
	body := make([]byte, 0, len(head)+len(tool)+len(args)+len(progressToken)+64)
	body = append(appendCallParams(append(body, head...), tool, args, progressToken), '}')
	return &fastCall{placeholder: placeholder, body: body}, req, nil
}

// fastRequest returns req with fc's body in place of the placeholder, when
// req carries a fastCall in its context and the placeholder as its body;
// otherwise req itself (its body read back into place when it was
// inspected).
func fastRequest(req *http.Request) (*http.Request, *fastCall, error) {
	fc, ok := req.Context().Value(fastCallKey{}).(*fastCall)
	if !ok || fc == nil || req.Method != http.MethodPost || req.Body == nil ||
		req.ContentLength != int64(len(fc.placeholder)) {
		return req, nil, nil
	}
	got, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	out := req.Clone(req.Context()) // a RoundTripper must not change the caller's request
	if !bytes.Equal(got, fc.placeholder) {
		out.Body = io.NopCloser(bytes.NewReader(got))
		return out, nil, nil
	}
	body := fc.body
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	fc.sent = true
	return out, fc, nil
}

// fastAnswer reads a 200 application/json answer to fc's request (resp's
// body already bounded by the result limit) in one pass: fc keeps the
// result, and resp's body becomes the answer with the result replaced by
// {}. An answer it does not take reaches the transport as it came; one
// whose reading failed, as that error.
func fastAnswer(fc *fastCall, req *http.Request, resp *http.Response) {
	if resp.StatusCode != http.StatusOK || resp.Body == nil {
		return
	}
	if mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mediaType != "application/json" {
		return
	}
	fc.result = nil
	orig := resp.Body
	var limit int64
	if lim, ok := req.Context().Value(resultLimitKey{}).(*resultLimit); ok && lim != nil {
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
	resp.Body = readCloser{Reader: bytes.NewReader(data), Closer: orig}
	scan, err := contracts.ScanJSON(data, fastResultWant)
	if err != nil || scan.Aliased {
		return
	}
	i := scan.Last(-1, "result")
	if i < 0 || scan.Members[i].Value[0] != '{' {
		return
	}
	v := scan.Members[i].Value
	fc.result = v[:len(v):len(v)] // an append copies rather than overwrite the body
	resp.Body = readCloser{Reader: bytes.NewReader(scan.Replace(-1, []byte("{}"))), Closer: orig}
	resp.ContentLength = -1
}

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
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			grown := 2 * int64(cap(buf))
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

// withFastCall returns ctx carrying fc to the RoundTripper.
func withFastCall(ctx context.Context, fc *fastCall) context.Context {
	return context.WithValue(ctx, fastCallKey{}, fc)
}
