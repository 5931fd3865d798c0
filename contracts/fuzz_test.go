package contracts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDecodeCallRequest: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to a message that decodes again.
func FuzzDecodeCallRequest(f *testing.F) {
	for _, name := range []string{"call_request", "list_request", "call_response_result", "job_request", "job_record"} {
		if data, err := os.ReadFile(filepath.Join("testdata", name+".json")); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"type":"toolbus.call.request.v1","request_id":"r","server":"s","tool":"t","timeout_ms":1,"arguments":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeCallRequest(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeCallRequest(again); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		_, _ = DecodeListRequest(data)
		_, _ = DecodeCallResponse(data)
		_, _ = DecodeListResponse(data)
		_, _ = DecodeJobRequest(data)
		_, _ = DecodeJobRecord(data)
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
