package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenMessages is one fixed instance of every wire message. Their JSON is
// pinned in testdata/: a diff there is a wire change and needs a new version.
func goldenMessages() map[string]any {
	sealed := &Sealed{
		Version: 2, KeyID: "0123456789abcdef",
		Enc:        bytes.Repeat([]byte{1}, encSize),
		Nonce:      bytes.Repeat([]byte{2}, sealNonceSize),
		Ciphertext: bytes.Repeat([]byte{3}, 40),
	}
	hdr := func(typ, id string, timeoutMS int64) RequestHeader {
		return RequestHeader{Type: typ, RequestID: id, Server: "jira", KeyID: "team-a", TimeoutMS: timeoutMS,
			ExpiresUnixMS: 1798761600000, Token: sealed, TokenFP: "fp_0123456789ab"}
	}
	return map[string]any{
		"call_request": &CallRequest{
			RequestHeader: hdr(TypeCallRequest, "req-1", 30000), Tool: "create_issue",
			Arguments: json.RawMessage(`{"summary":"New ticket"}`),
		},
		"call_response_result": NewCallResponse("req-1", json.RawMessage(`{"content":[{"type":"text","text":"ok"}]}`), nil),
		"call_response_error": NewCallResponse("req-1", nil,
			&Error{Code: CodeUpstreamUnauthorized, Message: "upstream rejected the credential",
				WWWAuthenticate: `Bearer realm="jira"`}),
		"list_request": &ListRequest{RequestHeader: hdr(TypeListRequest, "req-2", 10000)},
		"job_request": &JobRequest{
			RequestHeader: hdr(TypeJobRequest, "0194f0a1b2c3d4e5f60718293a4b", 600000),
			Owner:         "00112233445566778899aabbccddeeff", Tool: "bulk_import", Arguments: json.RawMessage(`{"project":"TEST"}`),
		},
		"job_record": &JobRecord{
			Type: TypeJobRecord, ID: "0194f0a1b2c3d4e5f60718293a4b", Owner: "00112233445566778899aabbccddeeff",
			KeyID: "team-a", Server: "jira", Tool: "bulk_import", Status: JobRunning,
			CreatedAt: time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC), StartedAt: ptr(time.Date(2026, 11, 27, 15, 0, 1, 0, time.UTC)),
			Attempts: 1, Progress: &JobProgress{Progress: 3, Total: ptr(10.0), Message: "importing"},
			IdempotencyKey: "ffeeddccbbaa99887766554433221100",
		},
		"rpc_request": &RPCRequest{
			RequestHeader: hdr(TypeRPCRequest, "req-3", 10000), Method: "resources/read",
			Params: json.RawMessage(`{"uri":"jira://issue/TEST-1"}`),
		},
		"rpc_response": NewRPCResponse("req-3", json.RawMessage(`{"contents":[{"uri":"jira://issue/TEST-1","text":"TEST-1"}]}`), nil),
		"call_event": &CallEvent{
			Type: TypeCallEvent, RequestID: "req-1",
			Progress: &JobProgress{Progress: 1, Total: ptr(4.0), Message: "step 1"},
		},
		"call_event_request": &CallEvent{
			Type: TypeCallEvent, RequestID: "req-1",
			Request: &ClientRequest{ID: "Yx3kq0Zr5sT9vW2bC4dE6f", Method: "elicitation/create",
				Params: json.RawMessage(`{"message":"Which project?","requestedSchema":{"type":"object"}}`)},
		},
		"client_answer": &ClientAnswer{
			Type: TypeClientAnswer, RequestID: "req-1", ID: "Yx3kq0Zr5sT9vW2bC4dE6f", KeyID: "team-a",
			TokenFP: "fp_0123456789ab", Result: json.RawMessage(`{"action":"accept","content":{"project":"TEST"}}`),
		},
		"server_notification": &ServerNotification{
			Type: TypeServerNotification, Server: "jira",
			Method: "notifications/resources/updated", Params: json.RawMessage(`{"uri":"jira://issue/TEST-1"}`),
		},
		"unsubscribe": &Unsubscribe{
			Type: TypeUnsubscribe, Server: "jira", Subscriber: "00112233445566778899aabbccddeeff", URI: "jira://issue/TEST-1",
		},
		"list_response":    NewListResponse("req-2", json.RawMessage(`[{"name":"create_issue","inputSchema":{"type":"object"}}]`), nil),
		"ping_response":    &PingResponse{Type: TypePingResponse, Worker: "worker-1", Servers: []string{"github", "jira"}},
		"ingress_presence": &IngressPresence{Type: TypeIngressPresence, Replica: "Ygn2bQ0kJx8v2Q7Yb6mG1a"},
		"managed_key": &ManagedKey{
			Type: TypeManagedKey, Name: "team-c", Servers: []string{"jira"}, Tools: []string{"jira-create_issue"},
			CreatedAt: time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC),
		},
	}
}

func ptr[T any](v T) *T { return &v }

// TestMessages_Golden compares each message's encoding with its golden file
// as JSON values (members and values, not their order): a message's
// members are where its embedded header puts them, and a JSON reader does
// not see the order. -update writes the files that are missing or differ.
//
// A v2 message (wire.go) has two files: <name>.json is its header value
// (the message's JSON, indented here for reading), <name>.body its body,
// compared byte for byte (none for a message without a body).
func TestMessages_Golden(t *testing.T) {
	for name, msg := range goldenMessages() {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(msg, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".json")
			want, err := os.ReadFile(path)
			if *update && (err != nil || !sameJSON(t, got, want)) {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				want, err = got, nil
			}
			if err != nil {
				t.Fatalf("%v (run go test ./contracts -update to create it)", err)
			}
			if !sameJSON(t, got, want) {
				t.Fatalf("wire encoding changed:\n got: %s\nwant: %s", got, want)
			}
			if b, ok := msg.(Bodied); ok {
				goldenBody(t, name, b)
			}
		})
	}
}

// goldenBody compares a v2 message's wire form with its golden header and
// body: the header value is one line, and the body is the payload as is.
func goldenBody(t *testing.T, name string, msg Bodied) {
	t.Helper()
	var w Wire
	var err error
	switch m := msg.(type) {
	case Request:
		w, err = EncodeRequest(m)
	case Reply:
		w, err = EncodeReply(m)
	default:
		t.Fatalf("%T is neither a request nor a reply", msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(w.Header, "\r\n") || strings.TrimSpace(w.Header) != w.Header {
		t.Fatalf("header value is not one trimmed line: %q", w.Header)
	}
	hdr, _ := json.Marshal(msg)
	if w.Header != string(hdr) {
		t.Fatalf("header %s, want the message's JSON %s", w.Header, hdr)
	}
	path := filepath.Join("testdata", name+".body")
	want, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && len(w.Body) == 0 {
		return
	}
	if *update && (err != nil || !bytes.Equal(w.Body, want)) {
		if err := os.WriteFile(path, w.Body, 0o644); err != nil {
			t.Fatal(err)
		}
		want, err = w.Body, nil
	}
	if err != nil {
		t.Fatalf("%v (run go test ./contracts -update to create it)", err)
	}
	if !bytes.Equal(w.Body, want) {
		t.Fatalf("body changed:\n got: %s\nwant: %s", w.Body, want)
	}
}

// sameJSON reports whether a and b encode the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var av, bv any
	if err := json.Unmarshal(a, &av); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &bv); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(av, bv)
}

// TestMessages_EveryTypeHasAGoldenFile: each message type constant has a
// golden message of its type.
func TestMessages_EveryTypeHasAGoldenFile(t *testing.T) {
	seen := map[string]bool{}
	for _, msg := range goldenMessages() {
		data, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Type string }
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		seen[m.Type] = true
	}
	for _, typ := range []string{
		TypeCallRequest, TypeCallResponse, TypeListRequest, TypeListResponse, TypeRPCRequest, TypeRPCResponse,
		TypeCallEvent, TypeClientAnswer, TypeJobRequest, TypeJobRecord, TypeServerNotification, TypeUnsubscribe,
		TypePingResponse, TypeManagedKey, TypeIngressPresence,
	} {
		if !seen[typ] {
			t.Errorf("no golden message of type %s", typ)
		}
	}
}

func TestDecode_GoldenRoundTrip(t *testing.T) {
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	// wire is a v2 message as NATS carries it: its golden header on one
	// line, its golden body (if any) as is.
	wire := func(name string) Wire {
		var hdr bytes.Buffer
		if err := json.Compact(&hdr, read(name)); err != nil {
			t.Fatal(err)
		}
		body, err := os.ReadFile(filepath.Join("testdata", name+".body"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return Wire{Header: hdr.String(), Body: body}
	}
	if r, err := DecodeCallRequest(wire("call_request")); err != nil || r.Tool != "create_issue" || r.Token == nil || r.Timeout() != 30*time.Second ||
		string(r.Arguments) != `{"summary":"New ticket"}` {
		t.Fatalf("call_request: %+v, %v", r, err)
	}
	if r, err := DecodeListRequest(wire("list_request")); err != nil || r.Server != "jira" {
		t.Fatalf("list_request: %+v, %v", r, err)
	}
	if r, err := DecodeCallResponse(wire("call_response_error")); err != nil || r.Error.Code != CodeUpstreamUnauthorized {
		t.Fatalf("call_response_error: %+v, %v", r, err)
	}
	if r, err := DecodeCallResponse(wire("call_response_result")); err != nil || len(r.Result) == 0 {
		t.Fatalf("call_response_result: %+v, %v", r, err)
	}
	if r, err := DecodeListResponse(wire("list_response")); err != nil || len(r.Tools) == 0 {
		t.Fatalf("list_response: %+v, %v", r, err)
	}
	if r, err := DecodeJobRequest(read("job_request")); err != nil || r.JobID() != "0194f0a1b2c3d4e5f60718293a4b" || r.Binding().ReplyTo != JobKey(r.Owner, r.JobID()) {
		t.Fatalf("job_request: %+v, %v", r, err)
	}
	if r, err := DecodeJobRecord(read("job_record")); err != nil || r.Status != JobRunning || r.Progress.Message != "importing" {
		t.Fatalf("job_record: %+v, %v", r, err)
	}
	if r, err := DecodeRPCResponse(wire("rpc_response")); err != nil || r.RequestID != "req-3" || len(r.Result) == 0 {
		t.Fatalf("rpc_response: %+v, %v", r, err)
	}
	if r, err := DecodeRPCRequest(wire("rpc_request")); err != nil || r.Method != "resources/read" || r.Binding("x").Op != "resources/read" {
		t.Fatalf("rpc_request: %+v, %v", r, err)
	}
	if r, err := DecodeManagedKey(read("managed_key")); err != nil || r.Name != "team-c" {
		t.Fatalf("managed_key: %+v, %v", r, err)
	}
	if r, err := DecodeUnsubscribe(read("unsubscribe")); err != nil || r.URI != "jira://issue/TEST-1" {
		t.Fatalf("unsubscribe: %+v, %v", r, err)
	}
	if r, err := DecodeServerNotification(read("server_notification")); err != nil || r.Server != "jira" {
		t.Fatalf("server_notification: %+v, %v", r, err)
	}
	if r, err := DecodeClientAnswer(read("client_answer")); err != nil || r.KeyID != "team-a" || len(r.Result) == 0 {
		t.Fatalf("client_answer: %+v, %v", r, err)
	}
}

func TestDecodeCallRequest_RejectsBadMessages(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{
			"type": TypeCallRequest, "request_id": "r", "server": "jira", "tool": "t",
			"key_id": "k", "timeout_ms": 1000,
		}
	}
	tests := []struct {
		name   string
		change func(m map[string]any)
		body   string
	}{
		{"wrong type", func(m map[string]any) { m["type"] = TypeListRequest }, ""},
		{"previous version", func(m map[string]any) { m["type"] = "toolbus.call.request.v1" }, ""},
		{"future version", func(m map[string]any) { m["type"] = "toolbus.call.request.v3" }, ""},
		{"no request id", func(m map[string]any) { delete(m, "request_id") }, ""},
		{"long request id", func(m map[string]any) { m["request_id"] = strings.Repeat("r", 129) }, ""},
		// "a.b" and ">" are server names since LiteLLM's names are accepted
		// (their subject token is escaped: ServerToken); these are not.
		{"server with a comma", func(m map[string]any) { m["server"] = "a,b" }, ""},
		{"server with a slash", func(m map[string]any) { m["server"] = "a/b" }, ""},
		{"server with a control character", func(m map[string]any) { m["server"] = "a\nb" }, ""},
		{"no tool", func(m map[string]any) { delete(m, "tool") }, ""},
		{"arguments not an object", func(map[string]any) {}, "[1]"},
		{"arguments a string", func(map[string]any) {}, `"{}"`},
		{"zero timeout", func(m map[string]any) { m["timeout_ms"] = 0 }, ""},
		{"timeout as string", func(m map[string]any) { m["timeout_ms"] = "1000" }, ""},
		{"token without expiry", func(m map[string]any) {
			m["token"] = map[string]any{"v": 2, "kid": "k", "enc": make([]byte, encSize), "nonce": make([]byte, sealNonceSize), "ct": make([]byte, 32)}
		}, ""},
		{"short nonce", func(m map[string]any) {
			m["expires_unix_ms"] = 1
			m["token"] = map[string]any{"v": 2, "kid": "k", "enc": make([]byte, encSize), "nonce": []byte{1}, "ct": make([]byte, 32)}
		}, ""},
		{"oversized token", func(m map[string]any) {
			m["expires_unix_ms"] = 1
			m["token"] = map[string]any{"v": 2, "kid": "k", "enc": make([]byte, encSize), "nonce": make([]byte, sealNonceSize), "ct": make([]byte, maxSealedToken+1)}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.change(m)
			hdr, _ := json.Marshal(m)
			if _, err := DecodeCallRequest(Wire{Header: string(hdr), Body: []byte(tt.body)}); !errors.Is(err, ErrBadMessage) {
				t.Fatalf("got %v, want ErrBadMessage", err)
			}
		})
	}
	hdr, _ := json.Marshal(valid())
	for _, body := range []string{"", "{}", ` {"a": [1, 2]}`} {
		if _, err := DecodeCallRequest(Wire{Header: string(hdr), Body: []byte(body)}); err != nil {
			t.Fatalf("valid message with body %q rejected: %v", body, err)
		}
	}
	// The header itself: missing, garbled, too long, not UTF-8.
	for name, w := range map[string]Wire{
		"no header":          {Body: []byte(`{}`)},
		"garbled header":     {Header: "not json", Body: []byte(`{}`)},
		"truncated header":   {Header: string(hdr[:len(hdr)-1])},
		"header not object":  {Header: `["toolbus.call.request.v2"]`},
		"header not UTF-8":   {Header: `{"type":"` + TypeCallRequest + "\xff" + `"}`},
		"header too long":    {Header: `{"type":"` + TypeCallRequest + `","pad":"` + strings.Repeat("x", MaxHeaderValue) + `"}`},
		"v1 message as body": {Body: []byte(`{"type":"toolbus.call.request.v1","request_id":"r","server":"jira","tool":"t","timeout_ms":1000}`)},
	} {
		if _, err := DecodeCallRequest(w); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: got %v, want ErrBadMessage", name, err)
		}
	}
	// A list request has no body.
	list, _ := json.Marshal(map[string]any{"type": TypeListRequest, "request_id": "r", "server": "jira", "timeout_ms": 1000})
	if _, err := DecodeListRequest(Wire{Header: string(list)}); err != nil {
		t.Fatalf("list request: %v", err)
	}
	if _, err := DecodeListRequest(Wire{Header: string(list), Body: []byte(`{}`)}); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("list request with a body: got %v, want ErrBadMessage", err)
	}
}

// TestEncodeRequest_BodyIsThePayloadAsIs: the arguments travel as the body
// byte for byte - whitespace, escapes and all - and decode to the same
// bytes; the header is one line without them.
func TestEncodeRequest_BodyIsThePayloadAsIs(t *testing.T) {
	args := json.RawMessage("{ \"q\" : \"<a&b>\\u00e9\",\n \"n\": 1 }")
	req := &CallRequest{
		RequestHeader: RequestHeader{Type: TypeCallRequest, RequestID: "r", Server: "jira", KeyID: "k", TimeoutMS: 1000},
		Tool:          "t\n<é>", Arguments: args, EventsTo: "_INBOX.x.ev.r", ClientRequests: []string{"sampling/createMessage"},
	}
	w, err := EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if &w.Body[0] != &args[0] || strings.ContainsAny(w.Header, "\r\n") || strings.Contains(w.Header, "arguments") {
		t.Fatalf("body not the arguments, or header not one line without them: %q", w.Header)
	}
	back, err := DecodeCallRequest(w)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Arguments) != string(args) || back.Tool != req.Tool || back.EventsTo != req.EventsTo || len(back.ClientRequests) != 1 {
		t.Fatalf("round trip: %+v", back)
	}
	// A header past the bound does not encode.
	req.Tool = strings.Repeat("x", MaxHeaderValue)
	if _, err := EncodeRequest(req); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("oversized header encoded: %v", err)
	}
}

func TestDecodeCallResponse_ExactlyOneOutcome(t *testing.T) {
	for _, w := range []Wire{
		{Header: `{"type":"toolbus.call.response.v2","request_id":"r"}`},
		{Header: `{"type":"toolbus.call.response.v2","request_id":"r","error":{"code":"internal"}}`, Body: []byte(`{}`)},
		{Header: `{"type":"toolbus.call.response.v2","request_id":"r","error":{"message":"no code"}}`},
		{Header: `{"type":"toolbus.call.response.v1","request_id":"r"}`, Body: []byte(`{}`)},
		{Body: []byte(`{"type":"toolbus.call.response.v1","request_id":"r","result":{}}`)},
		{Header: `{"type":"toolbus.call.response.v2"`, Body: []byte(`{}`)},
	} {
		if _, err := DecodeCallResponse(w); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%q %s: got %v, want ErrBadMessage", w.Header, w.Body, err)
		}
	}
	resp, err := EncodeReply(NewCallResponse("r", json.RawMessage(`{"content":[]}`), nil))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := DecodeCallResponse(resp); err != nil || string(r.Result) != `{"content":[]}` || resp.Header != `{"type":"toolbus.call.response.v2","request_id":"r"}` {
		t.Fatalf("%+v %+v %v", resp, r, err)
	}
	resp, _ = EncodeReply(NewCallResponse("r", json.RawMessage(`{"content":[]}`), NewError(CodeForbidden, "no")))
	if r, err := DecodeCallResponse(resp); err != nil || len(resp.Body) != 0 || r.Error.Code != CodeForbidden {
		t.Fatalf("error reply: %+v %+v %v", resp, r, err)
	}
}

func TestSubjects(t *testing.T) {
	if got := CallSubject("jira"); got != "toolbus.v2.call.jira" {
		t.Fatalf("CallSubject = %q", got)
	}
	for _, bad := range []string{"", "a.b", "a b", "*", ">", strings.Repeat("x", 65), "ünï"} {
		if ValidServerName(bad) {
			t.Errorf("ValidServerName(%q) = true", bad)
		}
	}
}

func TestParseSubject(t *testing.T) {
	jobID := "0194f0a1b2c3d4e5f60718293a4b"
	for _, tt := range []struct {
		subject string
		want    Subject
	}{
		{CallSubject("my-server_1"), Subject{Kind: SubjectCall, Server: "my-server_1"}},
		{ListSubject("jira"), Subject{Kind: SubjectList, Server: "jira"}},
		{RPCSubject("jira"), Subject{Kind: SubjectRPC, Server: "jira"}},
		{JobSubject("jira", KeyTag("team-a")), Subject{Kind: SubjectJob, Server: "jira", KeyTag: KeyTag("team-a")}},
		{CancelSubject(jobID), Subject{Kind: SubjectCancel, ID: jobID}},
		{CancelSubject("GNHTKyA357k0WcRrj0BYt2"), Subject{Kind: SubjectCancel, ID: "GNHTKyA357k0WcRrj0BYt2"}},
		{UnsubscribeSubject("jira"), Subject{Kind: SubjectUnsubscribe, Server: "jira"}},
	} {
		if got, ok := ParseSubject(tt.subject); !ok || got != tt.want {
			t.Errorf("ParseSubject(%q) = %+v, %v; want %+v", tt.subject, got, ok, tt.want)
		}
	}
	for _, bad := range []string{
		"", "toolbus.v1", "toolbus.v2", "toolbus.v1.call.jira", "toolbus.v2.jobs.jira.k", "toolbus.v2.call", "toolbus.v2.call.", "toolbus.v2.call.a.b", "toolbus.v2.call.*",
		"toolbus.v3.call.jira", "other.v2.call.jira", "toolbus.v2.ping", PingSubject, AllCallsSubject,
		"toolbus.v1.jobs.jira", "toolbus.v1.jobs.jira.*", "toolbus.v1.jobs.jira.a.b", CancelSubject("../x"),
		"toolbus.v2.cancel.>", AnswerSubject("r", "n"), NotifySubject("jira", "s"),
	} {
		if got, ok := ParseSubject(bad); ok {
			t.Errorf("ParseSubject(%q) = %+v, want refused", bad, got)
		}
	}
}

func TestErrorCode_Retryable(t *testing.T) {
	for code, want := range map[ErrorCode]bool{
		CodeNoWorkers: true, CodeUpstreamTimeout: true, CodeOverloaded: true,
		CodeUnauthorized: false, CodeSealInvalid: false, CodeUpstreamUnauthorized: false,
	} {
		if got := NewError(code, "x").Retryable; got != want {
			t.Errorf("%s retryable = %v, want %v", code, got, want)
		}
	}
	if !errors.Is(NewError(CodeForbidden, "a"), &Error{Code: CodeForbidden}) {
		t.Fatal("errors.Is does not match by code")
	}
}
