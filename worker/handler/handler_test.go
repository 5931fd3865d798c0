package handler_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/handler"
	"github.com/toolbus/toolbus/worker/internal/workertest"
	"github.com/toolbus/toolbus/worker/upstream"
)

const reply = "_INBOX.test-reply"

type fixture struct {
	h    *handler.Handler
	keys workertest.Keys
	logs *contractstest.LogBuffer
	demo *demoserver.Running
	now  time.Time
}

// newFixture builds a handler whose call events go to publish (nil: none).
func newFixture(t *testing.T, publish func(subject string, data []byte) error) *fixture {
	t.Helper()
	f := &fixture{keys: workertest.NewKeys(t), logs: &contractstest.LogBuffer{}}
	f.demo = workertest.StartDemo(t, demoserver.Options{}, demoserver.TransportHTTP)
	cfg := workertest.Config(t, map[string]*config.Server{
		"demo":    {URL: f.demo.URL, DisallowedTools: []string{demoserver.ToolFail}},
		"open":    {URL: f.demo.URL, Auth: config.AuthNone},
		"limited": {URL: f.demo.URL, Timeout: config.Duration(50 * time.Millisecond), MaxTimeout: config.Duration(100 * time.Millisecond)},
	}, config.Worker{})
	up := upstream.New(upstream.Options{Logger: f.logs.Logger("worker")})
	t.Cleanup(func() { _ = up.Close() })
	f.h = handler.New(handler.Config{File: cfg, Opener: f.keys.Opener, Upstream: up, Logger: f.logs.Logger("worker"), Publish: publish})
	return f
}

// serve does what the pool does with a request of op received on subject:
// decode it, handle it and encode the reply (ok false: none).
func (f *fixture) serve(t *testing.T, op *handler.Op, subject string, data contracts.Wire) (contracts.Wire, bool) {
	t.Helper()
	in := op.Decode(subject, reply, data)
	payload, e := f.h.Handle(contractstest.Ctx(t), in)
	return in.Encode(payload, e)
}

// answer serves data and decodes its reply with decode; no reply, or one
// that does not decode, fails the test.
func answer[R any](t *testing.T, f *fixture, op *handler.Op, subject string, data contracts.Wire, decode func(contracts.Wire) (*R, error)) *R {
	t.Helper()
	out, ok := f.serve(t, op, subject, data)
	if !ok {
		t.Fatal("no reply")
	}
	resp, err := decode(out)
	if err != nil {
		t.Fatalf("reply %+v: %v", out, err)
	}
	return resp
}

func (f *fixture) call(t *testing.T, subject string, data contracts.Wire) *contracts.CallResponse {
	t.Helper()
	return answer(t, f, handler.CallOp, subject, data, contracts.DecodeCallResponse)
}

func TestHandler_Call(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const token = "Bearer user-token-1"

	t.Run("passes the opened token upstream", func(t *testing.T) {
		req := f.keys.Request(t, workertest.Call{Server: "demo", Tool: demoserver.ToolWhoami, Token: token}, reply)
		resp := f.call(t, contracts.CallSubject("demo"), workertest.Wire(t, req))
		if resp.Error != nil {
			t.Fatalf("error %+v", resp.Error)
		}
		if resp.RequestID != req.RequestID {
			t.Errorf("request_id = %q, want %q", resp.RequestID, req.RequestID)
		}
		if got := workertest.Text(t, resp.Result); got != token {
			t.Errorf("whoami = %q, want %q", got, token)
		}
	})

	// sealed builds c sealed for replyTo; sealedElsewhere sealed to a key
	// this worker does not hold.
	sealed := func(c workertest.Call, replyTo string) func(t *testing.T) *contracts.CallRequest {
		return func(t *testing.T) *contracts.CallRequest { return f.keys.Request(t, c, replyTo) }
	}
	sealedElsewhere := func(c workertest.Call, replyTo string) func(t *testing.T) *contracts.CallRequest {
		return func(t *testing.T) *contracts.CallRequest { return workertest.NewKeys(t).Request(t, c, replyTo) }
	}
	// changed is a whoami call sealed for demo, changed by change after sealing.
	changed := func(change func(*contracts.CallRequest)) func(t *testing.T) *contracts.CallRequest {
		return func(t *testing.T) *contracts.CallRequest {
			req := f.keys.Request(t, workertest.Call{Server: "demo", Tool: "whoami", Token: token}, reply)
			change(req)
			return req
		}
	}
	tests := []struct {
		name    string
		subject string
		build   func(t *testing.T) *contracts.CallRequest
		want    contracts.ErrorCode
	}{
		{
			name: "unknown server", subject: contracts.CallSubject("nope"),
			build: sealed(workertest.Call{Server: "nope", Tool: "echo"}, reply),
			want:  contracts.CodeUnknownServer,
		},
		{
			name: "disallowed tool", subject: contracts.CallSubject("demo"),
			build: sealed(workertest.Call{Server: "demo", Tool: demoserver.ToolFail, Token: token}, reply),
			want:  contracts.CodeForbidden,
		},
		{
			name: "unknown tool", subject: contracts.CallSubject("demo"),
			build: sealed(workertest.Call{Server: "demo", Tool: "nope", Token: token}, reply),
			want:  contracts.CodeUnknownTool,
		},
		{
			name: "sealed for another reply subject", subject: contracts.CallSubject("demo"),
			build: sealed(workertest.Call{Server: "demo", Tool: "whoami", Token: token}, "_INBOX.elsewhere"),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "tool changed after sealing", subject: contracts.CallSubject("demo"),
			build: changed(func(r *contracts.CallRequest) {
				r.Tool = demoserver.ToolEcho
				r.Arguments = json.RawMessage(`{"text":"x"}`)
			}),
			want: contracts.CodeSealInvalid,
		},
		{
			name: "arguments added after sealing", subject: contracts.CallSubject("demo"),
			build: changed(func(r *contracts.CallRequest) { r.Arguments = json.RawMessage(`{"text":"x"}`) }),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "arguments changed after sealing", subject: contracts.CallSubject("demo"),
			build: func(t *testing.T) *contracts.CallRequest {
				req := f.keys.Request(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"sealed"}`, Token: token}, reply)
				req.Arguments = json.RawMessage(`{"text":"edited"}`)
				return req
			},
			want: contracts.CodeSealInvalid,
		},
		{
			name: "timeout changed after sealing", subject: contracts.CallSubject("demo"),
			build: changed(func(r *contracts.CallRequest) { r.TimeoutMS += 1000 }),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "key id changed after sealing", subject: contracts.CallSubject("demo"),
			build: changed(func(r *contracts.CallRequest) { r.KeyID = "team-b" }),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "expiry extended after sealing", subject: contracts.CallSubject("demo"),
			build: changed(func(r *contracts.CallRequest) { r.ExpiresUnixMS += 60_000 }),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "expired", subject: contracts.CallSubject("demo"),
			build: sealed(workertest.Call{Server: "demo", Tool: "whoami", Token: token, Expires: time.Now().Add(-time.Second)}, reply),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "sealed to another key", subject: contracts.CallSubject("demo"),
			build: sealedElsewhere(workertest.Call{Server: "demo", Tool: "whoami", Token: token}, reply),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "server field names another server than the subject", subject: contracts.CallSubject("limited"),
			build: sealed(workertest.Call{Server: "demo", Tool: "whoami", Token: token}, reply),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "server changed to match another subject", subject: contracts.CallSubject("limited"),
			build: changed(func(r *contracts.CallRequest) { r.Server = "limited" }),
			want:  contracts.CodeSealInvalid,
		},
		{
			name: "moved without a token", subject: contracts.CallSubject("limited"),
			build: sealed(workertest.Call{Server: "demo", Tool: "whoami"}, reply),
			want:  contracts.CodeInvalidRequest,
		},
		{
			name: "timeout bounded by the server's max_timeout", subject: contracts.CallSubject("limited"),
			build: sealed(workertest.Call{Server: "limited", Tool: demoserver.ToolSlow, Args: `{"ms":3000}`, Timeout: 5 * time.Second}, reply),
			want:  contracts.CodeUpstreamTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp := f.call(t, tt.subject, workertest.Wire(t, tt.build(t)))
			if got := workertest.Code(resp); got != tt.want {
				t.Errorf("code = %q (%+v), want %q", got, resp.Error, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}

	t.Run("tampered ciphertext", func(t *testing.T) {
		req := f.keys.Request(t, workertest.Call{Server: "demo", Tool: "whoami", Token: token}, reply)
		req.Token.Ciphertext[0] ^= 1
		if got := workertest.Code(f.call(t, contracts.CallSubject("demo"), workertest.Wire(t, req))); got != contracts.CodeSealInvalid {
			t.Errorf("code = %q, want seal_invalid", got)
		}
	})

	t.Run("replayed", func(t *testing.T) {
		data := workertest.Wire(t, f.keys.Request(t, workertest.Call{Server: "demo", Tool: "whoami", Token: token}, reply))
		if got := workertest.Code(f.call(t, contracts.CallSubject("demo"), data)); got != "" {
			t.Fatalf("first use: code = %q", got)
		}
		resp := f.call(t, contracts.CallSubject("demo"), data)
		if workertest.Code(resp) != contracts.CodeSealInvalid || resp.Error.Retryable {
			t.Errorf("replay: %+v, want non-retryable seal_invalid", resp.Error)
		}
	})

	t.Run("body edited or header moved on the bus", func(t *testing.T) {
		w := workertest.Wire(t, f.keys.Request(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"a"}`, Token: token}, reply))
		other := workertest.Wire(t, f.keys.Request(t, workertest.Call{Server: "demo", Tool: demoserver.ToolEcho, Args: `{"text":"b"}`, Token: token}, reply))
		for name, tampered := range map[string]contracts.Wire{
			"edited body":                  {Header: w.Header, Body: []byte(`{"text":"A"}`)},
			"re-encoded body":              {Header: w.Header, Body: []byte(`{"text": "a"}`)},
			"header moved to another body": {Header: w.Header, Body: other.Body},
		} {
			if resp := f.call(t, contracts.CallSubject("demo"), tampered); workertest.Code(resp) != contracts.CodeSealInvalid {
				t.Errorf("%s: %+v, want seal_invalid", name, resp.Error)
			}
		}
	})

	t.Run("auth none never opens the token", func(t *testing.T) {
		// Sealed to a key this worker does not hold: opening would fail.
		req := workertest.NewKeys(t).Request(t, workertest.Call{Server: "open", Tool: demoserver.ToolWhoami, Token: token}, reply)
		resp := f.call(t, contracts.CallSubject("open"), workertest.Wire(t, req))
		if resp.Error != nil {
			t.Fatalf("error %+v", resp.Error)
		}
		if got := workertest.Text(t, resp.Result); got != "" {
			t.Errorf("whoami = %q, want nothing", got)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		if out, ok := f.serve(t, handler.CallOp, contracts.CallSubject("demo"), contracts.Wire{Header: `{"type":`}); ok {
			t.Errorf("reply to a message without request id: %+v", out)
		}
		// No header: a v1 message in the body is not read.
		v1 := []byte(`{"type":"toolbus.call.request.v1","request_id":"r1","server":"demo","tool":"whoami","timeout_ms":1000}`)
		if out, ok := f.serve(t, handler.CallOp, contracts.CallSubject("demo"), contracts.Wire{Body: v1}); ok {
			t.Errorf("reply to a message without header: %+v", out)
		}
		resp := f.call(t, contracts.CallSubject("demo"), contracts.Wire{Header: `{"type":"toolbus.call.request.v2","request_id":"r1","server":"demo"}`})
		if workertest.Code(resp) != contracts.CodeInvalidRequest || resp.RequestID != "r1" {
			t.Errorf("reply %+v, want invalid_request for r1", resp)
		}
	})

	t.Run("one log line per request without the token", func(t *testing.T) {
		logs := f.logs.String()
		for _, secret := range []string{token, "user-token-1"} {
			if strings.Contains(logs, secret) {
				t.Fatalf("the token is in the logs:\n%s", logs)
			}
		}
		var requests int
		for _, line := range f.logs.Lines(t) {
			if line["message"] != "request" {
				continue
			}
			requests++
			for _, k := range []string{"request_id", "key_id", "server", "tool", "status", "duration_ms", "token_fp"} {
				if _, ok := line[k]; !ok {
					t.Errorf("log line without %s: %v", k, line)
				}
			}
		}
		if requests == 0 {
			t.Error("no request log lines")
		}
		if !strings.Contains(logs, contracts.Fingerprint(token)) {
			t.Error("the token's fingerprint is not logged")
		}
	})
}

func TestHandler_List(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	req := f.keys.ListRequest(t, "demo", "Bearer x", reply)
	resp := answer(t, f, handler.ListOp, contracts.ListSubject("demo"), workertest.Wire(t, req), contracts.DecodeListResponse)
	if resp.Error != nil {
		t.Fatalf("error %+v", resp.Error)
	}
	var tools []struct{ Name string }
	if err := json.Unmarshal(resp.Tools, &tools); err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools {
		if tool.Name == demoserver.ToolFail {
			t.Error("disallowed tool listed")
		}
	}
	if len(tools) != 7 { // echo, whoami, slow, big, ask, sample, touch
		t.Errorf("got %d tools, want 7", len(tools))
	}

	// Replayed on the call subject: a list seal does not open a call.
	call := &contracts.CallRequest{RequestHeader: req.RequestHeader, Tool: "whoami"}
	call.Type, call.TimeoutMS = contracts.TypeCallRequest, 1000
	if got := workertest.Code(f.call(t, contracts.CallSubject("demo"), workertest.Wire(t, call))); got != contracts.CodeSealInvalid {
		t.Errorf("list seal used for a call: code = %q, want seal_invalid", got)
	}
}

func TestRequest_Encode(t *testing.T) {
	t.Parallel()
	e := contracts.NewError(contracts.CodeOverloaded, "busy")
	// Refused before it is handled: the request id of a message that does
	// not validate is still answered.
	in := handler.CallOp.Decode(contracts.CallSubject("demo"), reply, contracts.Wire{Header: `{"request_id":"r9","type":"x","timeout_ms":"soon"}`})
	if in.Err == nil {
		t.Fatal("an invalid message decoded")
	}
	out, ok := in.Encode(nil, e)
	resp, err := contracts.DecodeCallResponse(out)
	if !ok || err != nil || resp.RequestID != "r9" || resp.Error.Code != contracts.CodeOverloaded || !resp.Error.Retryable || len(out.Body) != 0 {
		t.Errorf("Encode = %+v, %v", out, err)
	}
	if out, ok := handler.ListOp.Decode(contracts.ListSubject("demo"), reply, contracts.Wire{Header: `nope`}).Encode(nil, e); ok {
		t.Errorf("a reply without request id: %+v", out)
	}
	// The result is the body as the upstream gave it, byte for byte (the
	// bus never re-encodes it); the header carries the rest.
	in = handler.RPCOp.Decode(contracts.RPCSubject("demo"), reply, contracts.Wire{Header: `{"request_id":"r8"}`})
	result := json.RawMessage("{ \"contents\" : [ ] ,\n \"x\": \"<&>\" }")
	out, ok = in.Encode(result, nil)
	if r, err := contracts.DecodeRPCResponse(out); !ok || err != nil || string(out.Body) != string(result) || string(r.Result) != string(result) {
		t.Errorf("Encode(result) = %+v, %v", out, err)
	}
	// An error too long for the reply header is replaced, never dropped.
	out, ok = in.Encode(nil, contracts.NewError(contracts.CodeUpstreamError, "%s", strings.Repeat("x", contracts.MaxHeaderValue)))
	if r, err := contracts.DecodeRPCResponse(out); !ok || err != nil || r.Error.Code != contracts.CodeInternal {
		t.Errorf("Encode(huge error) = %+v, %v", out, err)
	}
}
