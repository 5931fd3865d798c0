package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
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

// clientIP logs what Gin's ClientIP answers, without trusted proxies (its
// shortcut) and with them.
func TestClientIP_AsGin(t *testing.T) {
	t.Parallel()
	for _, trusted := range [][]string{nil, {"10.0.0.0/8"}} {
		for _, remote := range []string{"127.0.0.1:5000", "10.1.2.3:80", "[::1]:5000", "[::ffff:127.0.0.1]:1", "[fe80::1%eth0]:1",
			"[2001:db8::1]:443", "1.2.3.4", "garbage", "", "01.2.3.4:1", "[::ffff:10.0.0.1]:2"} {
			c, engine := gin.CreateTestContext(httptest.NewRecorder())
			if err := engine.SetTrustedProxies(trusted); err != nil {
				t.Fatal(err)
			}
			c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
			c.Request.RemoteAddr = remote
			c.Request.Header.Set("X-Forwarded-For", "203.0.113.9")
			if got, want := clientIP(c, len(trusted) > 0), c.ClientIP(); got != want {
				t.Errorf("trusted %v, peer %q: %q, want %q", trusted, remote, got, want)
			}
		}
	}
}
