package frontdoor_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// CheckNumbers refuses exactly the arguments encoding/json cannot decode
// into map[string]any because of a number (what an MCP server does).
func TestCheckNumbers(t *testing.T) {
	t.Parallel()
	big := "1" + strings.Repeat("0", 308)  // 1e308, written out: fits
	huge := "2" + strings.Repeat("0", 308) // 2e308: does not
	tests := []struct {
		args string
		ok   bool
	}{
		{`{}`, true},
		{`{"x":1,"y":-2.5,"z":[1e10,2E-5,0]}`, true},
		{`{"x":1e308,"y":1e-400,"z":-0.0e999999}`, true},
		{`{"x":` + big + `}`, true},
		{`{"s":"1e400","t":"a\"1e400\\","u":"\\\\"}`, true},
		{`{"x":1e400}`, false},
		{`{"x":-1e400}`, false},
		{`{"a":{"b":[1,2,{"c":1.8e308}]}}`, false},
		{`{"x":` + huge + `}`, false},
		{`{"s":"x\"","x":1E+400}`, false},
	}
	for _, tt := range tests {
		var v map[string]any
		decodes := json.Unmarshal([]byte(tt.args), &v) == nil
		if decodes != tt.ok {
			t.Fatalf("test case %.40s: encoding/json decodes it: %v, want %v", tt.args, decodes, tt.ok)
		}
		e := frontdoor.CheckNumbers([]byte(tt.args))
		if tt.ok && e != nil {
			t.Errorf("CheckNumbers(%.40s) = %v, want nil", tt.args, e)
		}
		if !tt.ok && (e == nil || e.Code != contracts.CodeInvalidRequest || e.Retryable) {
			t.Errorf("CheckNumbers(%.40s) = %v, want invalid_request, not retryable", tt.args, e)
		}
	}
}
