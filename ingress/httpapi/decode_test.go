package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// decodeCallBodyOracle is decodeCallBody as it was before the one-pass
// scan (encoding/json on the whole body into a map of raw members, each
// field checked from the map, then the front door's numbers check of the
// arguments): the reference the scan and topMembers must agree with.
func decodeCallBodyOracle(data []byte) (callBody, *contracts.Error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return callBody{}, contracts.NewError(contracts.CodeInvalidRequest, "the body must be a JSON object")
	}
	var b callBody
	raw, ok := fields["name"]
	if !ok {
		return callBody{}, contracts.NewError(contracts.CodeInvalidRequest, "field name is required")
	}
	if json.Unmarshal(raw, &b.Name) != nil {
		return callBody{}, contracts.NewError(contracts.CodeInvalidRequest, "field name must be a string")
	}
	if b.Name == "" || len(b.Name) > maxToolNameLen {
		return callBody{}, contracts.NewError(contracts.CodeInvalidRequest, "field name must be 1 to %d characters", maxToolNameLen)
	}
	switch raw := bytes.TrimSpace(fields["arguments"]); {
	case len(raw) == 0 || string(raw) == "null":
		b.Arguments = json.RawMessage("{}")
	case raw[0] == '{':
		b.Arguments = raw
	default:
		return callBody{}, contracts.NewError(contracts.CodeInvalidRequest, "field arguments must be an object")
	}
	for _, name := range []string{"server_id", "server_name"} {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if json.Unmarshal(raw, &b.Server) != nil {
			return callBody{}, contracts.NewError(contracts.CodeInvalidRequest, "field %s must be a string", name)
		}
		break
	}
	if raw, ok := fields["timeout_seconds"]; ok && string(raw) != "null" {
		var secs float64
		if json.Unmarshal(raw, &secs) != nil || secs <= 0 {
			return callBody{}, contracts.NewError(contracts.CodeInvalidRequest, "field timeout_seconds must be a positive number")
		}
		b.Timeout = time.Duration(secs * float64(time.Second))
	}
	return b, nil
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
	// name: escapes, null, other types, non-ASCII, at the length bound.
	`{"name":"demo-\u0065cho"}`,
	`{"name":"demo-\\echo\"\/"}`,
	`{"name":null}`,
	`{"name":true}`, `{"name":{"a":"b"}}`, `{"name":["demo-echo"]}`, `{"name":-1.5e3}`,
	`{"name":"démo-écho"}`,
	"{\"name\":\"demo\xc3\"}",
	`{"name":"` + strings.Repeat("n", 256) + `"}`,
	`{"name":"` + strings.Repeat("\u00e9", 128) + `"}`,
	`{"name":"` + strings.Repeat("\u00e9", 129) + `"}`,
	// Members repeated, members in any order, whitespace everywhere.
	`{"name":"a","name":"demo-echo"}`,
	`{"name":"demo-echo","name":1}`,
	`{"arguments":{"a":1},"server_id":"demo","name":"echo"}`,
	"\t{\r\n\"name\"\n:\t\"demo-echo\"\r,\"timeout_seconds\" : 3 ,\"server_id\":\"demo\" }\n",
	// Other members skipped whatever they hold.
	`{"x":{"name":1,"a":"}\"{","b":["]",{"}":"["}]},"name":"demo-echo","y":[1,"x",null,true,false,{}],"z":"\\"}`,
	`{"meta":{"arguments":{"n":1e400}},"name":"demo-echo","arguments":{"ok":1}}`,
	`{"name":"demo-echo","arguments":{"name":"x","server_id":2},"extra":-0.5e-3}`,
	`{"name":"demo-echo","Name":1,"SERVER_ID":2,"Timeout_Seconds":"x"}`,
	`{"name":"demo-echo","n\u0061me":"other"}`,
	`{"name":"demo-echo","server_\u0069d":"demo"}`,
	// server_id and server_name: escapes, types, null.
	`{"name":"demo-echo","server_id":"de\u006do"}`,
	`{"name":"demo-echo","server_id":null,"server_name":null}`,
	`{"name":"demo-echo","server_id":null,"server_name":{}}`,
	`{"name":"demo-echo","server_name":["demo"]}`,
	`{"name":"demo-echo","server_id":"","server_name":"demo"}`,
	`{"name":"demo-echo","server_id":false}`,
	// timeout_seconds: every kind of value.
	`{"name":"demo-echo","timeout_seconds":30}`,
	`{"name":"demo-echo","timeout_seconds":"30"}`,
	`{"name":"demo-echo","timeout_seconds":true}`,
	`{"name":"demo-echo","timeout_seconds":null}`,
	`{"name":"demo-echo","timeout_seconds":[1]}`,
	`{"name":"demo-echo","timeout_seconds":{}}`,
	`{"name":"demo-echo","timeout_seconds":0}`,
	`{"name":"demo-echo","timeout_seconds":-0}`,
	`{"name":"demo-echo","timeout_seconds":-1}`,
	`{"name":"demo-echo","timeout_seconds":1e-400}`,
	`{"name":"demo-echo","timeout_seconds":0.001}`,
	`{"name":"demo-echo","timeout_seconds":1E+2}`,
	`{"name":"demo-echo","timeout_seconds":` + strings.Repeat("9", 400) + `}`,
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
