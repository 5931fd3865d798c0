package contracts

import (
	"encoding/json"
	"testing"
	"time"
)

func benchCallRequest(b *testing.B) (*CallRequest, []byte) {
	b.Helper()
	_, sealer, _ := newTestKeys(b)
	req := &CallRequest{
		RequestHeader: RequestHeader{Type: TypeCallRequest, RequestID: "GNHTKyA357k0WcRrj0BYt2", Server: "jira", KeyID: "team-a",
			TimeoutMS: 30000, ExpiresUnixMS: time.Now().Add(time.Minute).UnixMilli(), TokenFP: "fp_0123456789ab"},
		Tool: "create_issue", Arguments: json.RawMessage(`{"summary":"New ticket","project":"TEST"}`),
	}
	sealed, err := sealer.Seal(NewToken("Bearer user-token-5678"), req.Binding("_INBOX.abc.GNHTKyA357k0WcRrj0BYt2"))
	if err != nil {
		b.Fatal(err)
	}
	req.Token = sealed
	data, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	return req, data
}

// BenchmarkCallRequest_Encode is the ingress's per-call encoding.
func BenchmarkCallRequest_Encode(b *testing.B) {
	req, _ := benchCallRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCallRequest is the worker's per-call decoding and validation.
func BenchmarkDecodeCallRequest(b *testing.B) {
	_, data := benchCallRequest(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeCallRequest(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCallResponse is the ingress's per-call reply decoding.
func BenchmarkDecodeCallResponse(b *testing.B) {
	data, _ := json.Marshal(NewCallResponse("GNHTKyA357k0WcRrj0BYt2",
		json.RawMessage(`{"content":[{"type":"text","text":"hello"}],"isError":false}`), nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCallResponse(data); err != nil {
			b.Fatal(err)
		}
	}
}
