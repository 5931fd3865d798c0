package mcpserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

var clientMessages = []string{
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo-echo","arguments":{"text":"hi"}}}`,
	`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"e","arguments":{"n":1e400},"_meta":{"progressToken":7},"task":{"ttl":60}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{"a":1},"arguments":{"b":2}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":null}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":[1]}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","Arguments":{"a":1}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{"a":1},"ARGUMENTS":{"b":1}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"e","arguments":{"a":1}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"params":{"name":"e","arguments":{"a":2}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"param\u0073":{"name":"e"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","argument\u0073":{"a":1}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`,
	`{"jsonrpc":"2.0","id":1,"Method":"tools/call","METHOD":"ping","params":{}}`,
	`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
	`{"jsonrpc":2,"id":1,"method":"ping"}`,
	` { "jsonrpc" : "2.0" , "id" : 1 , "method" : "tools/call" , "params" : { "name" : "e" , "arguments" : { } } } `,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{}}}}`,
	`null`, `"x"`, `1`, ``, `{}`, `{"id":[1]}`,
}

// parseMessage decodes every message as json.Unmarshal did, and the
// params of tools/call as asParams did; both as the decode before
// readTop and callParams.read (the reference below) did.
func TestParseMessage_AgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, body := range clientMessages {
		checkParseMessage(t, []byte(body))
	}
	for _, body := range trickyMessages {
		checkParseMessage(t, []byte(body))
	}
}

// trickyMessages are messages a reader of the usual shape must leave to
// encoding/json, or read exactly as it would.
var trickyMessages = []string{
	`{"jsonrpc":"2.0","id":"s-1","method":"tools/call","params":{"name":"a-b","arguments":{"x":[1,{"y":"}"}]},"_meta":{"progressToken":"t"}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":1},"name":"e","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":null}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":"x"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":[1]}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"progressToken":1},"_meta":{"other":2}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"progressToken":1},"_meta":null}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_META":{"progressToken":1}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"progresstoken":1}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"progressToken":1,"progressToken":2}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"progress\u0054oken":3}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"a\"b":3,"progressToken":4}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"\u00e9":3,"progressToken":4}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"é":3,"progressToken":4}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{"progreſtoken":5}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","_meta":{ "progressToken" : [ 1 ] , "x" : { } }}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e\u0041","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\xff","arguments":{}}}`,
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\xfe\",\"arguments\":{}}}",
	"{\"jsonrpc\":\"2.0\xff\",\"id\":1,\"method\":\"tools/c\xc3\",\"params\":{}}",
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null,"arguments":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1,"arguments":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":null}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"a"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Task":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","task":{"ttl":1},"task":null}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","nam":1,"names":2,"other":[{"name":"z"}]}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{ }}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":7}`,
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":\t{\r\n\"name\"\n:\t\"e\" ,\"arguments\" :\r{ \"a\" : \"\\\"}\" } \n} \n}",
	`{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"e"}}`,
	`{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call"}`,
	`{"jsonrpc":"2.0","id":1,"id":null,"method":"tools/call"}`,
	`{"jsonrpc":"2.0","ID":1,"method":"tools/call"}`,
	`{"jsonrpc":"2.0","Id":1,"id":2,"method":"tools/call"}`,
	`{"JSONRPC":"2.0","id":1,"method":"tools/call"}`,
	`{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"ping"}`,
	`{"jsonrpc":"2.0","jsonrpc":null,"id":1,"method":"ping"}`,
	`{"jsonrpc":null,"id":1,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":1,"method":null}`,
	`{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/list"}`,
	`{"jsonrpc":"2.0","id":1,"method":"tool\u0073/call","params":{"name":"e"}}`,
	`{"jsonrpc":"2\u002e0","id":1,"method":"ping"}`,
	`{"jsonrpc":"2.0","i\u0064":1,"method":"ping"}`,
	`{"jsonrpc":"2.0","\u00e9":1,"id":1,"method":"ping"}`,
	`{"jsonrpc":"2.0","é":1,"id":1,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":1,"method":"ping","extra":{"params":{"name":"x"}},"more":[1,"]",{}]}`,
	`{"jsonrpc":"2.0","id":1,"result":null,"error":{"code":1,"message":"x"}}`,
	`{"jsonrpc":"2.0","id":1,"result":{"a":1},"result":{"b":2}}`,
	`{"jsonrpc":"2.0","id":1,"Result":{"a":1}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":-1},"ERROR":{}}`,
	`{"jsonrpc":"2.0","id":-0,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":1.0,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":1e400,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":"a\"b","method":"ping"}`,
	`{"jsonrpc":"2.0","id":true,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":{},"method":"ping"}`,
	`{"jsonrpc":"2.0","id":123456789012345678,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{"a":1}},"params":null}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{"a":1},"arguments":null}}`,
	`{}`, ` {} `, `{"a":1}`, `[]`, `true`, `{"jsonrpc":"2.0"`, `{"id":1,}`,
}

func checkParseMessage(t *testing.T, body []byte) {
	t.Helper()
	var want message
	wantErr := json.Unmarshal(body, &want)
	got, gotErr := parseMessage(body)
	ref, refErr := parseMessageReference(body)
	if (wantErr == nil) != (gotErr == nil) || (refErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: error %v, want %v (reference %v)", body, gotErr, wantErr, refErr)
	}
	if wantErr != nil {
		return
	}
	for _, w := range []*message{&want, ref} {
		if got.JSONRPC != w.JSONRPC || got.Method != w.Method || !bytes.Equal(got.ID, w.ID) ||
			!bytes.Equal(got.Params, w.Params) || !bytes.Equal(got.Result, w.Result) || !bytes.Equal(got.Error, w.Error) {
			t.Fatalf("%q: %+v, want %+v", body, got, w)
		}
		if got.hasID() != w.hasID() || got.isRequest() != w.isRequest() || got.isNotification() != w.isNotification() ||
			got.isResponse() != w.isResponse() || validID(got.ID) != validIDReference(w.ID) || string(appendIDKey(nil, got.ID)) != idKeyReference(w.ID) {
			t.Fatalf("%q: kind or id differs from %+v", body, w)
		}
	}
	if (got.scan == nil) != (ref.scan == nil) || got.params != ref.params {
		t.Fatalf("%q: scanned %v %d, reference %v %d", body, got.scan != nil, got.params, ref.scan != nil, ref.params)
	}
	var wantP callParams
	wantE := asParams(want.Params, &wantP)
	gotP, scanned, gotE := got.toolCallParams()
	refP, refScanned, refE := ref.toolCallParamsReference()
	if (wantE == nil) != (gotE == nil) || !reflect.DeepEqual(gotE, refE) {
		t.Fatalf("%q: params error %v, want %v (reference %v)", body, gotE, wantE, refE)
	}
	if (scanned == nil) != (refScanned == nil) || scanned != nil && (got.scan == nil || !reflect.DeepEqual(*scanned, *refScanned)) {
		t.Fatalf("%q: arguments scanned %+v, reference %+v", body, scanned, refScanned)
	}
	if wantE == nil && (!reflect.DeepEqual(gotP, wantP) || !reflect.DeepEqual(gotP, refP)) {
		t.Fatalf("%q: params %+v, want %+v (reference %+v)", body, gotP, wantP, refP)
	}
	if gotP.Meta != nil && validID(gotP.Meta.ProgressToken) != validIDReference(gotP.Meta.ProgressToken) {
		t.Fatalf("%q: progress token %q valid differs", body, gotP.Meta.ProgressToken)
	}
}

// parseMessageReference is parseMessage before readTop: encoding/json
// decodes what is left without the params (the reference).
func parseMessageReference(body []byte) (*message, error) {
	scan, err := contracts.ScanJSON(body, messageWant)
	if err != nil {
		return nil, err
	}
	msg := &message{params: -1}
	if scan.Aliased {
		if err := json.Unmarshal(body, msg); err != nil {
			return nil, err
		}
		return msg, nil
	}
	if err := json.Unmarshal(scan.Cut(-1), msg); err != nil {
		return nil, err
	}
	msg.Params = nil
	if i := scan.Last(-1, "params"); i >= 0 {
		msg.scan, msg.params, msg.Params = &scan, i, scan.Members[i].Value
	}
	return msg, nil
}

// toolCallParamsReference is the decode of tools/call's params before
// callParams.read: encoding/json decodes the params without the arguments.
func (m *message) toolCallParamsReference() (callParams, *contracts.JSONMember, *rpcError) {
	var p callParams
	var scanned *contracts.JSONMember
	if m.scan == nil {
		if e := asParams(m.Params, &p); e != nil {
			return callParams{}, nil, e
		}
		return p, nil, nil
	}
	if e := asParams(m.scan.Cut(m.params), &p); e != nil {
		return callParams{}, nil, e
	}
	if i := m.scan.Last(m.params, "params.arguments"); i >= 0 {
		scanned = &m.scan.Members[i]
		p.Arguments = scanned.Value
	}
	return p, scanned, nil
}

// validIDReference is validID before plainID (the reference).
func validIDReference(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

// idKeyReference is idKey, which appendIDKey replaced (the reference).
func idKeyReference(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	switch id := v.(type) {
	case string:
		return "s:" + id
	case float64:
		return "n:" + strconv.FormatFloat(id, 'g', -1, 64)
	}
	return ""
}

// callIDReference is callID before callIDOf (the reference).
func callIDReference(owner, scope, session string, id []byte) string {
	h := sha256.New()
	for _, part := range []string{"toolbus.mcp.call.v1", owner, scope, session, idKeyReference(id)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "mcp" + hex.EncodeToString(h.Sum(nil)[:16])
}

// validID, appendIDKey and callIDOf answer every id as decoding it with
// encoding/json did, whatever its spelling (valid JSON or not).
func TestIDs_AgreeWithEncodingJSON(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 300)
	for _, id := range idTexts {
		checkID(t, []byte(id), "key:alice", "srv", "sess")
		checkID(t, []byte(id), long, long, "")
	}
}

var idTexts = []string{
	`1`, `0`, `-1`, `-0`, `00`, `01`, `-01`, `1.0`, `1e3`, `1E3`, `-`, `+1`, `1.`, `.5`, `123456789012345`, `1234567890123456`,
	`999999999999999`, `-999999999999999`, `9007199254740993`, `1e400`, `1000000`, `10000000000`,
	`"a"`, `""`, `"a\"b"`, `"a\\b"`, `"\u00e9"`, "\"\xff\"", "\"a\tb\"", `"é"`, `"a"b"`, `"a`, `a"`, `"`, `"\/"`,
	`null`, `true`, `false`, `{}`, `[]`, `[1]`, ` 1`, `1 `, ` "a"`, ``, `1,2`, `"a" `,
}

func checkID(t *testing.T, id []byte, owner, scope, session string) {
	t.Helper()
	if got, want := validID(id), validIDReference(id); got != want {
		t.Fatalf("validID(%q) = %v, want %v", id, got, want)
	}
	if got, want := string(appendIDKey([]byte("x"), id)), "x"+idKeyReference(id); got != want {
		t.Fatalf("appendIDKey(x, %q) = %q, want %q", id, got, want)
	}
	if got, want := callIDOf(owner, scope, session, id), callIDReference(owner, scope, session, id); got != want {
		t.Fatalf("callIDOf(%q) = %q, want %q", id, got, want)
	}
}

func FuzzIDs(f *testing.F) {
	for _, id := range idTexts {
		f.Add([]byte(id))
	}
	f.Fuzz(func(t *testing.T, id []byte) {
		checkID(t, id, "o", "s", "x")
	})
}

func FuzzParseMessage(f *testing.F) {
	for _, body := range clientMessages {
		f.Add([]byte(body))
	}
	for _, body := range trickyMessages {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParseMessage(t, body)
	})
}

// A result is spliced into its response as it is: the same JSON value as
// encoding it would give, and an invalid id or error still encodes.
func TestEncodeResponse_SplicesTheResult(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ id, result string }{
		{`1`, `{"content":[{"type":"text","text":"<b>&amp;</b>\u2028"}],"isError":false}`},
		{`"req-1"`, "{\n  \"content\": [ ],\n  \"n\": 1.50\n}"},
		{``, ``},
		{`"x"`, `{}`},
	} {
		got := encodeResponse(json.RawMessage(tt.id), json.RawMessage(tt.result), nil)
		var v struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Result  json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		wantID, wantResult := tt.id, tt.result
		if wantID == "" {
			wantID = "null"
		}
		if wantResult == "" {
			wantResult = "{}"
		}
		if v.JSONRPC != "2.0" || string(v.ID) != wantID || string(v.Result) != wantResult {
			t.Errorf("encodeResponse(%s, %s) = %s", tt.id, tt.result, got)
		}
	}
	got := encodeResponse(json.RawMessage(`7`), nil, newRPCError(codeInvalidParams, "bad"))
	if string(got) != `{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad"}}` {
		t.Errorf("error response %s", got)
	}
}

// An SSE event's data is one line even when the JSON has line breaks
// between its tokens.
func TestWriteEvent_OneDataLine(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	data := []byte("{\r\n  \"a\": \"x\\ny\",\n  \"b\": [1,\r2]\n}")
	orig := string(data)
	if err := writeEvent(&b, "message", data); err != nil {
		t.Fatal(err)
	}
	if string(data) != orig {
		t.Error("writeEvent changed its input")
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n\n"), "\n")
	if len(lines) != 2 || lines[0] != "event: message" || !strings.HasPrefix(lines[1], "data: ") {
		t.Fatalf("event %q", b.String())
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[1], "data: ")), &v); err != nil || v["a"] != "x\ny" {
		t.Fatalf("data %q: %v %v", lines[1], v, err)
	}
}

// BenchmarkParseToolCall_1MiB is a tools/call with 1 MiB of arguments up to
// the front door: the message, its params, the arguments' numbers.
func BenchmarkParseToolCall_1MiB(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo-echo","arguments":` + string(contractstest.RealisticArguments(1<<20)) + `}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		m, err := parseMessage(body)
		if err != nil {
			b.Fatal(err)
		}
		p, scanned, e := m.toolCallParams()
		if e != nil || scanned == nil || scanned.Overflow != nil || p.Name != "demo-echo" {
			b.Fatal("not parsed")
		}
	}
}

// BenchmarkParseToolsCall is the per-message decode of a usual tools/call
// up to the front door and its request id: the message, its kind and id,
// its params, the progress token, the call id; "reference" is the decode
// before readTop and callParams.read.
func BenchmarkParseToolsCall(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"demo-echo","arguments":{"text":"hello","n":3},"_meta":{"progressToken":"p-1"}}}`)
	for _, bm := range []struct {
		name    string
		parse   func([]byte) (*message, error)
		params  func(*message) (callParams, *contracts.JSONMember, *rpcError)
		validID func(json.RawMessage) bool
		callID  func(owner, scope, session string, id []byte) string
	}{
		{"reference", parseMessageReference, (*message).toolCallParamsReference, validIDReference, callIDReference},
		{"new", parseMessage, (*message).toolCallParams, validID, callIDOf},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := bm.parse(body)
				if err != nil || !m.isRequest() || !bm.validID(m.ID) || m.JSONRPC != "2.0" {
					b.Fatal("not a request")
				}
				p, scanned, e := bm.params(m)
				if e != nil || scanned == nil || p.Name != "demo-echo" || p.Meta == nil || !bm.validID(p.Meta.ProgressToken) {
					b.Fatal("not parsed")
				}
				if len(bm.callID("key:alice", "", "sess-1", m.ID)) != 35 {
					b.Fatal("call id")
				}
			}
		})
	}
}

// BenchmarkEncodeResponse_1MiB is the response around a 1 MiB result.
func BenchmarkEncodeResponse_1MiB(b *testing.B) {
	result := []byte(`{"content":[{"type":"text","text":` + strconv.Quote(string(contractstest.RealisticArguments(1<<20))) + `}],"isError":false}`)
	id := json.RawMessage(`1`)
	b.ReportAllocs()
	b.SetBytes(int64(len(result)))
	for b.Loop() {
		if len(encodeResponse(id, result, nil)) < len(result) {
			b.Fatal("short")
		}
	}
}

// withMeta gives the same JSON value as decoding and encoding the result,
// keeping the rest of the result as it was written; a _meta of null no
// longer panics.
func TestWithMeta_SameValueAsDecoding(t *testing.T) {
	t.Parallel()
	fields := map[string]any{"io.modelcontextprotocol/related-task": map[string]string{"taskId": "t1"}}
	for _, result := range []string{
		`{"content":[{"type":"text","text":"<hi>"}],"isError":false}`,
		`{}`, ` { } `, "{\n \"a\": 1\n}",
		`{"_meta":{"progress":1,"x":"y"},"content":[]}`,
		`{"_meta":"x","content":[]}`,
		`{"_meta":{"a":1},"content":[],"_meta":{"b":2}}`,
		`{"_meta":null}`,
		`{"_Meta":{"a":1}}`, `{"_met\u0061":{"a":1}}`,
		`[1]`, `"x"`, `null`, ``, `{"a":`,
	} {
		got := withMeta(json.RawMessage(result), fields)
		want := withMetaDecoded(json.RawMessage(result), fields)
		var g, w any
		gErr, wErr := json.Unmarshal(got, &g), json.Unmarshal(want, &w)
		if (gErr == nil) != (wErr == nil) || !reflect.DeepEqual(g, w) {
			t.Errorf("withMeta(%s) = %s, want %s", result, got, want)
		}
	}
	if got := string(withMeta(json.RawMessage(`{"b":1, "a":"<x>"}`), fields)); !strings.HasSuffix(got, `,"b":1, "a":"<x>"}`) {
		t.Errorf("the result is not kept as written: %s", got)
	}
}

// BenchmarkReadMessage is readMessage of a usual tools/call and of one
// with 1 MiB of arguments, from a body in memory (as the front door leaves
// it: an io.WriterTo) with its Content-Length.
func BenchmarkReadMessage(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	for _, bm := range []struct {
		name string
		body []byte
	}{
		{"usual", []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"demo-echo","arguments":{"text":"hello","n":3}}}`)},
		{"1MiB", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo-echo","arguments":` + string(contractstest.RealisticArguments(1<<20)) + `}}`)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s := &Server{}
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest(http.MethodPost, "/mcp", nil)
			var r bytes.Reader
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(bm.body)
				c.Request.Body, c.Request.ContentLength = io.NopCloser(&r), int64(len(bm.body))
				if msg, ok := s.readMessage(c); !ok || msg.Method != "tools/call" {
					b.Fatal("not read")
				}
			}
		})
	}
}

// acceptsSSE reads every Accept header as splitting it at its commas did.
func TestAcceptsSSE_AsSplitting(t *testing.T) {
	t.Parallel()
	reference := func(r *http.Request) bool {
		for _, v := range r.Header.Values("Accept") {
			for _, part := range strings.Split(v, ",") {
				mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
				if strings.EqualFold(mt, "text/event-stream") {
					return true
				}
			}
		}
		return false
	}
	for _, accept := range [][]string{
		nil, {""}, {","}, {"application/json"}, {"text/event-stream"}, {"application/json, text/event-stream"},
		{"application/json", "TEXT/Event-Stream;q=0.5"}, {"text/event-stream ;q=1"}, {",,text/event-stream,"},
		{"application/json,", " text/event-stream"}, {"text/event-streams"}, {"text/event-stream\t"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.Header["Accept"] = accept
		if got, want := acceptsSSE(r), reference(r); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
}
