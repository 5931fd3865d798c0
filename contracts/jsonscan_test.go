package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts/contractstest"
)

// jsonCases are texts json.Valid accepts and refuses, around every rule.
var jsonCases = []string{
	// values
	`{}`, `[]`, `""`, `0`, `-0`, `1`, `-1`, `12.5e3`, `1E+2`, `1e-2`, `0.0`, `true`, `false`, `null`,
	` {} `, "\t\r\n[ 1 , 2 ]\n", `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, `[[[]]]`, `[{}]`,
	`{"":""}`, `{"a":{}}`, `{"a":[]}`, `[1,[2,[3]]]`,
	// strings
	`"abc"`, `"a\"b"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\u0041\u00e9\uD83D\uDE00"`, `"\uDEAD"`, `"é"`, "\"\xff\xfe\"",
	"\"\x7f\"", `"01234567\"89abcdef"`, `"0123456\\"`, `"01234567890123456789\u00410123456789"`,
	"\"\x00\"", "\"\x1f\"", "\"a\nb\"", "\"0123456789\t\"", `"\x"`, `"\u12"`, `"\u12G4"`, `"\U1234"`, `"\'"`,
	`"abc`, `"abc\`, `"abc\u00`, `"`, `"\`, `'a'`,
	// numbers
	`01`, `-`, `-a`, `1.`, `.5`, `+1`, `1e`, `1e+`, `1E-x`, `0x10`, `1.e5`, `--1`, `-01`, `1.5.5`, `1ee5`, `NaN`, `Infinity`,
	`1e400`, `-1e400`, `1e-400`, `0e999999999999999999999999`, `[1e308,1.7976931348623157e308,1.7976931348623159e308]`,
	// literals
	`tru`, `truex`, `nul`, `nulll`, `fals`, `True`, `t`, `[true false]`,
	// structure
	``, ` `, `{`, `}`, `[`, `]`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{a:1}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a":1 "b":2}`,
	`[1 2]`, `{}{}`, `{} x`, `[]]`, `{]`, `[}`, `{"a":1]`, `[1}`, `{"a":[}`, `{1:2}`, `{"a":1,"a":2}`, "\xef\xbb\xbf{}",
	strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth),
	strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1),
	strings.Repeat(`{"a":`, MaxJSONDepth) + "1" + strings.Repeat("}", MaxJSONDepth),
	strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1),
	strings.Repeat("[", 100),
}

// ScanJSON accepts exactly what json.Valid accepts.
func TestScanJSON_AgreesWithValid(t *testing.T) {
	t.Parallel()
	for _, text := range jsonCases {
		want := json.Valid([]byte(text))
		_, err := ScanJSON([]byte(text), nil)
		if got := err == nil; got != want {
			t.Errorf("ScanJSON(%.60q) valid = %v (%v), json.Valid = %v", text, got, err, want)
		}
		var se *JSONSyntaxError
		if err != nil && !errors.As(err, &se) {
			t.Errorf("ScanJSON(%.60q): error %T, want *JSONSyntaxError", text, err)
		}
	}
	// Every prefix of a valid text with strings, escapes and numbers that
	// straddle the 8-byte words.
	full := `{"k":["0123456789abcdef\"\\\/\u00e9xx",-12.5e-3,true,{"n":null,"e":"","f":false}],"z":"` + strings.Repeat("ab", 20) + `"}`
	for n := 0; n <= len(full); n++ {
		text := full[:n]
		_, err := ScanJSON([]byte(text), nil)
		if got, want := err == nil, json.Valid([]byte(text)); got != want {
			t.Errorf("prefix %q: valid = %v, json.Valid = %v", text, got, want)
		}
	}
	// A control character, a quote or a backslash at every position of a
	// long string.
	for _, c := range []byte{0, '\n', 0x1f, '"', '\\', 0x7f, 0x80, 0xff} {
		for pos := 0; pos < 20; pos++ {
			b := []byte(`"` + strings.Repeat("x", 20) + `"`)
			b[1+pos] = c
			_, err := ScanJSON(b, nil)
			if got, want := err == nil, json.Valid(b); got != want {
				t.Errorf("%q: valid = %v, json.Valid = %v", b, got, want)
			}
		}
	}
}

// Overflow is exactly the numbers strconv.ParseFloat refuses with
// ErrRange, which encoding/json cannot decode into a float64.
func TestScanJSON_Overflow(t *testing.T) {
	t.Parallel()
	big := "1" + strings.Repeat("0", 308)  // 1e308 written out
	huge := "2" + strings.Repeat("0", 308) // 2e308
	tests := []struct {
		text     string
		overflow string
	}{
		{`{"x":1,"y":-2.5,"z":[1e10,2E-5,0]}`, ""},
		{`{"x":1e308,"y":1e-400,"z":-0.0e999999}`, ""},
		{`[` + big + `]`, ""},
		{`[` + huge + `]`, huge},
		{`[-` + huge + `.5]`, "-" + huge + ".5"},
		{`{"s":"1e400","t":"a\"1e400\\","u":"\\\\"}`, ""},
		{`{"x":1e400}`, "1e400"},
		{`{"a":{"b":[1,2,{"c":1.8e308}]}}`, "1.8e308"},
		{`[1.7976931348623157e308, 1.7976931348623158e308]`, ""},
		{`[1.7976931348623159e308]`, "1.7976931348623159e308"},
		{`[0.00017976931348623159e312]`, "0.00017976931348623159e312"},
		{`[0.00017976931348623157e312]`, ""},
		{`[17976931348623159e292]`, "17976931348623159e292"},
		{`[1e99999999999999999999999999]`, "1e99999999999999999999999999"},
		{`[1e-99999999999999999999999999]`, ""},
		{`[2e400, 3e400]`, "2e400"},
	}
	for _, tt := range tests {
		s, err := ScanJSON([]byte(tt.text), nil)
		if err != nil {
			t.Fatalf("ScanJSON(%.40s): %v", tt.text, err)
		}
		if string(s.Overflow) != tt.overflow {
			t.Errorf("ScanJSON(%.40s).Overflow = %.40s, want %.40s", tt.text, s.Overflow, tt.overflow)
		}
		var v any
		if decodes := json.Unmarshal([]byte(tt.text), &v) == nil; decodes != (tt.overflow == "") {
			t.Errorf("test case %.40s: encoding/json decodes it: %v", tt.text, decodes)
		}
	}
	// Random numbers near the limit: the same answer as ParseFloat.
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		var num string
		switch r.IntN(3) {
		case 0:
			num = fmt.Sprintf("%d.%de%d", r.IntN(100), r.IntN(1000), 300+r.IntN(15))
		case 1:
			num = fmt.Sprintf("0.%s%de%d", strings.Repeat("0", r.IntN(5)), r.IntN(100000), 305+r.IntN(15))
		default:
			num = strconv.FormatFloat(r.Float64()*1.8, 'f', -1, 64) + "e" + strconv.Itoa(305+r.IntN(5))
		}
		s, err := ScanJSON([]byte(num), nil)
		if err != nil {
			t.Fatalf("ScanJSON(%s): %v", num, err)
		}
		_, perr := strconv.ParseFloat(num, 64)
		if got, want := s.Overflow != nil, errors.Is(perr, strconv.ErrRange); got != want {
			t.Fatalf("%s: overflow %v, ParseFloat says %v", num, got, want)
		}
	}
}

var wantArgs = NewJSONWant("params", "params.arguments", "arguments")

// The reported members are the values encoding/json gives as
// json.RawMessage, the last of a repeated name, each with its own overflow.
func TestScanJSON_Members(t *testing.T) {
	t.Parallel()
	text := `{"jsonrpc":"2.0", "params" : {"name":"x","arguments": {"a":[1e400]} ,"task":null}, "arguments":[1, 2e999],` +
		`"arguments" : {"b":"c"} , "id":7}`
	s, err := ScanJSON([]byte(text), wantArgs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Aliased {
		t.Fatal("aliased without an alias")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &top); err != nil {
		t.Fatal(err)
	}
	p := s.Last(-1, "params")
	if p < 0 || !bytes.Equal(s.Members[p].Value, top["params"]) {
		t.Fatalf("params = %d %+v, want %s", p, s.Members, top["params"])
	}
	if string(s.Members[p].Overflow) != "1e400" || string(s.Overflow) != "1e400" {
		t.Errorf("params overflow %s, text overflow %s", s.Members[p].Overflow, s.Overflow)
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(top["params"], &params); err != nil {
		t.Fatal(err)
	}
	a := s.Last(p, "params.arguments")
	if a < 0 || !bytes.Equal(s.Members[a].Value, params["arguments"]) || string(s.Members[a].Overflow) != "1e400" {
		t.Fatalf("params.arguments = %d, %+v", a, s.Members)
	}
	a = s.Last(-1, "arguments")
	if a < 0 || !bytes.Equal(s.Members[a].Value, top["arguments"]) || s.Members[a].Overflow != nil {
		t.Fatalf("last arguments = %d, %+v", a, s.Members)
	}
	if first := s.Last(-1, "arguments") - 1; string(s.Members[first].Value) != "[1, 2e999]" || string(s.Members[first].Overflow) != "2e999" {
		t.Errorf("first arguments %+v", s.Members[first])
	}
	if s.Last(-1, "name") != -1 || s.Last(5, "params") != -1 {
		t.Error("Last found a member that is not reported")
	}

	// Cut leaves the rest as encoding/json decodes it.
	var cut map[string]json.RawMessage
	if err := json.Unmarshal(s.Cut(-1), &cut); err != nil {
		t.Fatalf("Cut(-1) = %s: %v", s.Cut(-1), err)
	}
	if string(cut["params"]) != "null" || string(cut["arguments"]) != "null" || string(cut["id"]) != "7" || string(cut["jsonrpc"]) != `"2.0"` {
		t.Errorf("Cut(-1) = %s", s.Cut(-1))
	}
	if got := string(s.Cut(p)); got != `{"name":"x","arguments": null ,"task":null}` {
		t.Errorf("Cut(params) = %s", got)
	}
	if got := string(s.Replace(p, []byte(`{"x":[]}`))); got != `{"name":"x","arguments": {"x":[]} ,"task":null}` {
		t.Errorf("Replace(params) = %s", got)
	}
	noMembers := []byte(`{"id":1}`)
	s, _ = ScanJSON(noMembers, wantArgs)
	if got := s.Cut(-1); &got[0] != &noMembers[0] {
		t.Error("Cut without members copied the text")
	}
}

// A key that encoding/json may match to a wanted name without being
// spelled as it is flagged; other keys and other levels are not.
func TestScanJSON_Aliased(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text    string
		aliased bool
	}{
		{`{"params":{"arguments":{}}}`, false},
		{`{"Params":{}}`, true},
		{`{"PARAMS":1}`, true},
		{`{"param\u0073":{}}`, true},
		{"{\"\xc5\xbfparams\":1}", true},
		{`{"params":{"Arguments":{}}}`, true},
		{`{"params":{"argument\u0073":{}}}`, true},
		{`{"params":{"arguments":{"Arguments":1,"params":2}}}`, false},
		{`{"params":[{"Arguments":1}]}`, false},
		{`{"x":{"Params":1},"paramz":2,"param":3}`, false},
		{`[{"Params":1}]`, false},
	}
	for _, tt := range tests {
		s, err := ScanJSON([]byte(tt.text), wantArgs)
		if err != nil {
			t.Fatalf("%s: %v", tt.text, err)
		}
		if s.Aliased != tt.aliased {
			t.Errorf("ScanJSON(%s).Aliased = %v, want %v", tt.text, s.Aliased, tt.aliased)
		}
	}
}

// A wanted path deeper than the scanner's inline frames, and nesting
// deeper than its inline container bits inside a reported member: the
// members, their overflows and the cut are still what encoding/json sees.
func TestScanJSON_DeepPaths(t *testing.T) {
	t.Parallel()
	want := NewJSONWant("a.b.c.d.e.f", "a.b.c.d.e.g")
	deep := strings.Repeat("[", 300) + "1e400" + strings.Repeat("]", 300)
	text := `{"a":{"x":1,"b":{"c":{"d":{"e":{"f":` + deep + `,"g":{"h":[]},"f":[2]}}}}}}`
	s, err := ScanJSON([]byte(text), want)
	if err != nil {
		t.Fatal(err)
	}
	parent := -1
	for _, path := range []string{"a", "a.b", "a.b.c", "a.b.c.d", "a.b.c.d.e"} {
		i := s.Last(parent, path)
		if i < 0 || string(s.Members[i].Overflow) != "1e400" {
			t.Fatalf("%s: member %d of %+v", path, i, s.Members)
		}
		parent = i
	}
	e := s.Members[parent].Value
	var members map[string]json.RawMessage
	if err := json.Unmarshal(e, &members); err != nil {
		t.Fatal(err)
	}
	f, g := s.Last(parent, "a.b.c.d.e.f"), s.Last(parent, "a.b.c.d.e.g")
	if f < 0 || string(s.Members[f].Value) != "[2]" || s.Members[f].Overflow != nil {
		t.Errorf("f = %d %+v", f, s.Members)
	}
	if first := f - 2; first < 0 || string(s.Members[first].Value) != deep || string(s.Members[first].Overflow) != "1e400" {
		t.Errorf("the first f is not the deep array: %+v", s.Members)
	}
	if g < 0 || !bytes.Equal(s.Members[g].Value, members["g"]) {
		t.Errorf("g = %d %+v, want %s", g, s.Members, members["g"])
	}
	if got := string(s.Cut(parent)); got != `{"f":null,"g":null,"f":null}` {
		t.Errorf("Cut(e) = %s", got)
	}
}

// Validating without wanted members allocates nothing, however deep the
// text nests within the inline container bits; a wanted member costs only
// the growth of Members.
func TestScanJSON_Allocations(t *testing.T) {
	args := []byte(`{"summary":"New ticket","priority":3,"labels":["a","b"],"nested":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := ScanJSON(args, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ScanJSON(args, nil): %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := ScanJSON(args, wantArgs); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ScanJSON(args, want) with no wanted member: %v allocations, want 0", n)
	}
	body := []byte(`{"name":"t","arguments":` + string(args) + `}`)
	if n := testing.AllocsPerRun(100, func() {
		if s, err := ScanJSON(body, wantArgs); err != nil || s.Last(-1, "arguments") < 0 {
			t.Fatal(s, err)
		}
	}); n != 1 {
		t.Errorf("ScanJSON(body, want) with one wanted member: %v allocations, want 1", n)
	}
	message := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":` + string(args) + `}}`)
	if n := testing.AllocsPerRun(100, func() {
		if s, err := ScanJSON(message, wantArgs); err != nil || s.Last(-1, "params") < 0 {
			t.Fatal(s, err)
		}
	}); n != 1 {
		t.Errorf("ScanJSON(message, want) with two wanted members: %v allocations, want 1", n)
	}
}

func TestNewJSONWant_RefusesBadPaths(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "a.", ".a", `a"b`, `a\b`, "é"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewJSONWant(%q) did not panic", p)
				}
			}()
			NewJSONWant(p)
		}()
	}
}

// FuzzScanJSON: for any input, ScanJSON agrees with json.Valid, and on an
// object the reported members are the values encoding/json decodes (the
// last of a repeated name), and the cut text decodes to the same other
// members.
func FuzzScanJSON(f *testing.F) {
	for _, text := range jsonCases {
		if len(text) < 1000 {
			f.Add([]byte(text))
		}
	}
	f.Add([]byte(`{"params":{"name":"t","arguments":{"a":"\u00e9\n","n":[1.5e3,-0]}},"id":1}`))
	f.Add([]byte(`{"arguments":{"x":1e400},"arguments":{},"name":"a"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ScanJSON(data, wantArgs)
		if valid := json.Valid(data); (err == nil) != valid {
			t.Fatalf("ScanJSON(%q) = %v, json.Valid = %v", data, err, valid)
		}
		if err != nil {
			return
		}
		var v any
		if decodes := json.Unmarshal(data, &v) == nil; decodes != (s.Overflow == nil) {
			t.Fatalf("%q: overflow %q, but encoding/json decodes it: %v", data, s.Overflow, decodes)
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) != nil || s.Aliased {
			return
		}
		var cut map[string]json.RawMessage
		if err := json.Unmarshal(s.Cut(-1), &cut); err != nil {
			t.Fatalf("%q: the cut text %q does not decode: %v", data, s.Cut(-1), err)
		}
		for _, name := range []string{"params", "arguments"} {
			i := s.Last(-1, name)
			if raw, ok := top[name]; ok != (i >= 0) || ok && !bytes.Equal(raw, s.Members[i].Value) {
				t.Fatalf("%q: %s = %d, encoding/json: %q", data, name, i, raw)
			}
			delete(top, name)
			delete(cut, name)
		}
		if fmt.Sprint(top) != fmt.Sprint(cut) {
			t.Fatalf("%q: cut decodes to %v, want %v", data, cut, top)
		}
	})
}

// BenchmarkScanJSON compares the one pass with encoding/json's two (Valid;
// Unmarshal into json.RawMessage, which validates and then copies) on 1 MiB
// of arguments in a tools/call body.
func BenchmarkScanJSON(b *testing.B) {
	body := []byte(`{"name":"jira-create_issue","timeout_seconds":30,"arguments":` + string(contractstest.RealisticArguments(1<<20)) + `}`)
	want := NewJSONWant("arguments")
	b.Run("ScanJSON", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := ScanJSON(body, want); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Unmarshal-RawMessage", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(body, &fields); err != nil {
				b.Fatal(err)
			}
		}
	})
}
