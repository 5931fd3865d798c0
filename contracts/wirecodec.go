package contracts

import (
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// A codec for the v2 headers (wire.go) of the synchronous kinds - the call,
// list and rpc requests and their replies - that costs a fraction of
// encoding/json's reflection on every call.
//
// Encoding (appendHeader) writes exactly the bytes json.Marshal writes for
// the same message: the members in the structs' order (an embedded header's
// where it is embedded), omitempty as the tags say, strings escaped as
// encoding/json escapes them (", \ and control characters; the HTML
// characters <, > and &; U+2028 and U+2029; invalid UTF-8 as \ufffd),
// integers in decimal, []byte as standard base64 (nil: null).
// TestWireCodec_EncodeMatchesMarshal and FuzzWireHeaderEncode hold it to that.
//
// Decoding (decodeHeaderFast) reads that form and nothing else: no
// whitespace, each member's key spelled exactly as its tag and written
// once, no unknown key, no null (but for a nil []byte), strings without
// control characters or escaped surrogates, integers without fraction or
// exponent that fit their field. It gives up on anything else, and
// json.Unmarshal decodes the header instead: encoding/json matches keys
// without regard to case, takes the last of repeated keys, skips unknown
// ones and reports a wrong type only after decoding the rest, which only it
// does right. So a header decodes to exactly what json.Unmarshal gives, or
// fails as it fails (TestWireCodec_DecodeMatchesUnmarshal, FuzzWireHeader).
// A decoded string without escapes is a substring of the header: the
// message shares the header's memory instead of copying each field.

// maxPooledHeader is the largest encoding buffer kept for reuse: one that
// grew past the header limit held a header that was refused anyway.
const maxPooledHeader = MaxHeaderValue

// headerBufs are the buffers headers are encoded in; each header is copied
// out of its buffer as a string, and the buffer goes back.
var headerBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// encodeHeader returns m's header as json.Marshal encodes m, or tooLong
// (and no header) when it is longer than MaxHeaderValue; ok is false for a
// kind the codec does not know.
func encodeHeader(m Bodied) (hdr string, tooLong, ok bool) {
	bp := headerBufs.Get().(*[]byte)
	b, ok := appendHeader((*bp)[:0], m)
	if ok && len(b) <= MaxHeaderValue {
		hdr = string(b)
	}
	tooLong = ok && len(b) > MaxHeaderValue
	if cap(b) <= maxPooledHeader {
		*bp = b[:0]
		headerBufs.Put(bp)
	}
	return hdr, tooLong, ok
}

// appendHeader appends m's JSON (its payload excluded: the payload fields
// are json:"-") to b; ok is false for a kind the codec does not know.
func appendHeader(b []byte, m Bodied) (_ []byte, ok bool) {
	switch m := m.(type) {
	case *CallRequest:
		b = appendRequestHeader(b, &m.RequestHeader)
		b = append(b, `,"tool":`...)
		b = appendString(b, m.Tool)
		if m.EventsTo != "" {
			b = append(b, `,"events_to":`...)
			b = appendString(b, m.EventsTo)
		}
		if len(m.ClientRequests) > 0 {
			b = append(b, `,"client_requests":`...)
			b = appendStrings(b, m.ClientRequests)
		}
	case *ListRequest:
		b = appendRequestHeader(b, &m.RequestHeader)
	case *RPCRequest:
		b = appendRequestHeader(b, &m.RequestHeader)
		b = append(b, `,"method":`...)
		b = appendString(b, m.Method)
	case *CallResponse:
		b = appendReplyHeader(b, &m.ReplyHeader)
	case *ListResponse:
		b = appendReplyHeader(b, &m.ReplyHeader)
	case *RPCResponse:
		b = appendReplyHeader(b, &m.ReplyHeader)
	default:
		return b, false
	}
	return append(b, '}'), true
}

// appendRequestHeader appends the opening brace and h's members.
func appendRequestHeader(b []byte, h *RequestHeader) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, h.Type)
	b = append(b, `,"request_id":`...)
	b = appendString(b, h.RequestID)
	b = append(b, `,"server":`...)
	b = appendString(b, h.Server)
	b = append(b, `,"key_id":`...)
	b = appendString(b, h.KeyID)
	b = append(b, `,"timeout_ms":`...)
	b = strconv.AppendInt(b, h.TimeoutMS, 10)
	b = append(b, `,"expires_unix_ms":`...)
	b = strconv.AppendInt(b, h.ExpiresUnixMS, 10)
	if h.Token != nil {
		b = append(b, `,"token":`...)
		b = appendSealed(b, h.Token)
	}
	if h.TokenFP != "" {
		b = append(b, `,"token_fp":`...)
		b = appendString(b, h.TokenFP)
	}
	if h.Caller != "" {
		b = append(b, `,"caller":`...)
		b = appendString(b, h.Caller)
	}
	return b
}

// appendReplyHeader appends the opening brace and h's members.
func appendReplyHeader(b []byte, h *ReplyHeader) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, h.Type)
	b = append(b, `,"request_id":`...)
	b = appendString(b, h.RequestID)
	if h.Error != nil {
		b = append(b, `,"error":`...)
		b = appendError(b, h.Error)
	}
	return b
}

func appendSealed(b []byte, s *Sealed) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(s.Version), 10)
	b = append(b, `,"kid":`...)
	b = appendString(b, s.KeyID)
	b = append(b, `,"enc":`...)
	b = appendBytes(b, s.Enc)
	b = append(b, `,"nonce":`...)
	b = appendBytes(b, s.Nonce)
	b = append(b, `,"ct":`...)
	b = appendBytes(b, s.Ciphertext)
	return append(b, '}')
}

func appendError(b []byte, e *Error) []byte {
	b = append(b, `{"code":`...)
	b = appendString(b, string(e.Code))
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	b = append(b, `,"retryable":`...)
	b = strconv.AppendBool(b, e.Retryable)
	if e.WWWAuthenticate != "" {
		b = append(b, `,"www_authenticate":`...)
		b = appendString(b, e.WWWAuthenticate)
	}
	if len(e.Available) > 0 {
		b = append(b, `,"available":`...)
		b = appendStrings(b, e.Available)
	}
	if e.RetryAfterSeconds != 0 {
		b = append(b, `,"retry_after_seconds":`...)
		b = strconv.AppendInt(b, int64(e.RetryAfterSeconds), 10)
	}
	return append(b, '}')
}

// appendBytes appends p as encoding/json does: standard base64, nil as null.
func appendBytes(b, p []byte) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, p)
	return append(b, '"')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString appends s quoted as json.Marshal quotes it (with its HTML
// escaping, which json.Marshal always does).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is plain, not yet appended
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default: // other control characters, <, > and &
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1: // invalid UTF-8
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeHeaderFast decodes header h (valid UTF-8: decodeWire checks it
// first) into m when m is a kind the codec knows, the fields m's JSON sets
// are all zero, and h is in the form appendHeader writes. Otherwise it
// reports false and leaves m as it was, for json.Unmarshal to decode.
//
// json.Unmarshal merges into what m holds (an absent member keeps its
// field's value, a token fills the Sealed m already points to); requiring
// zero fields, which every caller's message has, keeps the fast path from
// having to copy that, and lets it undo a half-read header by zeroing them.
func decodeHeaderFast(h string, m Bodied) bool {
	d := &headerReader{s: h}
	switch m := m.(type) {
	case *CallRequest:
		if m.RequestHeader != (RequestHeader{}) || m.Tool != "" || m.EventsTo != "" || m.ClientRequests != nil {
			return false
		}
		if d.message(func(key string) (uint64, bool) {
			switch key {
			case "tool":
				return 1 << 10, d.str(&m.Tool)
			case "events_to":
				return 1 << 11, d.str(&m.EventsTo)
			case "client_requests":
				return 1 << 12, d.strs(&m.ClientRequests)
			}
			return d.requestMember(&m.RequestHeader, key)
		}) {
			return true
		}
		m.RequestHeader, m.Tool, m.EventsTo, m.ClientRequests = RequestHeader{}, "", "", nil
	case *ListRequest:
		if m.RequestHeader != (RequestHeader{}) {
			return false
		}
		if d.message(func(key string) (uint64, bool) { return d.requestMember(&m.RequestHeader, key) }) {
			return true
		}
		m.RequestHeader = RequestHeader{}
	case *RPCRequest:
		if m.RequestHeader != (RequestHeader{}) || m.Method != "" {
			return false
		}
		if d.message(func(key string) (uint64, bool) {
			if key == "method" {
				return 1 << 10, d.str(&m.Method)
			}
			return d.requestMember(&m.RequestHeader, key)
		}) {
			return true
		}
		m.RequestHeader, m.Method = RequestHeader{}, ""
	case *CallResponse:
		return d.reply(&m.ReplyHeader)
	case *ListResponse:
		return d.reply(&m.ReplyHeader)
	case *RPCResponse:
		return d.reply(&m.ReplyHeader)
	}
	return false
}

// headerReader reads a header value in the form appendHeader writes. Each
// method reads one value at s[i:] into its argument and reports whether it
// was in that form; after a false the reader is not used again.
type headerReader struct {
	s string
	i int
}

// member reads the value of the member key into its field and returns a
// bit that is the key's alone among the members of its object; ok is false
// for an unknown key or a value not in the codec's form.
type member func(key string) (bit uint64, ok bool)

// message reads a whole header: one object and nothing after it.
func (d *headerReader) message(read member) bool {
	return d.object(read) && d.i == len(d.s)
}

// object reads an object whose members read decodes, each at most once.
func (d *headerReader) object(read member) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	var seen uint64
	for {
		key, ok := d.key()
		if !ok || !d.next(':') {
			return false
		}
		bit, ok := read(key)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if d.next('}') {
			return true
		}
		if !d.next(',') {
			return false
		}
	}
}

// next consumes c if it is the next byte.
func (d *headerReader) next(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// key reads a member's key: a string without escapes (every key the codec
// knows is plain ASCII; an escaped one goes to json.Unmarshal).
func (d *headerReader) key() (string, bool) {
	if !d.next('"') {
		return "", false
	}
	start := d.i
	for i := start; i < len(d.s); i++ {
		switch c := d.s[i]; {
		case c == '"':
			d.i = i + 1
			return d.s[start:i], true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// requestMember reads a member of a RequestHeader (bits 0 to 9; a
// message's own members use the bits above).
func (d *headerReader) requestMember(h *RequestHeader, key string) (uint64, bool) {
	switch key {
	case "type":
		return 1 << 0, d.str(&h.Type)
	case "request_id":
		return 1 << 1, d.str(&h.RequestID)
	case "server":
		return 1 << 2, d.str(&h.Server)
	case "key_id":
		return 1 << 3, d.str(&h.KeyID)
	case "timeout_ms":
		return 1 << 4, d.int64(&h.TimeoutMS)
	case "expires_unix_ms":
		return 1 << 5, d.int64(&h.ExpiresUnixMS)
	case "token":
		return 1 << 6, d.sealed(&h.Token)
	case "token_fp":
		return 1 << 7, d.str(&h.TokenFP)
	case "caller":
		return 1 << 8, d.str(&h.Caller)
	}
	return 0, false
}

// reply decodes a whole reply header into h, as decodeHeaderFast does.
func (d *headerReader) reply(h *ReplyHeader) bool {
	if *h != (ReplyHeader{}) {
		return false
	}
	if d.message(func(key string) (uint64, bool) {
		switch key {
		case "type":
			return 1 << 0, d.str(&h.Type)
		case "request_id":
			return 1 << 1, d.str(&h.RequestID)
		case "error":
			return 1 << 2, d.error(&h.Error)
		}
		return 0, false
	}) {
		return true
	}
	*h = ReplyHeader{}
	return false
}

func (d *headerReader) error(p **Error) bool {
	e := new(Error)
	*p = e
	return d.object(func(key string) (uint64, bool) {
		switch key {
		case "code":
			return 1 << 0, d.str((*string)(&e.Code))
		case "message":
			return 1 << 1, d.str(&e.Message)
		case "retryable":
			return 1 << 2, d.bool(&e.Retryable)
		case "www_authenticate":
			return 1 << 3, d.str(&e.WWWAuthenticate)
		case "available":
			return 1 << 4, d.strs(&e.Available)
		case "retry_after_seconds":
			return 1 << 5, d.int(&e.RetryAfterSeconds)
		}
		return 0, false
	})
}

// sealed reads a Sealed. Its three base64 members are decoded as
// encoding/json decodes a []byte (base64.StdEncoding, a present "" is an
// empty slice, not nil), into one allocation.
func (d *headerReader) sealed(p **Sealed) bool {
	s := new(Sealed)
	*p = s
	var enc, nonce, ct string
	const hasEnc, hasNonce, hasCT = 1 << 2, 1 << 3, 1 << 4
	var has uint64 // the base64 members that are strings
	b64member := func(bit uint64, p *string) (uint64, bool) {
		if d.literal("null") { // nil, as appendBytes writes it
			return bit, true
		}
		has |= bit
		return bit, d.str(p)
	}
	if !d.object(func(key string) (uint64, bool) {
		switch key {
		case "v":
			return 1 << 0, d.int(&s.Version)
		case "kid":
			return 1 << 1, d.str(&s.KeyID)
		case "enc":
			return b64member(hasEnc, &enc)
		case "nonce":
			return b64member(hasNonce, &nonce)
		case "ct":
			return b64member(hasCT, &ct)
		}
		return 0, false
	}) {
		return false
	}
	b64 := base64.StdEncoding
	buf := make([]byte, b64.DecodedLen(len(enc))+b64.DecodedLen(len(nonce))+b64.DecodedLen(len(ct)))
	var scratch [512]byte // the base64 text as bytes, for Decode: no allocation for a usual token
	for _, f := range [...]struct {
		bit uint64
		in  string
		out *[]byte
	}{{hasEnc, enc, &s.Enc}, {hasNonce, nonce, &s.Nonce}, {hasCT, ct, &s.Ciphertext}} {
		if has&f.bit == 0 {
			continue
		}
		n, err := b64.Decode(buf, append(scratch[:0], f.in...))
		if err != nil {
			return false // json.Unmarshal's error, and what it keeps, are its own
		}
		*f.out, buf = buf[:n:n], buf[n:]
	}
	return true
}

// strs reads an array of strings ([] is an empty slice, not nil, as
// encoding/json decodes it).
func (d *headerReader) strs(p *[]string) bool {
	if !d.next('[') {
		return false
	}
	ss := []string{}
	if !d.next(']') {
		for {
			var s string
			if !d.str(&s) {
				return false
			}
			ss = append(ss, s)
			if d.next(']') {
				break
			}
			if !d.next(',') {
				return false
			}
		}
	}
	*p = ss
	return true
}

func (d *headerReader) bool(p *bool) bool {
	switch {
	case d.literal("true"):
		*p = true
	case d.literal("false"):
		*p = false
	default:
		return false
	}
	return true
}

// literal consumes lit if it is next. What follows must be ',' or '}' (or
// ']'), which the caller checks.
func (d *headerReader) literal(lit string) bool {
	if strings.HasPrefix(d.s[d.i:], lit) {
		d.i += len(lit)
		return true
	}
	return false
}

// int64 reads an integer without fraction or exponent that fits an int64,
// as json.Unmarshal parses one for an integer field (strconv.ParseInt);
// any other number it refuses or decodes with its own care. What follows
// must be ',' or '}', which the caller checks.
func (d *headerReader) int64(p *int64) bool {
	start := d.i
	d.next('-')
	digits := d.i
	for d.i < len(d.s) && '0' <= d.s[d.i] && d.s[d.i] <= '9' {
		d.i++
	}
	switch n := d.i - digits; {
	case n == 0:
		return false
	case n > 1 && d.s[digits] == '0': // a leading zero is not JSON
		return false
	}
	v, err := strconv.ParseInt(d.s[start:d.i], 10, 64)
	*p = v
	return err == nil
}

// int reads an integer into an int (which may be 32 bits).
func (d *headerReader) int(p *int) bool {
	var v int64
	if !d.int64(&v) || int64(int(v)) != v {
		return false
	}
	*p = int(v)
	return true
}

// str reads a string. Without escapes it is a substring of the header;
// with them, a new string.
func (d *headerReader) str(p *string) bool {
	if !d.next('"') {
		return false
	}
	start := d.i
	for i := start; i < len(d.s); i++ {
		switch c := d.s[i]; {
		case c == '"':
			*p = d.s[start:i]
			d.i = i + 1
			return true
		case c == '\\':
			d.i = i
			return d.unescape(start, p)
		case c < 0x20: // not JSON
			return false
		}
	}
	return false
}

// unescape reads the rest of a string that began at start and whose first
// escape is at d.i. An escaped surrogate (json.Unmarshal pairs them or
// replaces them by U+FFFD) goes to json.Unmarshal.
func (d *headerReader) unescape(start int, p *string) bool {
	// Find the closing quote first, to size the result: unescaping never
	// lengthens a string.
	end := d.i
	for ; end < len(d.s) && d.s[end] != '"'; end++ {
		if d.s[end] == '\\' {
			end++
		}
	}
	if end >= len(d.s) {
		return false
	}
	var b strings.Builder
	b.Grow(end - start)
	b.WriteString(d.s[start:d.i])
	for d.i < end {
		// Copy the plain run up to the next escape.
		run := d.i
		for d.i < end && d.s[d.i] != '\\' {
			if d.s[d.i] < 0x20 { // not JSON
				return false
			}
			d.i++
		}
		b.WriteString(d.s[run:d.i]) // the header is valid UTF-8
		if d.i == end {
			break
		}
		switch e := d.s[d.i+1]; e { // end is past the escape's second byte
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(d.s[d.i+2 : end])
			if !ok || utf16.IsSurrogate(r) {
				return false
			}
			b.WriteRune(r)
			d.i += 4
		default:
			return false
		}
		d.i += 2
	}
	d.i = end + 1
	*p = b.String()
	return true
}

// hex4 reads the four hex digits of a \u escape.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
