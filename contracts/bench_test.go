package contracts

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// benchSizes are the payload sizes of the wire benchmarks: a typical call
// and the 1 MiB of the cost-growth target.
var benchSizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"1MiB", 1 << 20}}

// benchPayload is a JSON object of about n bytes, with characters
// encoding/json would escape (<, >, &), as tool arguments and results have.
func benchPayload(n int) json.RawMessage {
	var b strings.Builder
	b.WriteString(`{"summary":"New ticket","items":[`)
	for i := 0; b.Len() < n-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"k":"value with <tags> & text","n":12345}`)
	}
	b.WriteString(`]}`)
	return json.RawMessage(b.String())
}

func benchCallRequest(b *testing.B, args json.RawMessage) (*CallRequest, *Sealer) {
	b.Helper()
	_, sealer, _ := newTestKeys(b)
	return &CallRequest{
		RequestHeader: RequestHeader{Type: TypeCallRequest, RequestID: "GNHTKyA357k0WcRrj0BYt2", Server: "jira", KeyID: "team-a",
			TimeoutMS: 30000, ExpiresUnixMS: time.Now().Add(time.Minute).UnixMilli(), TokenFP: "fp_0123456789ab"},
		Tool: "create_issue", Arguments: args,
	}, sealer
}

// BenchmarkCallRequest_Encode is the ingress's per-call encoding: seal the
// token to the binding (the arguments' hash) and encode the message.
func BenchmarkCallRequest_Encode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			req, sealer := benchCallRequest(b, benchPayload(size.n))
			b.ReportAllocs()
			b.SetBytes(int64(len(req.Arguments)))
			for b.Loop() {
				sealed, err := sealer.Seal(NewToken("Bearer user-token-5678"), req.Binding("_INBOX.abc.GNHTKyA357k0WcRrj0BYt2"))
				if err != nil {
					b.Fatal(err)
				}
				req.Token = sealed
				if _, err := EncodeRequest(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeCallRequest is the worker's per-call decoding and validation.
func BenchmarkDecodeCallRequest(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			req, sealer := benchCallRequest(b, benchPayload(size.n))
			sealed, err := sealer.Seal(NewToken("Bearer user-token-5678"), req.Binding("_INBOX.abc.GNHTKyA357k0WcRrj0BYt2"))
			if err != nil {
				b.Fatal(err)
			}
			req.Token = sealed
			w, err := EncodeRequest(req)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(w.Body)))
			for b.Loop() {
				var r CallRequest
				if err := DecodeRequest(w, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCallResponse_Encode is the worker's per-call reply encoding.
func BenchmarkCallResponse_Encode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			result := benchPayload(size.n)
			b.ReportAllocs()
			b.SetBytes(int64(len(result)))
			for b.Loop() {
				if _, err := EncodeReply(NewCallResponse("GNHTKyA357k0WcRrj0BYt2", result, nil)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeCallResponse is the ingress's per-call reply decoding.
func BenchmarkDecodeCallResponse(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			w, err := EncodeReply(NewCallResponse("GNHTKyA357k0WcRrj0BYt2", benchPayload(size.n), nil))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(w.Body)))
			for b.Loop() {
				var r CallResponse
				if err := DecodeReply(w, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
