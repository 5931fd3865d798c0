package httpapi

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// appendMillis writes the duration as zerolog's Float64 wrote
// float64(us)/1000, for every fraction and across magnitudes.
func TestAppendMillis_AsZerologFloat64(t *testing.T) {
	t.Parallel()
	var values []int64
	for us := int64(0); us < 3000; us++ {
		values = append(values, us)
	}
	for _, us := range []int64{9999, 10000, 10001, 123456789, 999999999, 1 << 40, 1<<43 + 7, -1, -1500} {
		values = append(values, us)
	}
	var want, got bytes.Buffer
	for _, us := range values {
		want.Reset()
		got.Reset()
		wantLog, gotLog := zerolog.New(&want), zerolog.New(&got)
		wantLog.Log().Float64("d", float64(us)/1000).Send()
		gotLog.Log().RawJSON("d", appendMillis(nil, us)).Send()
		if got.String() != want.String() {
			t.Fatalf("%d µs: %s, want %s", us, got.String(), want.String())
		}
	}
}

// clientRequestID accepts exactly what the pattern it replaces accepted.
func TestClientRequestID_AsPattern(t *testing.T) {
	t.Parallel()
	pattern := regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	ids := []string{"", "a", "req-1", "A.b_c:d-9", strings.Repeat("x", 128), strings.Repeat("x", 129),
		"a b", "a/b", "a\nb", "é", "a\x00", "a+b", "{id}", "a,b", "a;b", "\t"}
	for c := 0; c < 256; c++ {
		ids = append(ids, "id"+string(rune(c)), string([]byte{byte(c)}))
	}
	for _, id := range ids {
		if got, want := clientRequestID(id), pattern.MatchString(id); got != want {
			t.Errorf("%q: %v, want %v", id, got, want)
		}
	}
}
