package demoserver

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
)

// RecordedRequest is one HTTP request as the demo server received it.
type RecordedRequest struct {
	Method        string
	Path          string
	Authorization string
	// RPCMethod is the JSON-RPC method of a POST body that names one early
	// (in its first bytes, as MCP clients write it), else "".
	RPCMethod string
	// Header is a copy of the full request header map.
	Header http.Header
}

// MaxRecorded bounds a Recorder: when it holds MaxRecorded requests it drops
// the older half, so a long-running demo server (--dev, benchmarks) does not
// grow without end, at an amortised constant cost per request.
const MaxRecorded = 10000

// Recorder records the HTTP requests a demo server receives (the latest ones,
// up to MaxRecorded), before authentication and before mcp-go sees them. Its zero
// value is ready to use and it is safe for concurrent use. The accessors
// return copies.
type Recorder struct {
	mu   sync.Mutex
	reqs []RecordedRequest
}

func (r *Recorder) record(req *http.Request) {
	rec := RecordedRequest{
		Method:        req.Method,
		Path:          req.URL.Path,
		Authorization: req.Header.Get("Authorization"),
		RPCMethod:     PeekRPCMethod(req),
		Header:        req.Header.Clone(),
	}
	r.mu.Lock()
	if len(r.reqs) >= MaxRecorded {
		r.reqs = append(r.reqs[:0], r.reqs[MaxRecorded/2:]...)
	}
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
}

// peekLen is how much of a body peekRPCMethod looks at.
const peekLen = 256

// PeekRPCMethod returns the JSON-RPC method of a POST, read from the first
// bytes of its body (which it puts back), or "": cheap enough for a server
// that is also the benchmark's upstream. MCP clients write "method" early.
func PeekRPCMethod(req *http.Request) string {
	if req.Method != http.MethodPost || req.Body == nil {
		return ""
	}
	head := make([]byte, peekLen)
	n, err := io.ReadFull(req.Body, head)
	head = head[:n]
	req.Body = readCloser{io.MultiReader(bytes.NewReader(head), req.Body), req.Body}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return ""
	}
	_, rest, ok := bytes.Cut(head, []byte(`"method":"`))
	if !ok {
		return ""
	}
	method, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok {
		return ""
	}
	return string(method)
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// Entries returns every recorded request, oldest first.
func (r *Recorder) Entries() []RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecordedRequest, len(r.reqs))
	for i, rec := range r.reqs {
		rec.Header = rec.Header.Clone()
		out[i] = rec
	}
	return out
}

// RPCMethods returns each recorded request's JSON-RPC method ("" when none
// was seen), oldest first.
func (r *Recorder) RPCMethods() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.reqs))
	for i, rec := range r.reqs {
		out[i] = rec.RPCMethod
	}
	return out
}

// Requests returns a copy of each recorded request's header map, oldest first.
func (r *Recorder) Requests() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]http.Header, len(r.reqs))
	for i, rec := range r.reqs {
		out[i] = rec.Header.Clone()
	}
	return out
}

// Authorizations returns each recorded request's Authorization header ("" when
// absent), oldest first.
func (r *Recorder) Authorizations() []string {
	return r.Values("Authorization")
}

// Values returns the value of the named header ("" when absent) for each
// recorded request, oldest first. Any header can be asked for, since the full
// header map of every request is kept.
func (r *Recorder) Values(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.reqs))
	for i, rec := range r.reqs {
		out[i] = rec.Header.Get(name)
	}
	return out
}

// Len returns the number of recorded requests.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// Reset forgets every recorded request.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.reqs = nil
	r.mu.Unlock()
}
