package contracts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// One JSON pass per request: ScanJSON validates a request body, checks its
// numbers and finds the members a door needs raw (tool arguments, JSON-RPC
// params), in a single scan. The door then decodes only the small rest of
// the body with encoding/json (JSONScan.Cut) and keeps the large member as a
// sub-slice of the body, never scanned again.

// MaxJSONDepth is the deepest nesting of objects and arrays ScanJSON
// accepts: encoding/json's own limit.
const MaxJSONDepth = 10000

// maxPlainDigits is the most integer digits a number without an exponent
// can have and still fit a float64 (whose largest value has 309 digits).
const maxPlainDigits = 308

// JSONWant names the members of a JSON object that ScanJSON reports. A
// path names a member of the top-level object ("arguments"), or, through
// '.', a member of such a member's object value ("params.arguments").
// Build one with NewJSONWant, once: it is read-only afterwards.
type JSONWant struct {
	nodes []wantNode // nodes[0]: the top-level object
	paths int        // how many paths it names
}

type wantNode struct {
	names    []string // wanted member names of this object
	paths    []string // per name: its whole path
	children []int    // per name: the node of its object value, or -1
}

// NewJSONWant returns the set of member paths ScanJSON is to report. Names
// must be non-empty ASCII without '.', '"' or '\\' (they are the door's own
// constants).
func NewJSONWant(paths ...string) *JSONWant {
	w := &JSONWant{nodes: []wantNode{{}}}
	for _, p := range paths {
		node := 0
		names := strings.Split(p, ".")
		for k, name := range names {
			if name == "" || strings.ContainsAny(name, `"\`) || strings.IndexFunc(name, func(r rune) bool { return r >= 0x80 }) >= 0 {
				panic("contracts: bad JSONWant path " + strconv.Quote(p))
			}
			i := slices.Index(w.nodes[node].names, name)
			if i < 0 {
				n := &w.nodes[node]
				n.names = append(n.names, name)
				n.paths = append(n.paths, strings.Join(names[:k+1], "."))
				n.children = append(n.children, -1)
				i = len(n.names) - 1
				w.paths++
			}
			if k == len(names)-1 {
				break
			}
			if w.nodes[node].children[i] < 0 {
				w.nodes = append(w.nodes, wantNode{})
				w.nodes[node].children[i] = len(w.nodes) - 1
			}
			node = w.nodes[node].children[i]
		}
	}
	return w
}

// JSONMember is one reported member: a member of a wanted path whose key
// is spelled exactly as the path's name (no escapes).
type JSONMember struct {
	// Path is the JSONWant path it answers ("params.arguments").
	Path string
	// Parent is the index in JSONScan.Members of the member whose object
	// value holds this one; -1 for a member of the top-level object.
	Parent int
	// Value is the member's value as written, without the whitespace
	// around it: data[Start:End].
	Value      []byte
	Start, End int
	// Overflow is the first number in Value that no float64 holds (1e400),
	// nil if none: see JSONScan.Overflow.
	Overflow []byte

	child int // the JSONWant node of its object value, or -1
}

// JSONScan is what ScanJSON found in a valid JSON text.
type JSONScan struct {
	// Members are the reported members, in the order they end in the text
	// (a member inside another one comes first). A name may repeat: as
	// encoding/json does, the last one is the member's value (Last).
	Members []JSONMember
	// Aliased is set when an object whose members are reported has a key
	// that encoding/json may match to a wanted name although it is not
	// spelled exactly so: written with escapes, with non-ASCII bytes, or in
	// other letter case (encoding/json matches struct fields without
	// regard to case). The members do not then say which value
	// encoding/json would decode: decode the whole text with it instead.
	Aliased bool
	// Overflow is the first number in the text that is valid JSON but no
	// float64 (1e400, -1e400): Go's and JavaScript's JSON readers refuse or
	// cannot represent it. nil if none.
	Overflow []byte

	data []byte
}

// Last returns the index in s.Members of the last member with path whose
// parent is parent (-1: the top-level object), or -1.
func (s *JSONScan) Last(parent int, path string) int {
	for i := len(s.Members) - 1; i >= 0; i-- {
		if m := &s.Members[i]; m.Parent == parent && m.Path == path {
			return i
		}
	}
	return -1
}

// Cut returns the object of parent (-1: the whole text; else the value of
// s.Members[parent]) with the value of each of its reported members
// replaced by null: what is left for encoding/json to decode once the
// large members are kept raw. Decoding it gives every other member exactly
// as decoding the whole would, provided s.Aliased is not set and the
// reported members decode into json.RawMessage (which takes any value).
// Without reported members it is the object itself, not a copy.
func (s *JSONScan) Cut(parent int) []byte { return s.Replace(parent, []byte("null")) }

// Replace returns the object of parent (as Cut) with the value of each of
// its reported members replaced by value, which must be one JSON value.
// Without reported members it is the object itself, not a copy.
func (s *JSONScan) Replace(parent int, value []byte) []byte {
	text, base := s.data, 0
	if parent >= 0 {
		m := &s.Members[parent]
		text, base = m.Value, m.Start
	}
	var out []byte
	at := 0
	for i := range s.Members {
		m := &s.Members[i]
		if m.Parent != parent {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(text)-(m.End-m.Start)+len(value)+16)
		}
		out = append(out, text[at:m.Start-base]...)
		out = append(out, value...)
		at = m.End - base
	}
	if out == nil {
		return text
	}
	return append(out, text[at:]...)
}

// JSONSyntaxError is the error of ScanJSON on text that is not JSON.
type JSONSyntaxError struct {
	Offset int // where in the text the error was seen
	What   string
}

func (e *JSONSyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.Offset, e.What)
}

// ScanJSON validates data as one JSON text (RFC 8259) in a single pass,
// accepting exactly what encoding/json accepts (json.Valid): invalid UTF-8
// inside strings is accepted as encoding/json does (it decodes it as
// U+FFFD), control characters inside strings and bad escapes are refused,
// nesting is bounded by MaxJSONDepth. It also finds, for want (nil: none),
// the members it names, and notes every number no float64 holds (see
// JSONScan.Overflow). The returned scan refers to data, which must not
// change while it is used.
func ScanJSON(data []byte, want *JSONWant) (JSONScan, error) {
	sc := jsonScanner{data: data}
	if want != nil {
		sc.want, sc.wantPaths = want.nodes, want.paths
	}
	err := sc.run()
	sc.out.data = data
	if err != nil {
		return JSONScan{}, err
	}
	return sc.out, nil
}

// recFrame is an open object whose members are reported.
type recFrame struct {
	node   int // its JSONWant node
	parent int // the member whose value it is; -1: the top-level object
	cur    int // the reported member being read, or -1
}

type jsonScanner struct {
	data      []byte
	want      []wantNode
	wantPaths int
	out       JSONScan
	depth     int
	// objs has a bit per open container, set for an object: the outermost
	// 256 in objs, the deeper ones in deepObjs. No field points into the
	// scanner itself, so a scan that reports no member (and nests less
	// deep) allocates nothing.
	objs     [4]uint64
	deepObjs []uint64
	// The open objects whose members are reported are always the
	// outermost nrec containers: the first ones in rec, the others in
	// deepRec (see frame).
	rec     [4]recFrame
	deepRec []recFrame
	nrec    int
}

// objWord returns the word of sc's open-container bits holding depth d's.
func (sc *jsonScanner) objWord(d int) *uint64 {
	if w := d >> 6; w < len(sc.objs) {
		return &sc.objs[w]
	}
	return &sc.deepObjs[d>>6-len(sc.objs)]
}

// frame returns the k-th open object whose members are reported (k < nrec).
func (sc *jsonScanner) frame(k int) *recFrame {
	if k < len(sc.rec) {
		return &sc.rec[k]
	}
	return &sc.deepRec[k-len(sc.rec)]
}

// addFrame opens the next object whose members are reported.
func (sc *jsonScanner) addFrame(f recFrame) {
	if k := sc.nrec - len(sc.rec); k < 0 {
		sc.rec[sc.nrec] = f
	} else {
		sc.deepRec = append(sc.deepRec[:k], f)
	}
	sc.nrec++
}

func (sc *jsonScanner) fail(i int, what string) error {
	if i >= len(sc.data) {
		return &JSONSyntaxError{Offset: len(sc.data), What: "unexpected end of JSON input"}
	}
	return &JSONSyntaxError{Offset: i, What: fmt.Sprintf("invalid character %s %s", quoteByte(sc.data[i]), what)}
}

func quoteByte(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func (sc *jsonScanner) inObject() bool {
	d := sc.depth - 1
	return *sc.objWord(d)&(1<<(d&63)) != 0
}

// push opens a container at i.
func (sc *jsonScanner) push(object bool, i int) error {
	d := sc.depth
	if d >= MaxJSONDepth {
		return &JSONSyntaxError{Offset: i, What: "exceeded max depth"}
	}
	if w := d>>6 - len(sc.objs); w == len(sc.deepObjs) {
		sc.deepObjs = append(sc.deepObjs, 0)
	}
	if object {
		*sc.objWord(d) |= 1 << (d & 63)
	} else {
		*sc.objWord(d) &^= 1 << (d & 63)
	}
	sc.depth++
	if !object || sc.want == nil {
		return nil
	}
	switch {
	case d == 0:
		sc.addFrame(recFrame{node: 0, parent: -1, cur: -1})
	case d == sc.nrec:
		f := sc.frame(d - 1)
		if f.cur >= 0 && sc.out.Members[f.cur].child >= 0 {
			sc.addFrame(recFrame{node: sc.out.Members[f.cur].child, parent: f.cur, cur: -1})
		}
	}
	return nil
}

func (sc *jsonScanner) pop() {
	sc.depth--
	sc.nrec = min(sc.nrec, sc.depth)
}

const (
	stValue = iota // a value starts at i (whitespace skipped)
	stAfter        // a value ended at i
	stKey          // an object's member starts at i (whitespace skipped)
)

func (sc *jsonScanner) run() error {
	data := sc.data
	i := skipSpace(data, 0)
	state := stValue
	for {
		switch state {
		case stValue:
			if i >= len(data) {
				return sc.fail(i, "")
			}
			switch c := data[i]; c {
			case '{', '[':
				if err := sc.push(c == '{', i); err != nil {
					return err
				}
				i = skipSpace(data, i+1)
				if i < len(data) && data[i] == c+2 { // '}' or ']'
					sc.pop()
					i++
					state = stAfter
				} else if c == '{' {
					state = stKey
				}
			case '"':
				j, _, err := scanString(data, i+1)
				if err != nil {
					return err
				}
				i, state = j, stAfter
			case 't':
				if !hasLiteral(data, i, "true") {
					return sc.literalError(i, "true")
				}
				i, state = i+4, stAfter
			case 'f':
				if !hasLiteral(data, i, "false") {
					return sc.literalError(i, "false")
				}
				i, state = i+5, stAfter
			case 'n':
				if !hasLiteral(data, i, "null") {
					return sc.literalError(i, "null")
				}
				i, state = i+4, stAfter
			default:
				if c != '-' && (c < '0' || c > '9') {
					return sc.fail(i, "looking for beginning of value")
				}
				j, err := sc.number(i)
				if err != nil {
					return err
				}
				i, state = j, stAfter
			}
		case stAfter:
			if n := sc.nrec; n > 0 && n == sc.depth {
				if f := sc.frame(n - 1); f.cur >= 0 {
					m := &sc.out.Members[f.cur]
					m.End, m.Value = i, data[m.Start:i]
					f.cur = -1
				}
			}
			i = skipSpace(data, i)
			if sc.depth == 0 {
				if i != len(data) {
					return sc.fail(i, "after top-level value")
				}
				return nil
			}
			if i >= len(data) {
				return sc.fail(i, "")
			}
			obj := sc.inObject()
			switch c := data[i]; {
			case c == ',':
				i = skipSpace(data, i+1)
				if obj {
					state = stKey
				} else {
					state = stValue
				}
			case obj && c == '}' || !obj && c == ']':
				sc.pop()
				i++
			case obj:
				return sc.fail(i, "after object key:value pair")
			default:
				return sc.fail(i, "after array element")
			}
		case stKey:
			if i >= len(data) || data[i] != '"' {
				return sc.fail(i, "looking for beginning of object key string")
			}
			j, odd, err := scanString(data, i+1)
			if err != nil {
				return err
			}
			key := data[i+1 : j-1]
			i = skipSpace(data, j)
			if i >= len(data) || data[i] != ':' {
				return sc.fail(i, "after object key")
			}
			i = skipSpace(data, i+1)
			if n := sc.nrec; n > 0 && n == sc.depth {
				sc.member(sc.frame(n-1), key, odd, i)
			}
			state = stValue
		}
	}
}

// member notes the key of a member of the reported object f whose value
// starts at i. odd: the key has escapes.
func (sc *jsonScanner) member(f *recFrame, key []byte, odd bool, i int) {
	node := &sc.want[f.node]
	if len(node.names) == 0 {
		return
	}
	if !odd {
		for _, b := range key {
			if b >= 0x80 {
				odd = true
				break
			}
		}
	}
	for k, name := range node.names {
		switch {
		case !odd && string(key) == name:
			if sc.out.Members == nil {
				// Room for each wanted path once: one allocation for
				// a text that does not repeat a name.
				sc.out.Members = make([]JSONMember, 0, sc.wantPaths)
			}
			sc.out.Members = append(sc.out.Members, JSONMember{
				Path: node.paths[k], Parent: f.parent, Start: i, End: i, child: node.children[k],
			})
			f.cur = len(sc.out.Members) - 1
			return
		case odd || ASCIIEqualFold(key, name):
			sc.out.Aliased = true
		}
	}
}

// ASCIIEqualFold reports whether a and b are equal ignoring the letter case
// of ASCII letters.
func ASCIIEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func hasLiteral(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}

func (sc *jsonScanner) literalError(i int, lit string) error {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(sc.data) || sc.data[i+k] != lit[k] {
			return sc.fail(i+k, "in literal "+lit+" (expecting "+quoteByte(lit[k])+")")
		}
	}
	return sc.fail(i, "")
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// SWAR constants: a byte repeated in each of the 8 bytes of a word.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// scanString returns the index after the closing quote of the string whose
// contents start at i, and whether it has escapes. Sixteen bytes at a time,
// it looks for the next byte that is a quote, a backslash or a control
// character; only those are looked at one by one.
func scanString(data []byte, i int) (int, bool, error) {
	escaped := false
	for {
		for i+16 <= len(data) {
			m0 := special(binary.LittleEndian.Uint64(data[i : i+8]))
			m1 := special(binary.LittleEndian.Uint64(data[i+8 : i+16]))
			if m0|m1 == 0 {
				i += 16
				continue
			}
			if m0 != 0 {
				i += bits.TrailingZeros64(m0) >> 3
			} else {
				i += 8 + bits.TrailingZeros64(m1)>>3
			}
			break
		}
		if i >= len(data) {
			return 0, false, &JSONSyntaxError{Offset: len(data), What: "unexpected end of JSON input"}
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				return 0, false, &JSONSyntaxError{Offset: len(data), What: "unexpected end of JSON input"}
			}
			switch data[i+1] {
			case 'b', 'f', 'n', 'r', 't', '\\', '/', '"':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(data) {
						return 0, false, &JSONSyntaxError{Offset: len(data), What: "unexpected end of JSON input"}
					}
					if !isHex(data[k]) {
						return 0, false, &JSONSyntaxError{Offset: k, What: "invalid character " + quoteByte(data[k]) + " in \\u hexadecimal character escape"}
					}
				}
				i += 6
			default:
				return 0, false, &JSONSyntaxError{Offset: i + 1, What: "invalid character " + quoteByte(data[i+1]) + " in string escape code"}
			}
		case c < 0x20:
			return 0, false, &JSONSyntaxError{Offset: i, What: "invalid character " + quoteByte(c) + " in string literal"}
		default:
			i++ // the tail, shorter than a word
		}
	}
}

// special returns the high bit of each byte of the word x that is a quote,
// a backslash or a control character; bytes above the lowest such byte may
// be flagged wrongly (borrows), the lowest never is.
func special(x uint64) uint64 {
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	return (((q - ones) &^ q) | ((b - ones) &^ b) | ((x - ones*0x20) &^ x)) & highs
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans the number at i (a '-' or a digit) and returns its end.
func (sc *jsonScanner) number(i int) (int, error) {
	data := sc.data
	start := i
	if data[i] == '-' {
		i++
	}
	if i >= len(data) {
		return 0, sc.fail(i, "")
	}
	intStart := i
	switch c := data[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i++
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		return 0, sc.fail(i, "in numeric literal")
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(data) && data[i] == '.' {
		i++
		fracStart = i
		for i < len(data) && isDigit(data[i]) {
			i++
		}
		if i == fracStart {
			return 0, sc.fail(i, "after decimal point in numeric literal")
		}
		fracEnd = i
	}
	var exp int64
	hasExp := false
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		hasExp = true
		i++
		neg := false
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			neg = data[i] == '-'
			i++
		}
		expStart := i
		for i < len(data) && isDigit(data[i]) {
			if exp < 1<<40 { // beyond, the answer no longer changes
				exp = exp*10 + int64(data[i]-'0')
			}
			i++
		}
		if i == expStart {
			return 0, sc.fail(i, "in exponent of numeric literal")
		}
		if neg {
			exp = -exp
		}
	}
	if (hasExp || intEnd-intStart > maxPlainDigits) && overflows(data[start:i], data[intStart:intEnd], data[fracStart:fracEnd], exp) {
		sc.overflow(data[start:i])
	}
	return i, nil
}

// overflows reports whether the number num, with integer digits intDigits,
// fraction digits frac and exponent exp, is out of the range of a float64:
// strconv.ParseFloat (what encoding/json uses) fails with ErrRange. Its
// value is 0.d1d2... × 10^e10 with d1 the first non-zero digit: below 1e308
// when e10 <= 308, at least 1e309 when e10 >= 310; ParseFloat decides the
// one decade between.
func overflows(num, intDigits, frac []byte, exp int64) bool {
	var e10 int64
	if intDigits[0] != '0' {
		e10 = int64(len(intDigits)) + exp
	} else {
		z := 0
		for z < len(frac) && frac[z] == '0' {
			z++
		}
		if z == len(frac) {
			return false // zero
		}
		e10 = exp - int64(z)
	}
	switch {
	case e10 <= 308:
		return false
	case e10 >= 310:
		return true
	}
	_, err := strconv.ParseFloat(string(num), 64)
	return errors.Is(err, strconv.ErrRange)
}

// overflow notes num, a number no float64 holds, for the text and for each
// reported member being read (which all hold it).
func (sc *jsonScanner) overflow(num []byte) {
	if sc.out.Overflow == nil {
		sc.out.Overflow = num
	}
	for k := range sc.nrec {
		if f := sc.frame(k); f.cur >= 0 && sc.out.Members[f.cur].Overflow == nil {
			sc.out.Members[f.cur].Overflow = num
		}
	}
}
