package httpapi

import "testing"

// BenchmarkDecodeCallBody is the ingress's per-call request validation.
func BenchmarkDecodeCallBody(b *testing.B) {
	body := []byte(`{"name":"jira-create_issue","arguments":{"summary":"New ticket","project":"TEST"},"timeout_seconds":30}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeCallBody(body); err != nil {
			b.Fatal(err)
		}
	}
}
