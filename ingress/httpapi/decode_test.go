package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// decodeCallBodyOracle is decodeCallBody as it was before the one-pass
// scan (encoding/json on the whole body, then the front door's numbers
// check of the arguments): the reference the scan must agree with.
func decodeCallBodyOracle(data []byte) (*callBody, *contracts.Error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, contracts.NewError(contracts.CodeInvalidRequest, "the body must be a JSON object")
	}
	return callBodyFrom(fields, &callBody{})
}

var callBodies = []string{
	`{"name":"demo-echo","arguments":{"text":"hi"}}`,
	`{"name":"demo-echo"}`,
	`{"name":"demo-echo","arguments":null}`,
	`{"name":"demo-echo","arguments":[1]}`,
	`{"name":"demo-echo","arguments":"x"}`,
	`{"name":"demo-echo","arguments":{"n":1e400}}`,
	`{"name":"demo-echo","arguments":{"n":-2e308, "m":"1e400"}}`,
	`{"name":"demo-echo","arguments":{"n":1e400},"arguments":{"ok":1}}`,
	`{"name":"demo-echo","arguments":{"ok":1},"arguments":{"n":1e400}}`,
	`{"name":"demo-echo","arguments":{"ok":1},"arguments":null}`,
	`{"name":"demo-echo","argument\u0073":{"n":1e400}}`,
	`{"name":"demo-echo","arguments":{"a":1},"argument\u0073":{"b":2}}`,
	`{"name":"demo-echo","Arguments":{"a":1}}`,
	`{"n\u0061me":"demo-echo","arguments":{}}`,
	`{"name":"demo-echo","arguments":{},"timeout_seconds":1e400}`,
	`{"name":"demo-echo","timeout_seconds":2.5,"server_id":"demo","server_name":"x"}`,
	`{"name":"demo-echo","server_id":null,"server_name":"demo"}`,
	`{"name":"demo-echo","server_id":1}`,
	`{"name":1,"arguments":{}}`,
	`{"name":"","arguments":{}}`,
	`{"name":"` + strings.Repeat("n", 300) + `"}`,
	` { "name" : "demo-echo" , "arguments" : { "a" : [ 1 , { } ] } } `,
	`{"name":"demo-echo","arguments":{"s":"\u00e9\n\"\\"}}`,
	"{\"name\":\"demo-\xffecho\",\"arguments\":{}}",
	`{"name":"demo-echo","arguments":{}`,
	`{"name":"demo-echo","arguments":{}}}`,
	`{"name":"demo-echo","arguments":{"a":01}}`,
	`[{"name":"demo-echo"}]`,
	`null`, `"x"`, ``, `{}`,
}

// decodeCallBody answers every body as encoding/json did, and refuses the
// same arguments for their numbers, in one pass.
func TestDecodeCallBody_AgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, body := range callBodies {
		checkDecodeCallBody(t, []byte(body))
	}
}

func checkDecodeCallBody(t *testing.T, body []byte) {
	t.Helper()
	want, wantErr := decodeCallBodyOracle(body)
	got, gotErr := decodeCallBody(body)
	if (wantErr == nil) != (gotErr == nil) || wantErr != nil && (wantErr.Code != gotErr.Code || wantErr.Message != gotErr.Message) {
		t.Fatalf("%q: error %v, want %v", body, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if got.Name != want.Name || !bytes.Equal(got.Arguments, want.Arguments) || got.Server != want.Server || got.Timeout != want.Timeout {
		t.Fatalf("%q: %+v, want %+v", body, got, want)
	}
	// The front door checks the numbers from the scan: as CheckNumbers
	// of the arguments would.
	wantNum := frontdoor.CheckNumbers(want.Arguments)
	var gotNum bool
	if got.Scanned != nil {
		if !bytes.Equal(got.Scanned.Value, got.Arguments) {
			t.Fatalf("%q: scanned %q, arguments %q", body, got.Scanned.Value, got.Arguments)
		}
		gotNum = got.Scanned.Overflow != nil
	} else {
		gotNum = frontdoor.CheckNumbers(got.Arguments) != nil
	}
	if gotNum != (wantNum != nil) {
		t.Fatalf("%q: number refused %v, want %v", body, gotNum, wantNum)
	}
}

func FuzzDecodeCallBody(f *testing.F) {
	for _, body := range callBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeCallBody(t, body)
	})
}
