package contractstest

import (
	"bytes"
	"fmt"
	"strings"
)

// RealisticArguments is about size bytes of a tool's arguments, a JSON
// object like those callers send: text with escapes and non-ASCII,
// numbers, nesting. For benchmarks and tests of large payloads.
func RealisticArguments(size int) []byte {
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
