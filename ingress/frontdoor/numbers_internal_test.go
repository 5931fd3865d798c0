package frontdoor

import (
	"testing"

	"github.com/toolbus/toolbus/contracts"
)

// A door that scanned its body passes the member it found
// (CallInput.Scanned): the refusal is CheckNumbers' own, code and message.
func TestCallInput_NumbersFromTheDoorsScan(t *testing.T) {
	t.Parallel()
	want := contracts.NewJSONWant("arguments")
	for _, args := range []string{`{}`, `{"x":1,"y":[2.5e10]}`, `{"x":1e400}`, `{"s":"1e400","n":[-1.8e308]}`, `{"a":{"b":0.1e310}}`} {
		body := `{"name":"t","arguments":` + args + `}`
		scan, err := contracts.ScanJSON([]byte(body), want)
		if err != nil {
			t.Fatal(err)
		}
		in := &CallInput{Arguments: []byte(args), Scanned: &scan.Members[scan.Last(-1, "arguments")]}
		got, wantErr := in.checkNumbers(), CheckNumbers([]byte(args))
		if (got == nil) != (wantErr == nil) || got != nil && (got.Code != wantErr.Code || got.Message != wantErr.Message || got.Retryable) {
			t.Errorf("%s: %v, want %v", args, got, wantErr)
		}
	}
	// Without a scan, CheckNumbers runs; empty arguments are none, and
	// text that is not JSON (no door passes it) is refused.
	if e := (&CallInput{}).checkNumbers(); e != nil {
		t.Errorf("no arguments: %v", e)
	}
	if e := CheckNumbers([]byte(`{"x":`)); e == nil || e.Code != contracts.CodeInvalidRequest {
		t.Errorf("invalid arguments: %v", e)
	}
}
