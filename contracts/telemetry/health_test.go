package telemetry

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, tt := range []struct {
		args []string
		ok   bool
	}{
		{[]string{srv.URL + "/ok"}, true},
		{[]string{"--timeout", "2s", srv.URL + "/ok"}, true},
		{[]string{srv.URL + "/down"}, false},
		{[]string{srv.URL + "/moved"}, false}, // a redirect is not followed
		{[]string{"ftp://example/"}, false},
		{[]string{}, false},
		{[]string{"--timeout", "0s", srv.URL + "/ok"}, false},
	} {
		var out, errOut bytes.Buffer
		err := Healthcheck(ctx, "test", "http://127.0.0.1:1/healthz", tt.args, &out, &errOut)
		if (err == nil) != tt.ok {
			t.Errorf("healthcheck %v: %v, want ok=%v", tt.args, err, tt.ok)
		}
		if tt.ok && !strings.HasPrefix(out.String(), "healthy: ") {
			t.Errorf("healthcheck %v printed %q", tt.args, out.String())
		}
	}
}
