package contracts

import (
	"encoding/json"
	"strings"
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

// EachJSONMember gives every member of an object in order, keys as
// written, values whole (nested, with escapes and brackets in strings),
// takes a known value end as given, stops when asked, and refuses what is
// not an object.
func TestEachJSONMember(t *testing.T) {
	obj := []byte(` { "a" : 1 , "b\"c":{"x":["}",{}]}, "d":"\\\"}" ,"e":[] } `)
	if !json.Valid(obj) {
		t.Fatalf("%s is not valid JSON", obj)
	}
	var got []string
	if !EachJSONMember(obj, nil, func(key, value []byte) bool {
		got = append(got, string(key)+"="+string(value))
		return true
	}) {
		t.Fatal("an object was not taken for one")
	}
	want := []string{`a=1`, `b\"c={"x":["}",{}]}`, `d="\\\"}"`, `e=[]`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("members %q, want %q", got, want)
	}

	// A known end is used as given (here: shorter than the value).
	start := strings.Index(string(obj), `{"x"`)
	var b string
	EachJSONMember(obj, func(s int) int {
		if s == start {
			return start + 1
		}
		return -1
	}, func(key, value []byte) bool {
		if string(key) == `b\"c` {
			b = string(value)
			return false
		}
		return true
	})
	if b != "{" {
		t.Errorf("the known end was not used: %q", b)
	}

	n := 0
	EachJSONMember(obj, nil, func(key, value []byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("%d calls after f returned false, want 1", n)
	}
	for _, text := range []string{`[]`, `"x"`, `1`, `  `, `{}`} {
		calls := 0
		ok := EachJSONMember([]byte(text), nil, func(key, value []byte) bool { calls++; return true })
		if ok != (text == `{}`) || calls != 0 {
			t.Errorf("%q: ok %v with %d members", text, ok, calls)
		}
	}
}
