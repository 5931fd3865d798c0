package telemetry

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Anything but a terminal gets JSON lines, asked for a person or not.
func TestNewLogger_JSONUnlessTerminal(t *testing.T) {
	file, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var buf bytes.Buffer
	for _, forPerson := range []bool{false, true} {
		buf.Reset()
		log, closeLog := NewLogger(&buf, forPerson)
		log.Info().Str("server", "demo").Msg("hello")
		closeLog()
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["message"] != "hello" || line["server"] != "demo" || line["time"] == nil {
			t.Errorf("forPerson %v: %q is not a JSON line with a time: %v", forPerson, buf.String(), err)
		}
	}
	if IsTerminal(file) {
		t.Error("a regular file is taken for a terminal")
	}
	if !strings.HasSuffix(buf.String(), "\n") {
		t.Error("a line without a newline")
	}
}
