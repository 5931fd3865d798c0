package contracts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDecodeCallRequest: decoding an arbitrary header and body never
// panics, and whatever decodes re-encodes to a message that decodes again
// with the same body.
func FuzzDecodeCallRequest(f *testing.F) {
	for _, name := range []string{"call_request", "list_request", "call_response_result", "job_request", "job_record"} {
		if data, err := os.ReadFile(filepath.Join("testdata", name+".json")); err == nil {
			body, _ := os.ReadFile(filepath.Join("testdata", name+".body"))
			f.Add(string(data), body)
		}
	}
	f.Add(`{"type":"toolbus.call.request.v2","request_id":"r","server":"s","tool":"t","timeout_ms":1}`, []byte(`{}`))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		w := Wire{Header: header, Body: body}
		_, _ = DecodeListRequest(w)
		_, _ = DecodeCallResponse(w)
		_, _ = DecodeListResponse(w)
		_, _ = DecodeRPCRequest(w)
		_, _ = DecodeRPCResponse(w)
		_, _ = DecodeJobRequest(body)
		_, _ = DecodeJobRecord(body)
		r, err := DecodeCallRequest(w)
		if err != nil {
			return
		}
		again, err := EncodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeCallRequest(again)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if string(back.Arguments) != string(body) {
			t.Fatalf("body changed: %q, want %q", back.Arguments, body)
		}
	})
}

// FuzzOpen: no mutation of a sealed field or its binding opens to anything
// but an error, unless the input is exactly what was sealed.
func FuzzOpen(f *testing.F) {
	sk, err := GenerateKeyPair()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	b := testBinding(now)
	sealed, err := NewSealer(sk.Public(), 0).Seal(NewToken("Bearer fuzz"), b)
	if err != nil {
		f.Fatal(err)
	}
	orig, _ := json.Marshal(sealed)
	opener := NewOpener(sk)
	f.Add(orig, b.Server, b.Tool)
	f.Add([]byte(`{"v":1}`), "jira", "x")
	f.Fuzz(func(t *testing.T, field []byte, server, tool string) {
		var s Sealed
		if json.Unmarshal(field, &s) != nil {
			return
		}
		moved := b
		moved.Server, moved.Tool = server, tool
		got, err := opener.Open(&s, moved, now)
		if err != nil {
			return
		}
		canon, _ := json.Marshal(&s)
		if !got.Equal(NewToken("Bearer fuzz")) || string(canon) != string(orig) || server != b.Server || tool != b.Tool {
			t.Fatalf("opened a changed field or binding: %v", got)
		}
	})
}
