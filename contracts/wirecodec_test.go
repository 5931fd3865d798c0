package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// The wire codec (wirecodec.go) must be invisible: its encoding is
// json.Marshal's byte for byte, and its decoding gives what json.Unmarshal
// gives, or steps aside for it.

// codecKinds are the message kinds the codec knows, each as a constructor of
// a zero message.
var codecKinds = []struct {
	name string
	new  func() Bodied
}{
	{"call_request", func() Bodied { return new(CallRequest) }},
	{"list_request", func() Bodied { return new(ListRequest) }},
	{"rpc_request", func() Bodied { return new(RPCRequest) }},
	{"call_response", func() Bodied { return new(CallResponse) }},
	{"list_response", func() Bodied { return new(ListResponse) }},
	{"rpc_response", func() Bodied { return new(RPCResponse) }},
}

// codecStrings are strings of every class encoding/json treats apart: plain,
// quoted and backslashed, control characters (with and without a short
// escape), the HTML characters, DEL, multi-byte UTF-8, U+2028/2029, U+FFFD,
// and invalid UTF-8 (which encodes as \ufffd).
var codecStrings = []string{
	"", "a", "req-1", "toolbus.call.request.v2", "jira", "team-a", "create_issue",
	`"`, `\`, `/`, `a"b\c/d`, "\b\f\n\r\t", "\x00\x01\x1f", "\x7f",
	"<script>&amp;</script>", "é", "世界", "😀", "\u2028", "\u2029", "x\u2028y\u2029z", "\ufffd",
	"\xff", "\xc3", "a\xc3(b", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	`Bearer realm="jira", error="invalid_token"`,
}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return codecStrings[r.IntN(len(codecStrings))]
	}
	var b strings.Builder
	for range r.IntN(8) {
		b.WriteString(codecStrings[r.IntN(len(codecStrings))])
	}
	return b.String()
}

func randStrings(r *rand.Rand) []string {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	ss := make([]string, 1+r.IntN(3))
	for i := range ss {
		ss[i] = randString(r)
	}
	return ss
}

func randInt(r *rand.Rand) int64 {
	switch r.IntN(5) {
	case 0:
		return 0
	case 1:
		return -r.Int64()
	case 2:
		return r.Int64()
	}
	return r.Int64N(1 << 40)
}

func randBytes(r *rand.Rand) []byte {
	switch r.IntN(5) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	b := make([]byte, r.IntN(80))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randRequestHeader(r *rand.Rand) RequestHeader {
	h := RequestHeader{Type: randString(r), RequestID: randString(r), Server: randString(r), KeyID: randString(r),
		TimeoutMS: randInt(r), ExpiresUnixMS: randInt(r), TokenFP: randString(r), Caller: randString(r)}
	if r.IntN(2) == 0 {
		h.Token = &Sealed{Version: int(randInt(r)), KeyID: randString(r), Enc: randBytes(r), Nonce: randBytes(r), Ciphertext: randBytes(r)}
	}
	return h
}

func randReplyHeader(r *rand.Rand) ReplyHeader {
	h := ReplyHeader{Type: randString(r), RequestID: randString(r)}
	if r.IntN(2) == 0 {
		h.Error = &Error{Code: ErrorCode(randString(r)), Message: randString(r), Retryable: r.IntN(2) == 0,
			WWWAuthenticate: randString(r), Available: randStrings(r), RetryAfterSeconds: int(randInt(r))}
	}
	return h
}

// randMessage is a message of a kind the codec knows, with any values.
func randMessage(r *rand.Rand) Bodied {
	switch r.IntN(6) {
	case 0:
		return &CallRequest{RequestHeader: randRequestHeader(r), Tool: randString(r), EventsTo: randString(r),
			ClientRequests: randStrings(r), Arguments: json.RawMessage(`{"a":1}`)}
	case 1:
		return &ListRequest{RequestHeader: randRequestHeader(r)}
	case 2:
		return &RPCRequest{RequestHeader: randRequestHeader(r), Method: randString(r)}
	case 3:
		return &CallResponse{ReplyHeader: randReplyHeader(r), Result: json.RawMessage(`{}`)}
	case 4:
		return &ListResponse{ReplyHeader: randReplyHeader(r)}
	}
	return &RPCResponse{ReplyHeader: randReplyHeader(r)}
}

// codecMessages are fixed messages of every kind: the golden ones, and
// ones with every optional field set, unset and empty.
func codecMessages() []Bodied {
	var msgs []Bodied
	for _, m := range goldenMessages() {
		if b, ok := m.(Bodied); ok {
			if _, known := appendHeader(nil, b); known {
				msgs = append(msgs, b)
			}
		}
	}
	sealed := &Sealed{Version: 2, KeyID: "0123456789abcdef", Enc: []byte{1, 2, 3}, Nonce: []byte{}, Ciphertext: nil}
	full := RequestHeader{Type: TypeCallRequest, RequestID: "r<1>", Server: "jira", KeyID: "k&1", TimeoutMS: -1,
		ExpiresUnixMS: 1<<63 - 1, Token: sealed, TokenFP: "fp", Caller: "00112233445566778899aabbccddeeff"}
	return append(msgs,
		&CallRequest{},
		&CallRequest{RequestHeader: full, Tool: "t\u2028", EventsTo: "_INBOX.x", ClientRequests: []string{"sampling/createMessage", "a\"b"}},
		&CallRequest{RequestHeader: full, ClientRequests: []string{}},
		&ListRequest{RequestHeader: full},
		&RPCRequest{RequestHeader: full, Method: "resources/read"},
		&CallResponse{},
		&CallResponse{ReplyHeader: ReplyHeader{Type: TypeCallResponse, RequestID: "r", Error: &Error{}}},
		&CallResponse{ReplyHeader: ReplyHeader{Type: TypeCallResponse, RequestID: "r", Error: &Error{
			Code: CodeRateLimited, Message: "over <limit> & out", Retryable: true, WWWAuthenticate: `Bearer realm="x"`,
			Available: []string{"a", "b"}, RetryAfterSeconds: -3}}},
		&ListResponse{ReplyHeader: ReplyHeader{Type: TypeListResponse, RequestID: "r", Error: &Error{Code: CodeUnknownServer, Available: []string{}}}},
		&RPCResponse{ReplyHeader: ReplyHeader{Type: TypeRPCResponse, RequestID: "\x00"}},
	)
}

// TestWireCodec_EncodeMatchesMarshal: the codec's header is json.Marshal's,
// byte for byte, for fixed and random messages of every kind.
func TestWireCodec_EncodeMatchesMarshal(t *testing.T) {
	msgs := codecMessages()
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		msgs = append(msgs, randMessage(r))
	}
	for i, m := range msgs {
		got, ok := appendHeader(nil, m)
		if !ok {
			t.Fatalf("message %d (%T): the codec does not know it", i, m)
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d (%T):\n got %s\nwant %s", i, m, got, want)
		}
	}
}

// TestWireCodec_DecodesWhatItEncodes: the fast decoder accepts every header
// the encoder writes and gives what json.Unmarshal gives.
func TestWireCodec_DecodesWhatItEncodes(t *testing.T) {
	msgs := codecMessages()
	r := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		msgs = append(msgs, randMessage(r))
	}
	for i, m := range msgs {
		hdr, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		accepted := checkDecode(t, reflect.TypeOf(m).Elem(), string(hdr))
		if !accepted {
			t.Fatalf("message %d (%T): the fast decoder refused its own encoding %s", i, m, hdr)
		}
	}
}

// checkDecode decodes header into a new message of type typ with the fast
// decoder and with json.Unmarshal: when the fast decoder accepts it, the
// messages are equal; when it refuses it, its message is still zero. It
// also compares decodeWire with the json-only decoding it replaced (error
// and message). It returns whether the fast decoder accepted the header.
// (The fast decoder is given only UTF-8, which decodeWire checks first.)
func checkDecode(t *testing.T, typ reflect.Type, header string) bool {
	t.Helper()
	zero := reflect.New(typ).Interface()
	fast := reflect.New(typ).Interface().(Bodied)
	accepted := utf8.ValidString(header) && decodeHeaderFast(header, fast)
	ref := reflect.New(typ).Interface().(Bodied)
	refErr := json.Unmarshal([]byte(header), ref)
	switch {
	case accepted && refErr != nil:
		t.Fatalf("%s: fast path accepted %q, json.Unmarshal: %v", typ.Name(), header, refErr)
	case accepted && !reflect.DeepEqual(fast, ref):
		t.Fatalf("%s: %q decodes to\n%#v\nwant (json.Unmarshal)\n%#v", typ.Name(), header, fast, ref)
	case !accepted && !reflect.DeepEqual(fast, zero):
		t.Fatalf("%s: fast path refused %q but left %#v", typ.Name(), header, fast)
	}

	w := Wire{Header: header, Body: []byte(`{"x":1}`)}
	got := reflect.New(typ).Interface().(Bodied)
	gotErr := decodeWire(w, got)
	want := reflect.New(typ).Interface().(Bodied)
	wantErr := decodeWireJSON(w, want)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: decodeWire(%q) = %v, %#v\nwant %v, %#v", typ.Name(), header, gotErr, got, wantErr, want)
	}
	return accepted
}

// decodeWireJSON is decodeWire as it was before the codec: json.Unmarshal
// alone.
func decodeWireJSON(w Wire, m Bodied) error {
	switch {
	case w.Header == "":
		return badMessage("no %s/%s header", HeaderRequest, HeaderReply)
	case len(w.Header) > MaxHeaderValue:
		return badMessage("header longer than %d bytes", MaxHeaderValue)
	case !utf8.ValidString(w.Header):
		return badMessage("header is not UTF-8")
	}
	if err := json.Unmarshal([]byte(w.Header), m); err != nil {
		return badMessage("header: %v", err)
	}
	p := m.Body()
	switch {
	case p != nil:
		*p = w.Body
	case len(w.Body) > 0:
		return badMessage("unexpected body")
	}
	return nil
}

// trickyHeaders are headers in, near and out of the codec's form: each
// goes through the fast path or json.Unmarshal with the same result.
var trickyHeaders = []string{
	// Encoding/json matches keys without regard to case (and folds K and
	// S with the Kelvin and long-s signs), takes the last of repeated keys
	// and skips unknown ones.
	`{"Type":"toolbus.call.request.v2","request_id":"r"}`,
	`{"TYPE":"a","type":"b"}`,
	`{"type":"a","type":"b"}`,
	`{"type":"a","Type":"b"}`,
	"{\"\u212aey_id\":\"k\"}",
	"{\"\u017ferver\":\"s\"}",
	`{"typ\u0065":"t"}`,
	`{"type":"t","unknown":1}`,
	`{"type":"t","pad":"` + strings.Repeat("x", 100) + `"}`,
	`{"token":{"v":2,"kid":"k"},"token":{"enc":"AAAA"}}`,
	`{"token":{"v":2,"kid":"k","kid":"j"}}`,
	`{"token":{"v":2,"KID":"k"}}`,
	`{"token":{"v":2,"x":1}}`,
	`{"error":{"code":"a"},"error":{"message":"m"}}`,
	`{"error":{"code":"a","Code":"b"}}`,
	`{"error":{"code":"a","extra":[1,{"b":null}]}}`,
	`{"client_requests":["a"],"client_requests":["b","c"]}`,
	`{"tool":"t","events_to":"e","method":"m"}`,
	`{"method":"m","tool":"t"}`,
	// Whitespace, null, wrong types, other values.
	` {"type":"t"}`,
	`{"type":"t"} `,
	`{ "type" : "t" }`,
	"{\"type\":\"t\",\n\"request_id\":\"r\"}",
	`{"type":null}`,
	`{"token":null}`,
	`{"error":null}`,
	`{"client_requests":null}`,
	`{"client_requests":[null]}`,
	`{"client_requests":[]}`,
	`{"client_requests":["a",1]}`,
	`{"client_requests":["a",]}`,
	`{"client_requests":"a"}`,
	`{"type":1}`,
	`{"type":true}`,
	`{"timeout_ms":"1000"}`,
	`{"timeout_ms":true}`,
	`{"timeout_ms":null}`,
	`{"timeout_ms":1.0}`,
	`{"timeout_ms":1.5}`,
	`{"timeout_ms":1e3}`,
	`{"timeout_ms":1E3}`,
	`{"timeout_ms":-0}`,
	`{"timeout_ms":-}`,
	`{"timeout_ms":01}`,
	`{"timeout_ms":00}`,
	`{"timeout_ms":+1}`,
	`{"timeout_ms":999999999999999999}`,
	`{"timeout_ms":-999999999999999999}`,
	`{"timeout_ms":9223372036854775807}`,
	`{"timeout_ms":9223372036854775808}`,
	`{"timeout_ms":-9223372036854775808}`,
	`{"timeout_ms":1,"request_id":"r"}`,
	`{"timeout_ms":1x}`,
	`{"error":{"retryable":true}}`,
	`{"error":{"retryable":false,"code":"c"}}`,
	`{"error":{"retryable":1}}`,
	`{"error":{"retryable":"true"}}`,
	`{"error":{"retryable":tru}}`,
	`{"error":{"retryable":trueish}}`,
	`{"error":{"retry_after_seconds":3}}`,
	`{"error":{"retry_after_seconds":-3}}`,
	`{"error":{"retry_after_seconds":3.5}}`,
	`{"error":{"available":[]}}`,
	`{"error":{"available":["a","b"]}}`,
	`{"error":{}}`,
	`{"error":"x"}`,
	`{"error":[]}`,
	// Strings: escapes, surrogates, control characters.
	`{"type":"a\"b\\c\/d\b\f\n\r\t"}`,
	`{"type":"\u003cscript\u003e\u0026"}`,
	`{"type":"\u00e9\u4e16\u2028\u2029\ufffd\u0000\u001f"}`,
	`{"type":"\u00E9\u00e9\uABCD"}`,
	`{"type":"\ud83d\ude00"}`,
	`{"type":"\ud83d"}`,
	`{"type":"\ud83dx"}`,
	`{"type":"\ude00\ud83d"}`,
	`{"type":"\ud83d\u0041"}`,
	`{"type":"\u12"}`,
	`{"type":"\u12G4"}`,
	`{"type":"\x"}`,
	`{"type":"\'"}`,
	`{"type":"a\`,
	`{"type":"a\"`,
	`{"type":"a\\"}`,
	"{\"type\":\"a\tb\"}",
	"{\"type\":\"a\x00b\"}",
	"{\"type\":\"a\x1fb\"}",
	"{\"type\":\"\\n\x1f\"}",
	"{\"type\":\"a\x7fb\"}",
	`{"type":"` + "\u2028" + `"}`,
	`{"type":"é世😀"}`,
	// Sealed tokens: base64 as encoding/json decodes it.
	`{"token":{"v":2,"kid":"k","enc":"AQID","nonce":"","ct":"AAAAAAAAAAAAAAAAAAAAAA=="}}`,
	`{"token":{"v":2,"kid":"k","enc":"AQI=","nonce":"AQ==","ct":"AQ"}}`,
	`{"token":{"v":2,"kid":"k","enc":"AQ=I"}}`,
	`{"token":{"v":2,"kid":"k","enc":"A\nQID"}}`,
	`{"token":{"v":2,"kid":"k","enc":"AQ\u0049D"}}`,
	`{"token":{"v":2,"kid":"k","enc":"AQ\/D"}}`,
	`{"token":{"v":2,"kid":"k","enc":"AQ-_"}}`,
	`{"token":{"v":2,"kid":"k","enc":null}}`,
	`{"token":{"v":2,"kid":"k","enc":[1,2]}}`,
	`{"token":{"v":99999999999,"kid":"k"}}`,
	`{"token":{}}`,
	`{"token":{"v":2,"kid":"k","enc":"` + strings.Repeat("QUJD", 300) + `"}}`,
	// Structure.
	``,
	`{}`,
	`{`,
	`}`,
	`null`,
	`[]`,
	`"type"`,
	`{"type":"t"}{}`,
	`{"type":"t"},`,
	`{"type":"t",}`,
	`{"type""t"}`,
	`{"type":}`,
	`{"type":"t""request_id":"r"}`,
	`{,"type":"t"}`,
	`{type:"t"}`,
	`{"type":"t"`,
	`{"token":{"v":2}`,
	`{"token":{"v":2,}}`,
}

// TestWireCodec_DecodeMatchesUnmarshal: every tricky header decodes, for
// every kind, to what json.Unmarshal gives (or fails as it fails); and the
// fast path does take the form it is for.
func TestWireCodec_DecodeMatchesUnmarshal(t *testing.T) {
	for _, h := range trickyHeaders {
		for _, k := range codecKinds {
			checkDecode(t, reflect.TypeOf(k.new()).Elem(), h)
		}
	}
	for _, tt := range []struct {
		header string
		msg    Bodied
		fast   bool
	}{
		{`{"type":"toolbus.call.request.v2","request_id":"r","server":"jira","key_id":"k","timeout_ms":1,"expires_unix_ms":2,"tool":"t"}`, new(CallRequest), true},
		{`{"tool":"t","type":"toolbus.call.request.v2"}`, new(CallRequest), true}, // any order
		{`{"type":"a\u003cb\ud83d\ude00"}`, new(ListRequest), false},
		{`{"type":"a\u003cb"}`, new(ListRequest), true},
		{`{"type":"t","Type":"u"}`, new(ListRequest), false},
		{`{"type":"t","type":"u"}`, new(ListRequest), false},
		{`{"type":"t","x":1}`, new(ListRequest), false},
		{`{"type":"t","tool":"x"}`, new(ListRequest), false}, // a list request has no tool
		{`{"type":"t","request_id":"r","error":{"code":"c","message":"m","retryable":true}}`, new(CallResponse), true},
		{`{"type":"t","request_id":"r","error":{"code":"c","message":"m","retryable":true}}`, new(CallRequest), false},
		{`{"timeout_ms":1e3}`, new(ListRequest), false},
		{`{"type":"t"} `, new(ListRequest), false},
	} {
		if got := decodeHeaderFast(tt.header, tt.msg); got != tt.fast {
			t.Errorf("%T %s: fast path %v, want %v", tt.msg, tt.header, got, tt.fast)
		}
	}
}

// TestWireCodec_DecodesIntoAFilledMessage: decoding into a message that
// already holds values merges as json.Unmarshal merges (the fast path
// steps aside), for every kind.
func TestWireCodec_DecodesIntoAFilledMessage(t *testing.T) {
	hdr := `{"type":"toolbus.call.request.v2","request_id":"r","token":{"v":2,"kid":"k"},"error":{"code":"c"},"tool":"t"}`
	filled := func() []Bodied {
		tok := func() *Sealed { return &Sealed{Version: 1, Enc: []byte{1}} }
		return []Bodied{
			&CallRequest{RequestHeader: RequestHeader{KeyID: "kept"}},
			&CallRequest{RequestHeader: RequestHeader{Token: tok()}},
			&CallRequest{EventsTo: "kept"},
			&CallRequest{ClientRequests: []string{"kept"}},
			&ListRequest{RequestHeader: RequestHeader{TimeoutMS: 5}},
			&ListRequest{RequestHeader: RequestHeader{Token: tok()}},
			&RPCRequest{RequestHeader: RequestHeader{Caller: "kept"}},
			&RPCRequest{Method: "kept"},
			&CallResponse{ReplyHeader: ReplyHeader{Error: &Error{Message: "kept"}}},
			&ListResponse{ReplyHeader: ReplyHeader{Type: "kept"}},
			&RPCResponse{ReplyHeader: ReplyHeader{RequestID: "kept"}},
		}
	}
	got, want := filled(), filled()
	for i := range got {
		if decodeHeaderFast(hdr, got[i]) {
			t.Fatalf("%T: the fast path decoded into a filled message", got[i])
		}
		gotErr := decodeWire(Wire{Header: hdr}, got[i])
		wantErr := decodeWireJSON(Wire{Header: hdr}, want[i])
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%T: got %v, %#v\nwant %v, %#v", got[i], gotErr, got[i], wantErr, want[i])
		}
	}
}

// TestWireCodec_HeaderLimit: a header longer than MaxHeaderValue is refused
// by the encoder as before, and the encoding buffers stay usable.
func TestWireCodec_HeaderLimit(t *testing.T) {
	for _, n := range []int{MaxHeaderValue, 2 * MaxHeaderValue} {
		req := &CallRequest{RequestHeader: RequestHeader{Type: TypeCallRequest, RequestID: "r", Server: "jira", TimeoutMS: 1},
			Tool: strings.Repeat("<", n/6)} // each < is 6 bytes encoded
		if _, err := EncodeRequest(req); err == nil || !strings.Contains(err.Error(), "header longer") {
			t.Fatalf("%d bytes of tool: got %v, want a refusal", n, err)
		}
	}
	req := &CallRequest{RequestHeader: RequestHeader{Type: TypeCallRequest, RequestID: "r", Server: "jira", TimeoutMS: 1}, Tool: "t"}
	w, err := EncodeRequest(req)
	if want, _ := json.Marshal(req); err != nil || w.Header != string(want) {
		t.Fatalf("after a refusal: %q, %v; want %s", w.Header, err, want)
	}
}

// wireHeaderSeeds are real encoded headers (the golden ones, on one line)
// and the tricky ones.
func wireHeaderSeeds(t testing.TB) []string {
	var seeds []string
	for _, k := range codecKinds {
		for _, name := range []string{k.name, k.name + "_result", k.name + "_error"} {
			data, err := os.ReadFile(filepath.Join("testdata", name+".json"))
			if err != nil {
				continue
			}
			var b bytes.Buffer
			if err := json.Compact(&b, data); err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, b.String())
		}
	}
	for _, m := range codecMessages() {
		hdr, _ := json.Marshal(m)
		seeds = append(seeds, string(hdr))
	}
	return append(seeds, trickyHeaders...)
}

// FuzzWireHeader: whenever the fast decoder accepts a header, it decodes to
// what json.Unmarshal gives, for every kind; when it refuses, it leaves the
// message untouched; and decodeWire as a whole answers as the json-only
// decoding did.
func FuzzWireHeader(f *testing.F) {
	for _, s := range wireHeaderSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		for _, k := range codecKinds {
			checkDecode(t, reflect.TypeOf(k.new()).Elem(), header)
		}
	})
}

// FuzzWireHeaderEncode: the codec encodes any field values as json.Marshal
// does, and its fast decoder reads them back as json.Unmarshal does.
func FuzzWireHeaderEncode(f *testing.F) {
	for i, s := range codecStrings {
		f.Add(s, codecStrings[(i+1)%len(codecStrings)], int64(i), []byte(s), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, s1, s2 string, n int64, raw []byte, flag bool) {
		tok := &Sealed{Version: int(n), KeyID: s2, Enc: raw, Nonce: []byte{}, Ciphertext: raw}
		var e *Error
		if flag {
			tok = nil
			e = &Error{Code: ErrorCode(s1), Message: s2, Retryable: true, WWWAuthenticate: s1, Available: []string{s1, s2}, RetryAfterSeconds: int(n)}
		}
		h := RequestHeader{Type: s1, RequestID: s2, Server: s1, KeyID: s2, TimeoutMS: n, ExpiresUnixMS: -n, Token: tok, TokenFP: s1, Caller: s2}
		for _, m := range []Bodied{
			&CallRequest{RequestHeader: h, Tool: s1, EventsTo: s2, ClientRequests: []string{s2, s1}},
			&ListRequest{RequestHeader: h},
			&RPCRequest{RequestHeader: h, Method: s2},
			&CallResponse{ReplyHeader: ReplyHeader{Type: s1, RequestID: s2, Error: e}},
		} {
			got, _ := appendHeader(nil, m)
			want, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%T:\n got %s\nwant %s", m, got, want)
			}
			if !checkDecode(t, reflect.TypeOf(m).Elem(), string(got)) {
				t.Fatalf("%T: the fast decoder refused its own encoding %s", m, got)
			}
		}
	})
}

// BenchmarkWireHeader compares the codec with encoding/json on the header
// of a sealed call request and of a call's error reply, without the sealing
// (BenchmarkCallRequest_Encode has it).
func BenchmarkWireHeader(b *testing.B) {
	req, sealer := benchCallRequest(b, benchPayload(1<<10))
	sealed, err := sealer.Seal(NewToken("Bearer user-token-5678"), req.Binding("_INBOX.abc.GNHTKyA357k0WcRrj0BYt2"))
	if err != nil {
		b.Fatal(err)
	}
	req.Token = sealed
	reply := NewCallResponse("GNHTKyA357k0WcRrj0BYt2", nil, &Error{Code: CodeUpstreamUnauthorized,
		Message: "upstream rejected the credential", WWWAuthenticate: `Bearer realm="jira"`})
	for _, m := range []struct {
		name string
		msg  Bodied
		new  func() Bodied
	}{
		{"call_request", req, func() Bodied { return new(CallRequest) }},
		{"call_response_error", reply, func() Bodied { return new(CallResponse) }},
	} {
		hdr, _ := json.Marshal(m.msg)
		b.Run(m.name+"/encode/codec", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := encodeHeader(m.msg); !ok {
					b.Fatal("not encoded")
				}
			}
		})
		b.Run(m.name+"/encode/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(m.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(m.name+"/decode/codec", func(b *testing.B) {
			hdr := string(hdr)
			b.ReportAllocs()
			for b.Loop() {
				if !decodeHeaderFast(hdr, m.new()) {
					b.Fatal("not decoded")
				}
			}
		})
		b.Run(m.name+"/decode/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := json.Unmarshal(hdr, m.new()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
