package upstream

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestResponseID(t *testing.T) {
	for _, tc := range []struct {
		head  string
		id    string
		known bool
	}{
		{`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"aaaa`, "int64:7", true},
		{`{"id":"abc","jsonrpc":"2.0","error":{"code":1`, "string:abc", true},
		{`{"jsonrpc":"2.0","id":7`, "int64:7", true}, // cut after the id: an answer
		{`{"jsonrpc":"2.0","result":{"content":"aaa`, "", false},
		{`{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{"x":"aaa`, "", false},
		{`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"aaa`, "", false},
		{`{"jsonrpc":"2.0","params":{"id":3},"id":4,"result":{`, "int64:4", true},
		{`{"jsonrpc":"2.`, "", false},
		{`[{"id":1}]`, "", false},
		{`not json`, "", false},
	} {
		id, known := responseID([]byte(tc.head))
		if id != tc.id || known != tc.known {
			t.Errorf("responseID(%s) = %q, %v; want %q, %v", tc.head, id, known, tc.id, tc.known)
		}
	}
}

// lineLimit delivers whole lines up to max bytes, read in pieces of any
// size, and stops at the first longer line: the lines before it reach the
// reader, over sees its first bytes, and no more than max of it is read.
func TestLineLimit(t *testing.T) {
	long := `{"id":3,"result":"` + strings.Repeat("x", 100) + `"}`
	input := "short\n" + strings.Repeat("y", 20) + "\n\n" + long + "\nnever\n"
	for _, oneByte := range []bool{false, true} {
		src := io.Reader(strings.NewReader(input))
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		var head []byte
		counted := &countingReader{r: src}
		l := &lineLimit{r: counted, max: 20, over: func(h []byte) { head = append([]byte(nil), h...) }}
		got, err := io.ReadAll(l)
		if err != nil {
			t.Fatal(err)
		}
		// The lines before; of the long line, what was read before it
		// went over, when it came in pieces.
		want := "short\n" + strings.Repeat("y", 20) + "\n\n"
		if oneByte {
			want += long[:20]
		}
		if string(got) != want {
			t.Errorf("oneByte=%v: read %q, want %q", oneByte, got, want)
		}
		// At least up to the byte over the limit, at most what was read.
		if len(head) < 21 || !strings.HasPrefix(long, string(head)) {
			t.Errorf("oneByte=%v: over saw %q, want a prefix of %q of 21 bytes or more", oneByte, head, long)
		}
		if oneByte && counted.n != int64(len(want)+1) {
			t.Errorf("read %d bytes of the source, want %d", counted.n, len(want)+1)
		}
	}
	// The head kept is bounded.
	var head []byte
	l := &lineLimit{r: strings.NewReader(strings.Repeat("z", 4096)), max: 2048, over: func(h []byte) { head = h }}
	if _, err := io.ReadAll(l); err != nil || len(head) != lineHeadBytes || !bytes.Equal(head, bytes.Repeat([]byte("z"), lineHeadBytes)) {
		t.Errorf("head %d bytes, %v; want %d", len(head), err, lineHeadBytes)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
