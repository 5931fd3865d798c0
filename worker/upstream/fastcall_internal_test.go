package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fastExchange sends what the transport would (the placeholder request,
// or other) through challengeRecorder with fc in the context, the base
// answering answer with contentType and status; it returns the body the
// base received and the body the transport would read.
func fastExchange(t *testing.T, fc *fastCall, sent []byte, status int, contentType, answer string) (received, read []byte) {
	t.Helper()
	rt := challengeRecorder{base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		if r.ContentLength != int64(len(b)) {
			t.Errorf("ContentLength = %d, body has %d bytes", r.ContentLength, len(b))
		}
		received = b
		h := http.Header{}
		h.Set("Content-Type", contentType)
		return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(answer)), ContentLength: int64(len(answer))}, nil
	})}
	req, err := http.NewRequestWithContext(withScope(context.Background(), &scope{fc: fc}), http.MethodPost, "http://127.0.0.1:1/mcp", bytes.NewReader(sent))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	read, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return received, read
}

// The request that goes out is mcp-go's encoding of the same tools/call,
// apart from the arguments' whitespace and escaping: the same value once
// decoded. A JSON answer reaches the transport with its result replaced by
// {}, the result kept as the upstream wrote it.
func TestFastCall_SplicesAndReadsOnce(t *testing.T) {
	args := json.RawMessage("{ \"a\" : [1, 2.50, 1e400, 12345678901234567890],\n \"b\":\"<&>\\u00e9\" }")
	id := mcp.NewRequestId("toolbus-7")
	fc := new(fastCall)
	req, err := fc.prepare("toolbus-7", `we"ird<&>`, args, "toolbus-3")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	const result = `{ "content" : [{"type":"text","text":"\u00e9<"}], "isError":false }`
	answer := `{"jsonrpc":"2.0","id":"toolbus-7","result":` + result + "}\n"
	received, read := fastExchange(t, fc, sent, http.StatusOK, "application/json; charset=utf-8", answer)

	var p mcp.CallToolParams
	p.Name = `we"ird<&>`
	p.Arguments = args
	p.Meta = &mcp.Meta{ProgressToken: "toolbus-3"}
	want, err := json.Marshal(transport.JSONRPCRequest{JSONRPC: mcp.JSONRPC_VERSION, ID: id, Method: "tools/call", Params: p})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(DecodeNumbers(t, received), DecodeNumbers(t, want)) {
		t.Errorf("sent %s\nwant (decoded) %s", received, want)
	}
	if !bytes.Contains(received, args) {
		t.Errorf("sent %s: the arguments are not spliced as they were", received)
	}
	if !fc.sent || string(fc.result) != result {
		t.Errorf("sent %v, result %q; want %q", fc.sent, fc.result, result)
	}
	if want := `{"jsonrpc":"2.0","id":"toolbus-7","result":{}}` + "\n"; string(read) != want {
		t.Errorf("the transport reads %q, want %q", read, want)
	}
}

// Whatever the fast path does not take reaches the transport as it came,
// and another request with the same context goes out unchanged.
func TestFastCall_OtherAnswersUnchanged(t *testing.T) {
	newFC := func() (*fastCall, []byte) {
		fc := new(fastCall)
		req, err := fc.prepare("toolbus-1", "echo", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		sent, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		return fc, sent
	}
	for _, tc := range []struct {
		name, contentType, answer string
		status                    int
	}{
		{"event stream", "text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"toolbus-1\",\"result\":{}}\n\n", http.StatusOK},
		{"error status", "application/json", `{"jsonrpc":"2.0","id":"toolbus-1","error":{"code":-32600,"message":"no"}}`, http.StatusBadRequest},
		{"error", "application/json", `{"jsonrpc":"2.0","id":"toolbus-1","error":{"code":-32602,"message":"no"}}`, http.StatusOK},
		{"truncated", "application/json", `{"jsonrpc":"2.0","id":"toolbus-1","result":{"content":[`, http.StatusOK},
		{"not JSON", "application/json", `hello`, http.StatusOK},
		{"trailing text", "application/json", `{"jsonrpc":"2.0","id":"toolbus-1","result":{}} and more`, http.StatusOK},
		{"result not an object", "application/json", `{"jsonrpc":"2.0","id":"toolbus-1","result":"text"}`, http.StatusOK},
		{"aliased key", "application/json", `{"jsonrpc":"2.0","id":"toolbus-1","Result":{"a":1}}`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc, sent := newFC()
			_, read := fastExchange(t, fc, sent, tc.status, tc.contentType, tc.answer)
			if string(read) != tc.answer || fc.result != nil {
				t.Errorf("the transport reads %q (result %q), want the answer as it came", read, fc.result)
			}
		})
	}
	t.Run("another request", func(t *testing.T) {
		fc, _ := newFC()
		other := []byte(`{"jsonrpc":"2.0","id":1,"result":{}}`)
		received, _ := fastExchange(t, fc, other, http.StatusAccepted, "application/json", "")
		if !bytes.Equal(received, other) || fc.sent {
			t.Errorf("sent %s (sent %v), want it unchanged", received, fc.sent)
		}
	})
}

// The request is recognized by its end, the placeholder as its last
// member's value: the transport's envelope goes out byte for byte whatever
// its encoding, with the params after it. A body with the placeholder
// elsewhere, or longer than an envelope, goes out unchanged.
func TestFastCall_RecognizedByItsEnd(t *testing.T) {
	prepare := func() *fastCall {
		fc := new(fastCall)
		if _, err := fc.prepare("toolbus-9", "echo", json.RawMessage(`{"a":1}`), ""); err != nil {
			t.Fatal(err)
		}
		return fc
	}
	envelope := `{ "method" : "tools/call", "id": "toolbus-9", "jsonrpc":"2.0", "params":`
	fc := prepare()
	received, _ := fastExchange(t, fc, []byte(envelope+fastPlaceholder+"}"), http.StatusAccepted, "application/json", "")
	if want := envelope + `{"name":"echo","arguments":{"a":1}}}`; string(received) != want || !fc.sent {
		t.Errorf("sent %s (sent %v), want %s", received, fc.sent, want)
	}
	for name, body := range map[string]string{
		"placeholder not last":       `{"jsonrpc":"2.0","id":"toolbus-9","method":"tools/call","params":` + fastPlaceholder + `,"x":1}`,
		"placeholder inside params":  `{"jsonrpc":"2.0","id":"toolbus-9","method":"tools/call","params":{"p":` + fastPlaceholder + `}}`,
		"longer than an envelope":    `{"jsonrpc":"2.0","id":"toolbus-9","pad":"` + strings.Repeat("x", maxFastEnvelope) + `","params":` + fastPlaceholder + `}`,
		"shorter than the tail":      `{}`,
		"placeholder without params": `{"jsonrpc":"2.0","id":"toolbus-9","x":` + fastPlaceholder + `}`,
	} {
		fc := prepare()
		received, _ := fastExchange(t, fc, []byte(body), http.StatusAccepted, "application/json", "")
		if string(received) != body || fc.sent {
			t.Errorf("%s: sent %.200s (sent %v), want it unchanged", name, received, fc.sent)
		}
	}
}

// hasMediaType finds the media type mime.ParseMediaType (mcp-go's reading)
// finds, wherever the parameters parse.
func TestHasMediaType(t *testing.T) {
	for _, ct := range []string{
		"application/json", "application/json; charset=utf-8", " Application/JSON ;charset=utf-8", "APPLICATION/JSON",
		"text/event-stream", "text/event-stream;", "Text/Event-Stream; charset=utf-8", "text/event-stream ; a=b",
		"", "application/jsonx", "application/json-seq", "text/event-stream2", "application/json extra", "text/plain",
		"application /json", "application/", ";application/json",
	} {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil {
			mediaType = ""
		}
		h := http.Header{}
		h.Set("Content-Type", ct)
		for _, want := range []string{"application/json", "text/event-stream"} {
			if got := hasMediaType(h, want); got != (mediaType == want) {
				t.Errorf("hasMediaType(%q, %q) = %v; ParseMediaType finds %q", ct, want, got, mediaType)
			}
		}
	}
}

// An answer cut by max_result_bytes reaches the transport with the read's
// error after the bytes read, and the limit records it.
func TestFastCall_LimitedAnswer(t *testing.T) {
	fc := new(fastCall)
	req, err := fc.prepare("toolbus-1", "echo", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	sent, _ := json.Marshal(req)
	lim := newResultLimit(64)
	answer := `{"jsonrpc":"2.0","id":"toolbus-1","result":{"text":"` + strings.Repeat("a", 200) + `"}}`
	rt := challengeRecorder{base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(strings.NewReader(answer)), ContentLength: -1}, nil
	})}
	r, _ := http.NewRequestWithContext(withScope(context.Background(), &scope{fc: fc, lim: lim}), http.MethodPost, "http://127.0.0.1:1/mcp", bytes.NewReader(sent))
	resp, err := rt.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, errResultTooLarge) || !lim.exceeded() || fc.result != nil {
		t.Errorf("read error %v, limit hit %v, result %q; want errResultTooLarge and no result", err, lim.exceeded(), fc.result)
	}
}

// Arguments that are not JSON fail before anything is sent, as they failed
// the transport's encoding.
func TestFastCall_InvalidArguments(t *testing.T) {
	args := json.RawMessage(`{"a":`)
	if _, err := new(fastCall).prepare("toolbus-1", "echo", args, ""); err == nil {
		t.Error("invalid arguments accepted")
	}
}

// DecodeNumbers decodes b, keeping numbers as written (exported for the
// external tests of this package too).
func DecodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%.200s: %v", b, err)
	}
	return v
}

// BenchmarkFastCall_RoundTrip is the worker's own work on a small
// tools/call's fast path, without a network or a server: the call
// attempt's scope, the request prepared, encoded as mcp-go's transport
// encodes it (json.Marshal, http.NewRequestWithContext: not the pool's
// work, counted too), recognized and spliced by the RoundTripper, and a
// canned JSON answer read in one pass and given back with {} in place of
// the result.
func BenchmarkFastCall_RoundTrip(b *testing.B) {
	answer := []byte(`{"jsonrpc":"2.0","id":"toolbus-1","result":{"content":[{"type":"text","text":"hello"}]}}`)
	header := http.Header{"Content-Type": {"application/json"}}
	rt := challengeRecorder{base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		_, _ = io.Copy(io.Discard, r.Body)
		return &http.Response{StatusCode: http.StatusOK, Header: header, Body: io.NopCloser(bytes.NewReader(answer)), ContentLength: int64(len(answer))}, nil
	})}
	args := json.RawMessage(`{"text":"hello"}`)
	b.ReportAllocs()
	for b.Loop() {
		sc := newCallScope(1 << 20)
		ctx := withScope(context.Background(), &sc.scope)
		req, err := sc.fc.prepare("toolbus-1", "echo", args, "")
		if err != nil {
			b.Fatal(err)
		}
		body, err := json.Marshal(req)
		if err != nil {
			b.Fatal(err)
		}
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:1/mcp", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp, err := rt.RoundTrip(r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err != nil || !sc.fc.sent || sc.fc.result == nil {
			b.Fatalf("read %v, sent %v, result %s", err, sc.fc.sent, sc.fc.result)
		}
	}
}
