package mcpserver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

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
// params of tools/call as asParams did.
func TestParseMessage_AgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, body := range clientMessages {
		checkParseMessage(t, []byte(body))
	}
}

func checkParseMessage(t *testing.T, body []byte) {
	t.Helper()
	var want message
	wantErr := json.Unmarshal(body, &want)
	got, gotErr := parseMessage(body)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: error %v, want %v", body, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if got.JSONRPC != want.JSONRPC || got.Method != want.Method || !bytes.Equal(got.ID, want.ID) ||
		!bytes.Equal(got.Params, want.Params) || !bytes.Equal(got.Result, want.Result) || !bytes.Equal(got.Error, want.Error) {
		t.Fatalf("%q: %+v, want %+v", body, got, want)
	}
	var wantP, gotP callParams
	wantE := asParams(want.Params, &wantP)
	scanned, gotE := got.paramsWithout(&gotP)
	if (wantE == nil) != (gotE == nil) {
		t.Fatalf("%q: params error %v, want %v", body, gotE, wantE)
	}
	if scanned != nil {
		if got.scan == nil || string(gotP.Arguments) != "null" {
			t.Fatalf("%q: arguments scanned, but decoded as %q", body, gotP.Arguments)
		}
		gotP.Arguments = scanned.Value
	}
	if wantE == nil && !reflect.DeepEqual(gotP, wantP) {
		t.Fatalf("%q: params %+v, want %+v", body, gotP, wantP)
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, body := range clientMessages {
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
		var p callParams
		scanned, e := m.paramsWithout(&p)
		if e != nil || scanned == nil || scanned.Overflow != nil || p.Name != "demo-echo" {
			b.Fatal("not parsed")
		}
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
