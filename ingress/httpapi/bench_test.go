package httpapi

import (
	"testing"

	"github.com/toolbus/toolbus/contracts/contractstest"
)

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

// BenchmarkDecodeCallBody_1MiB is the same with 1 MiB of arguments: the
// body's one pass, which also checks the numbers of the arguments for the
// front door (frontdoor.CallInput.Scanned).
func BenchmarkDecodeCallBody_1MiB(b *testing.B) {
	body := []byte(`{"name":"jira-create_issue","arguments":` + string(contractstest.RealisticArguments(1<<20)) + `,"timeout_seconds":30}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		cb, err := decodeCallBody(body)
		if err != nil {
			b.Fatal(err)
		}
		if cb.Scanned == nil || cb.Scanned.Overflow != nil {
			b.Fatal("the arguments' numbers are not checked")
		}
	}
}
