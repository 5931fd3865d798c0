package contracts

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestClientRequestRPCID_RoundTrip(t *testing.T) {
	id := ClientRequestRPCID("jira", "mcp0123abcd", "Yx3kq0Zr5sT9")
	server, req, n, ok := ParseClientRequestRPCID(id)
	if !ok || server != "jira" || req != "mcp0123abcd" || n != "Yx3kq0Zr5sT9" {
		t.Fatalf("ParseClientRequestRPCID(%q) = %q %q %q %v", id, server, req, n, ok)
	}
	for _, bad := range []string{
		"", "jira:r:n", "toolbus:jira:r", "toolbus:jira:r:n:x", "toolbus::r:n", "toolbus:jira::n",
		"toolbus:jira:r.>:n", "toolbus:jira:r:*", "toolbus:ji ra:r:n", "toolbus:jira:r:" + strings.Repeat("n", 200),
	} {
		if _, _, _, ok := ParseClientRequestRPCID(bad); ok {
			t.Errorf("ParseClientRequestRPCID(%q) accepted", bad)
		}
	}
}

func TestDecodeClientAnswer_RejectsBadMessages(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"type": TypeClientAnswer, "request_id": "r1", "id": "n1", "key_id": "k", "result": map[string]any{}}
	}
	cases := map[string]func(m map[string]any){
		"wrong type":          func(m map[string]any) { m["type"] = TypeCallEvent },
		"no request id":       func(m map[string]any) { delete(m, "request_id") },
		"wildcard id":         func(m map[string]any) { m["id"] = ">" },
		"both":                func(m map[string]any) { m["error"] = map[string]any{"code": 1, "message": "x"} },
		"neither":             func(m map[string]any) { delete(m, "result") },
		"result not object":   func(m map[string]any) { m["result"] = []int{1} },
		"key id too long":     func(m map[string]any) { m["key_id"] = strings.Repeat("k", 200) },
		"request id with dot": func(m map[string]any) { m["request_id"] = "a.b" },
	}
	data, _ := json.Marshal(valid())
	if _, err := DecodeClientAnswer(data); err != nil {
		t.Fatalf("valid answer refused: %v", err)
	}
	for name, mutate := range cases {
		m := valid()
		mutate(m)
		data, _ := json.Marshal(m)
		if _, err := DecodeClientAnswer(data); err == nil {
			t.Errorf("%s: accepted %s", name, data)
		}
	}
	errAnswer, _ := json.Marshal(map[string]any{"type": TypeClientAnswer, "request_id": "r1", "id": "n1", "key_id": "k",
		"error": map[string]any{"code": -32601, "message": "no sampling here"}})
	if a, err := DecodeClientAnswer(errAnswer); err != nil || a.Error.Code != -32601 {
		t.Fatalf("error answer: %+v, %v", a, err)
	}
}
