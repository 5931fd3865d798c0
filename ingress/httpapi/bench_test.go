package httpapi

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
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
	body := []byte(`{"name":"jira-create_issue","arguments":` + string(realisticArguments(1<<20)) + `,"timeout_seconds":30}`)
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

// realisticArguments is about size bytes of tool arguments: text with
// escapes and non-ASCII, numbers, nesting.
func realisticArguments(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"title":"Quarterly report","dry_run":false,"items":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"score":%d.%03de-2,"tags":["alpha","beta\u00e9"],"text":"Line %d of the body: \"quoted\", a tab\tand a newline\n, naïve café, path C:\\tmp\\x; %s","meta":{"ok":true,"ref":null}}`,
			i, i*7, i%1000, i, strings.Repeat("lorem ipsum dolor sit amet ", 6))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
