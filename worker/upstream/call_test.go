package upstream

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client/transport"

	"github.com/mark3labs/mcp-go/mcp"
)

// appendCallParams encodes what mcp-go's CallToolParams would, byte for byte
// once the request is encoded (a json.RawMessage is compacted into it).
func TestCallParams_AsMCPGoEncodesThem(t *testing.T) {
	cases := []struct {
		tool, args, progress string
	}{
		{"echo", `{"text":"hello"}`, ""},
		{"echo", "", ""},
		{"echo", "null", ""},
		{"echo", "{ \"a\" : [1, 2.50, 1e400, 12345678901234567890],\n \"b\":\"<&>\\u00e9\" }", "toolbus-7"},
		{`we"ird\tool<&>é` + "\x01", `{}`, "toolbus-1"},
	}
	for _, c := range cases {
		var p mcp.CallToolParams
		p.Name = c.tool
		if c.args != "" {
			p.Arguments = json.RawMessage(c.args)
		}
		if c.progress != "" {
			p.Meta = &mcp.Meta{ProgressToken: c.progress}
		}
		want, err := json.Marshal(map[string]any{"params": p})
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(map[string]any{"params": json.RawMessage(appendCallParams(nil, c.tool, json.RawMessage(c.args), c.progress))})
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if string(got) != string(want) {
			t.Errorf("%+v:\n got %s\nwant %s", c, got, want)
		}
	}
	// Arguments that are not JSON fail the request's encoding, as before.
	if _, err := json.Marshal(map[string]any{"params": json.RawMessage(appendCallParams(nil, "echo", json.RawMessage(`{"a":`), ""))}); err == nil {
		t.Error("invalid arguments encoded")
	}
}

// The request encoding of a tools/call with 64 KiB of arguments, as
// mcp-go's CallToolParams and as appendCallParams.
func BenchmarkEncodeCall(b *testing.B) {
	args := json.RawMessage(`{"text":"` + strings.Repeat("x", 64<<10) + `"}`)
	encode := func(b *testing.B, params func() any) {
		b.ReportAllocs()
		b.SetBytes(int64(len(args)))
		for range b.N {
			if _, err := json.Marshal(transport.JSONRPCRequest{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId("toolbus-1"), Method: "tools/call", Params: params()}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("CallToolParams", func(b *testing.B) {
		encode(b, func() any {
			p := &mcp.CallToolParams{Name: "echo", Arguments: args}
			return p
		})
	})
	b.Run("appendCallParams", func(b *testing.B) {
		encode(b, func() any { return json.RawMessage(appendCallParams(nil, "echo", args, "")) })
	})
}
