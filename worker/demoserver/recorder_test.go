package demoserver

import (
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestRecorder_KeepsTheLatestOnly(t *testing.T) {
	var r Recorder
	for i := range MaxRecorded + 5 {
		req := httptest.NewRequest("POST", "/mcp", nil)
		req.Header.Set("Authorization", strconv.Itoa(i))
		r.record(req)
	}
	got := r.Authorizations()
	if len(got) > MaxRecorded || len(got) < MaxRecorded/2 || got[len(got)-1] != strconv.Itoa(MaxRecorded+4) {
		t.Fatalf("kept %d, last %q", len(got), got[len(got)-1])
	}
	for i := 1; i < len(got); i++ { // still in order, oldest first, none skipped
		prev, _ := strconv.Atoi(got[i-1])
		if cur, _ := strconv.Atoi(got[i]); cur != prev+1 {
			t.Fatalf("out of order at %d: %s after %s", i, got[i], got[i-1])
		}
	}
}

func TestRecorder_RPCMethodKeepsTheBody(t *testing.T) {
	var r Recorder
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 1000) + `"}}}`
	req := httptest.NewRequest("POST", "/mcp", strings.NewReader(body))
	r.record(req)
	rest, err := io.ReadAll(req.Body)
	if err != nil || string(rest) != body {
		t.Fatalf("the body after recording: %d bytes, %v; want it unchanged", len(rest), err)
	}
	if got := r.Entries()[0].RPCMethod; got != "tools/call" {
		t.Fatalf("RPCMethod %q, want tools/call", got)
	}
}
