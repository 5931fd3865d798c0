// Package workertest holds helpers for the worker's tests: demo upstreams,
// configurations, sealed requests built with a real contracts.Sealer (calls,
// lists, relayed requests, jobs), a started worker pool (StartPool) and the
// check that a user token stayed sealed (CheckTokenKept). The log buffer and
// the bounded waits are contractstest's.
package workertest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

// StartDemo runs a demo MCP server until the test ends.
func StartDemo(t testing.TB, opts demoserver.Options, transport string) *demoserver.Running {
	t.Helper()
	run, err := demoserver.Start(t.Context(), opts, transport)
	if err != nil {
		t.Fatalf("demoserver.Start(%s): %v", transport, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractstest.WaitTimeout)
		defer cancel()
		_ = run.Close(ctx)
	})
	return run
}

// Config returns a normalized configuration with servers.
func Config(t testing.TB, servers map[string]*config.Server, worker config.Worker) *config.File {
	t.Helper()
	f := &config.File{MCPServers: servers, Worker: worker}
	if err := f.Normalize(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return f
}

// Keys is a sealing key pair.
type Keys struct {
	Sealer *contracts.Sealer
	Opener *contracts.Opener
}

// NewKeys returns a fresh key pair.
func NewKeys(t testing.TB) Keys {
	t.Helper()
	k, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return Keys{Sealer: contracts.NewSealer(k.Public(), 0), Opener: contracts.NewOpener(k)}
}

var nextID atomic.Int64

// Call describes a tools/call request.
type Call struct {
	Server, Tool string
	Args         string // JSON object, or empty
	Token        string // the user's credential; empty for none
	KeyID        string // default "team-a"
	Timeout      time.Duration
	Expires      time.Time // default now + Timeout + 5s
	EventsTo     string    // the subject of the call's events; empty for none
}

// Request returns the CallRequest for c, its token sealed for replyTo.
func (k Keys) Request(t testing.TB, c Call, replyTo string) *contracts.CallRequest {
	t.Helper()
	if c.KeyID == "" {
		c.KeyID = "team-a"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Expires.IsZero() {
		c.Expires = time.Now().Add(c.Timeout + 5*time.Second)
	}
	req := &contracts.CallRequest{
		RequestHeader: contracts.RequestHeader{
			Type:          contracts.TypeCallRequest,
			RequestID:     fmt.Sprintf("req-%d", nextID.Add(1)),
			Server:        c.Server,
			KeyID:         c.KeyID,
			TimeoutMS:     c.Timeout.Milliseconds(),
			ExpiresUnixMS: c.Expires.UnixMilli(),
		},
		Tool:     c.Tool,
		EventsTo: c.EventsTo,
	}
	if c.Args != "" {
		req.Arguments = json.RawMessage(c.Args)
	}
	k.seal(t, &req.RequestHeader, c.Token, req.Binding(replyTo))
	return req
}

// ListRequest returns a tools/list request for server, sealed for replyTo.
func (k Keys) ListRequest(t testing.TB, server, token, replyTo string) *contracts.ListRequest {
	t.Helper()
	req := &contracts.ListRequest{RequestHeader: header(contracts.TypeListRequest, "list", server)}
	k.seal(t, &req.RequestHeader, token, req.Binding(replyTo))
	return req
}

// RPCRequest returns a relayed MCP request of method with params (a JSON
// object, or empty) for server, sealed for replyTo.
func (k Keys) RPCRequest(t testing.TB, server, method, params, token, replyTo string) *contracts.RPCRequest {
	t.Helper()
	req := &contracts.RPCRequest{RequestHeader: header(contracts.TypeRPCRequest, "rpc", server), Method: method}
	if params != "" {
		req.Params = json.RawMessage(params)
	}
	k.seal(t, &req.RequestHeader, token, req.Binding(replyTo))
	return req
}

// header is the header of a request of type typ to server from team-a,
// its id idPrefix-N, with a budget of five seconds that expires in ten.
func header(typ, idPrefix, server string) contracts.RequestHeader {
	return contracts.RequestHeader{
		Type: typ, RequestID: fmt.Sprintf("%s-%d", idPrefix, nextID.Add(1)), Server: server,
		KeyID: "team-a", TimeoutMS: 5000, ExpiresUnixMS: time.Now().Add(10 * time.Second).UnixMilli(),
	}
}

// seal seals token, unless empty, into h for binding b.
func (k Keys) seal(t testing.TB, h *contracts.RequestHeader, token string, b contracts.Binding) {
	t.Helper()
	if token == "" {
		return
	}
	s, err := k.Sealer.Seal(contracts.NewToken(token), b)
	if err != nil {
		t.Fatal(err)
	}
	h.Token, h.TokenFP = s, contracts.Fingerprint(token)
}

// Encode marshals v: a v1 message (a job).
func Encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Wire encodes a synchronous request in wire format v2.
func Wire(t testing.TB, req contracts.Request) contracts.Wire {
	t.Helper()
	w, err := contracts.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Msg is the NATS message of the synchronous request req on subject, with
// reply subject reply (wire format v2: header and body).
func Msg(t testing.TB, subject, reply string, req contracts.Request) *nats.Msg {
	t.Helper()
	w := Wire(t, req)
	return &nats.Msg{Subject: subject, Reply: reply, Header: nats.Header{contracts.HeaderRequest: {w.Header}}, Data: w.Body}
}

// ReplyOf is the v2 reply in m: its header value and body.
func ReplyOf(m *nats.Msg) contracts.Wire {
	return contracts.Wire{Header: contracts.HeaderValue(m.Header[contracts.HeaderReply]), Body: m.Data}
}

// Code is the error code of a call's reply, "" for a result.
func Code(resp *contracts.CallResponse) contracts.ErrorCode {
	if resp.Error == nil {
		return ""
	}
	return resp.Error.Code
}

// Result is the part of an MCP CallToolResult the tests look at.
type Result struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	IsError bool `json:"isError"`
}

// Text returns the first text content of a CallToolResult.
func Text(t testing.TB, raw json.RawMessage) string {
	t.Helper()
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Content) == 0 {
		t.Fatalf("result %s: %v", raw, err)
	}
	return r.Content[0].Text
}

// CheckTokenKept fails the test when the user token or one of secrets
// crossed NATS in plaintext in one of recs or is in logs, or when logs lack
// the token's fingerprint, which the worker logs in its place.
func CheckTokenKept(t testing.TB, logs *contractstest.LogBuffer, token string, secrets []string, recs ...*contractstest.Recording) {
	t.Helper()
	for _, s := range append([]string{token}, secrets...) {
		for _, r := range recs {
			if r.Contains([]byte(s)) {
				t.Errorf("%q crossed NATS in plaintext", s)
			}
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("%q is in the logs", s)
		}
	}
	if !strings.Contains(logs.String(), contracts.Fingerprint(token)) {
		t.Error("the token's fingerprint is not in the logs")
	}
}

// UpstreamSawCall reports whether the demo server received a tools/call.
func UpstreamSawCall(run *demoserver.Running) bool {
	for _, m := range run.Recorder.RPCMethods() {
		if m == "tools/call" {
			return true
		}
	}
	return false
}
