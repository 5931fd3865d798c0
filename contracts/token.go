package contracts

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync/atomic"
)

// Token is what one server receives of one caller: a set of HTTP header
// values - the caller's Authorization (or x-mcp-<server>-authorization, or
// the legacy x-mcp-auth), and the other headers forwarded to that server
// (x-mcp-<server>-<header>, a server's extra_headers). Names are lower-case
// and unique; the set is canonical (sorted by name), so two equal sets
// encode, seal and fingerprint alike.
//
// Every way of printing it - fmt verbs, JSON, zerolog's Stringer support -
// shows only its fingerprint; Reveal is the one way to the values, used
// where they are sent upstream. Sealing encodes it (Sealer.Seal), opening
// decodes it (Opener.Open).
type Token struct{ h []tokenHeader }

type tokenHeader struct{ name, value string }

// HeaderAuthorization is the set's name of the Authorization header.
const HeaderAuthorization = "authorization"

// Limits on a set, so a decoded one is bounded before use.
const (
	maxTokenHeaders    = 64
	maxTokenHeaderName = 256
)

// NewToken is the set holding only the Authorization value v (none for "").
func NewToken(v string) Token {
	if v == "" {
		return Token{}
	}
	return Token{h: []tokenHeader{{HeaderAuthorization, v}}}
}

// NewTokenSet is the set of headers h (names in any case; an empty value
// is left out). Names and values are not checked here: the ingress checks
// what a caller sends (ValidHeaderName, ValidHeaderValue, Forwardable)
// before it builds a set, and opening a sealed set checks them again.
func NewTokenSet(h map[string]string) Token {
	var t Token
	for name, value := range h {
		if value == "" {
			continue
		}
		t.h = append(t.h, tokenHeader{strings.ToLower(name), value})
	}
	slices.SortFunc(t.h, func(a, b tokenHeader) int { return strings.Compare(a.name, b.name) })
	t.h = slices.CompactFunc(t.h, func(a, b tokenHeader) bool { return a.name == b.name })
	return t
}

// Reveal returns the set's headers, by lower-case name (a new map).
func (t Token) Reveal() map[string]string {
	m := make(map[string]string, len(t.h))
	for _, h := range t.h {
		m[h.name] = h.value
	}
	return m
}

// IsZero reports whether the set is empty.
func (t Token) IsZero() bool { return len(t.h) == 0 }

// Has reports whether the set holds a header named name (lower-case).
func (t Token) Has(name string) bool {
	_, ok := slices.BinarySearchFunc(t.h, name, func(h tokenHeader, n string) int { return strings.Compare(h.name, n) })
	return ok
}

// Names returns the set's header names, sorted.
func (t Token) Names() []string {
	out := make([]string, len(t.h))
	for i, h := range t.h {
		out[i] = h.name
	}
	return out
}

// Without returns the set without the headers named in names (lower-case).
func (t Token) Without(names ...string) Token {
	out := Token{h: slices.Clone(t.h)}
	out.h = slices.DeleteFunc(out.h, func(h tokenHeader) bool { return slices.Contains(names, h.name) })
	if len(out.h) == 0 {
		return Token{}
	}
	return out
}

// Equal reports whether t and u hold the same headers (in constant time
// for sets of equal encoded length).
func (t Token) Equal(u Token) bool {
	return subtle.ConstantTimeCompare(t.encode(), u.encode()) == 1
}

// Sum is the SHA-256 of the whole set's encoding: a key that tells any two
// sets apart (pooled upstream clients and stdio processes use it). A set
// whose encoding fits stackHashInput bytes costs no allocation.
func (t Token) Sum() [32]byte {
	var buf [stackHashInput]byte
	return sha256.Sum256(t.appendEncoding(buf[:0]))
}

// stackHashInput is the size of the stack buffers that hold what a
// fingerprint or a Sum hashes: a bearer token, even a JWT, fits; a larger
// input costs one allocation.
const stackHashInput = 2048

// Fingerprint is a short, stable, non-reversible tag of the set, for logs.
// A set holding only an Authorization value has that value's fingerprint
// (Fingerprint(value)), so a log line matches the token the user sent.
func (t Token) Fingerprint() string {
	switch {
	case len(t.h) == 0:
		return ""
	case len(t.h) == 1 && t.h[0].name == HeaderAuthorization:
		return Fingerprint(t.h[0].value)
	}
	// Fingerprint of the encoding as a string.
	var buf [stackHashInput]byte
	return fingerprint(t.appendEncoding(append(buf[:0], fingerprintLabel...)))
}

// String returns the fingerprint.
func (t Token) String() string { return t.Fingerprint() }

// GoString returns the fingerprint.
func (t Token) GoString() string { return t.Fingerprint() }

// Format prints the fingerprint whatever the verb (%d or %x would otherwise
// print the fields).
func (t Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.Fingerprint())) }

// MarshalJSON returns the fingerprint as a JSON string.
func (t Token) MarshalJSON() ([]byte, error) { return []byte(`"` + t.Fingerprint() + `"`), nil }

// MarshalText returns the fingerprint.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.Fingerprint()), nil }

// tokenEncoding is the version byte of a set's encoding, the plaintext of
// a sealed field: the version, the number of headers, then each name and
// value, length-prefixed (uvarint), in name order.
const tokenEncoding = 1

func (t Token) encode() []byte { return t.appendEncoding(make([]byte, 0, t.encodedLen())) }

// encodedLen is the length of t's encoding.
func (t Token) encodedLen() int {
	n := 1 + uvarintLen(uint64(len(t.h)))
	for _, h := range t.h {
		n += uvarintLen(uint64(len(h.name))) + len(h.name) + uvarintLen(uint64(len(h.value))) + len(h.value)
	}
	return n
}

// uvarintLen is the length of x's uvarint encoding.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// appendEncoding appends t's encoding to out.
func (t Token) appendEncoding(out []byte) []byte {
	out = append(out, tokenEncoding)
	out = binary.AppendUvarint(out, uint64(len(t.h)))
	for _, h := range t.h {
		out = binary.AppendUvarint(out, uint64(len(h.name)))
		out = append(out, h.name...)
		out = binary.AppendUvarint(out, uint64(len(h.value)))
		out = append(out, h.value...)
	}
	return out
}

// decodeToken reads an encoding, refusing anything encode would not write
// or a name or value the ingress would not forward.
func decodeToken(b []byte) (Token, error) {
	if len(b) == 0 || b[0] != tokenEncoding {
		return Token{}, badMessage("credential set encoding")
	}
	count, k := binary.Uvarint(b[1:])
	if k <= 0 || count > maxTokenHeaders {
		return Token{}, badMessage("credential set size")
	}
	// One copy of the encoding: every name and value is a substring of it.
	s, i := string(b), 1+k
	read := func() (string, bool) {
		l, k := binary.Uvarint(b[i:])
		if k <= 0 || l > uint64(len(b)-i-k) {
			return "", false
		}
		v := s[i+k : i+k+int(l)]
		i += k + int(l)
		return v, true
	}
	t := Token{h: make([]tokenHeader, 0, count)}
	for range count {
		name, ok1 := read()
		value, ok2 := read()
		switch {
		case !ok1 || !ok2:
			return Token{}, badMessage("credential set truncated")
		case !ValidHeaderName(name) || name != strings.ToLower(name) || !Forwardable(name):
			return Token{}, badMessage("credential set header name")
		case value == "" || !ValidHeaderValue(value):
			return Token{}, badMessage("credential set header value")
		case len(t.h) > 0 && t.h[len(t.h)-1].name >= name:
			return Token{}, badMessage("credential set order")
		}
		t.h = append(t.h, tokenHeader{name, value})
	}
	if i != len(b) {
		return Token{}, badMessage("credential set trailing bytes")
	}
	if len(t.h) == 0 {
		return Token{}, nil
	}
	return t, nil
}

// ValidHeaderName reports whether name is an HTTP field name (an RFC 9110
// token) of at most 256 bytes.
func ValidHeaderName(name string) bool {
	if name == "" || len(name) > maxTokenHeaderName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidHeaderValue reports whether v may be sent as an HTTP header value:
// no control character (CR, LF, NUL, DEL, ...) but horizontal tab.
func ValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// notForwarded are the header names no caller may have forwarded to a
// server: hop-by-hop and framing headers, and the ones the worker's MCP
// client sets itself.
var notForwarded = map[string]bool{
	"host": true, "content-length": true, "content-type": true, "content-encoding": true,
	"connection": true, "keep-alive": true, "proxy-connection": true, "proxy-authenticate": true,
	"proxy-authorization": true, "te": true, "trailer": true, "transfer-encoding": true,
	"upgrade": true, "expect": true, "accept": true, "accept-encoding": true,
	"mcp-session-id": true, "mcp-protocol-version": true, "last-event-id": true,
	"traceparent": true, "tracestate": true,
}

// Forwardable reports whether a header named name (any case) may be
// forwarded from a caller to a server.
func Forwardable(name string) bool { return !notForwarded[strings.ToLower(name)] }

// NotForwarded returns the header names Forwardable refuses, sorted.
func NotForwarded() []string { return slices.Sorted(maps.Keys(notForwarded)) }

// Fingerprint returns "fp_" and 12 hex digits of SHA-256 over a domain label
// and v, or "" for an empty v. 48 bits tell tokens apart in logs; they do
// not help guess a token of real entropy, and they decide nothing: access
// (job and task ownership, pooled upstream clients) uses full-length
// hashes.
//
// It allocates only its result when v fits a stack buffer (stackHashInput).
func Fingerprint(v string) string {
	if v == "" {
		return ""
	}
	var buf [stackHashInput]byte
	return fingerprint(append(append(buf[:0], fingerprintLabel...), v...))
}

const fingerprintLabel = "toolbus.fingerprint.v1\x00"

// fingerprint is the fingerprint of in, the label followed by the value.
func fingerprint(in []byte) string {
	if fp := fingerprintOverride.Load(); fp != nil {
		return *fp
	}
	sum := sha256.Sum256(in)
	var out [3 + 12]byte
	copy(out[:], "fp_")
	hex.Encode(out[3:], sum[:6])
	return string(out[:])
}

// hexString is b (at most 32 bytes) in lower-case hex, allocating only the
// string.
func hexString(b []byte) string {
	var out [64]byte
	return string(out[:hex.Encode(out[:], b)])
}

// fingerprintOverride, when set, is every Fingerprint's value.
var fingerprintOverride atomic.Pointer[string]

// OverrideFingerprintForTest makes every non-empty Fingerprint fp until
// the returned function is called. It is for tests only: forcing two
// credentials to one log fingerprint shows that no access decision depends
// on it.
func OverrideFingerprintForTest(fp string) (restore func()) {
	fingerprintOverride.Store(&fp)
	return func() { fingerprintOverride.Store(nil) }
}
