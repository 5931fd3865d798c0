package panics_test

import (
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/internal/panics"
)

func TestLog_NamesThePanicNotItsValue(t *testing.T) {
	logs := &contractstest.LogBuffer{}
	log := logs.Logger("worker")
	recovered := func(f func()) {
		defer func() { panics.Log(log.Error().Str("request_id", "r1"), recover()) }()
		f()
	}
	recovered(func() { panic("Bearer secret-from-upstream") })
	recovered(func() {
		var m map[string]int
		m["x"] = 1
	})
	lines := logs.Lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	if got := lines[0]["panic"]; got != "a value of type string" || strings.Contains(logs.String(), "secret-from-upstream") {
		t.Errorf("panic = %v: want the type only, never the value", got)
	}
	if got, _ := lines[1]["panic"].(string); !strings.Contains(got, "assignment to entry in nil map") {
		t.Errorf("panic = %q: want the runtime's text", got)
	}
	if stack, _ := lines[1]["stack"].(string); !strings.Contains(stack, "panics_test") || lines[1]["request_id"] != "r1" {
		t.Errorf("line %v: want the stack and the request", lines[1])
	}
}
