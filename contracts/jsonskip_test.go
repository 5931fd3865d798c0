package contracts

import (
	"encoding/json"
	"testing"
)

// JSONValueEnd finds the end of every value of valid texts, whatever its
// kind, nesting, strings with escapes and brackets inside, or whitespace.
func TestJSONValueEnd(t *testing.T) {
	for _, value := range []string{
		`"plain"`, `"with \"quotes\" and \\ and \u0041 and } ]"`, `""`, `"\\"`,
		`{}`, `[]`, `{"a":[1,{"b":"}"}],"c":"]"}`, `[[[]],{"x":{"y":[]}}]`,
		`0`, `-12.5e+3`, `true`, `false`, `null`,
	} {
		if !json.Valid([]byte(value)) {
			t.Fatalf("%s is not valid JSON", value)
		}
		for _, after := range []string{"", ",", "}", "]", " ,", "\n}"} {
			data := []byte("[ " + value + after)
			if got := JSONValueEnd(data, 2); got != 2+len(value) {
				t.Errorf("JSONValueEnd(%q) = %d, want %d", data, got, 2+len(value))
			}
		}
	}
	if got := SkipJSONSpace([]byte(" \t\r\n x"), 0); got != 5 {
		t.Errorf("SkipJSONSpace = %d, want 5", got)
	}
	if got := SkipJSONSpace([]byte("  "), 0); got != 2 {
		t.Errorf("SkipJSONSpace at the end = %d, want 2", got)
	}
}
