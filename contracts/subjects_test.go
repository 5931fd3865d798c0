package contracts

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// serverTokens is the mapping of server names to subject tokens, fixed:
// ingresses and workers of different builds must agree on it.
var serverTokens = []struct{ name, token string }{
	{"jira", "jira"},
	{"my-server_1", "my-server_1"},
	{"deepwiki.mcp", "__deepwiki_2emcp"},
	{"My Server", "__My_20Server"},
	{"a.b.c", "__a_2eb_2ec"},
	{"a_2eb", "a_2eb"},         // a plain name that looks like an escape stays itself
	{"__x", "___5f_5fx"},       // a plain name with the escape prefix is escaped
	{"__", "___5f_5f"},         // the prefix alone
	{"a*b", "__a_2ab"},         // wildcards never reach a subject
	{"a>b", "__a_3eb"},         //
	{"ünï", "___c3_bcn_c3_af"}, // UTF-8, byte by byte
	{"a_b.c", "__a_5fb_2ec"},   // an underscore is escaped once the name is
}

func TestServerToken_Golden(t *testing.T) {
	for _, tt := range serverTokens {
		if !ServerNameAllowed(tt.name) {
			t.Fatalf("ServerNameAllowed(%q) = false", tt.name)
		}
		if got := ServerToken(tt.name); got != tt.token {
			t.Errorf("ServerToken(%q) = %q, want %q", tt.name, got, tt.token)
		}
		if got, ok := ServerFromToken(tt.token); !ok || got != tt.name {
			t.Errorf("ServerFromToken(%q) = %q, %v; want %q", tt.token, got, ok, tt.name)
		}
		if !ValidServerName(tt.token) && len(tt.token) <= maxServerNameLen {
			t.Errorf("token %q is not from [A-Za-z0-9_-]", tt.token)
		}
		for _, c := range tt.token {
			if !plainNameByte(byte(c)) || c > 0x7f {
				t.Errorf("token %q has %q", tt.token, c)
			}
		}
		for _, subject := range []string{CallSubject(tt.name), ListSubject(tt.name), RPCSubject(tt.name), UnsubscribeSubject(tt.name)} {
			if strings.Count(subject, ".") != 3 {
				t.Errorf("subject %q of %q is not four tokens", subject, tt.name)
			}
			if got, ok := ParseSubject(subject); !ok || got.Server != tt.name {
				t.Errorf("ParseSubject(%q) = %+v, %v; want server %q", subject, got, ok, tt.name)
			}
		}
		if got, ok := ParseSubject(JobSubject(tt.name, KeyTag("k"))); !ok || got.Server != tt.name {
			t.Errorf("ParseSubject(JobSubject(%q)) = %+v, %v", tt.name, got, ok)
		}
		if s, _, _, ok := ParseClientRequestRPCID(ClientRequestRPCID(tt.name, "r1", "7")); !ok || s != tt.name {
			t.Errorf("client request id of %q: got %q, %v", tt.name, s, ok)
		}
	}
}

func TestServerToken_Injective(t *testing.T) {
	names := []string{"a", "a.b", "a_b", "a-b", "a b", "a_2eb", "__a_2eb", "_a", "__a", "___a", "a__", "A.B", "a.b.", ".a"}
	seen := map[string]string{}
	for _, n := range names {
		tok := ServerToken(n)
		if other, dup := seen[tok]; dup {
			t.Fatalf("%q and %q share the token %q", n, other, tok)
		}
		seen[tok] = n
		if back, ok := ServerFromToken(tok); !ok || back != n {
			t.Errorf("round trip of %q: %q, %v", n, back, ok)
		}
	}
}

func TestServerFromToken_RefusesOtherSpellings(t *testing.T) {
	for _, bad := range []string{
		"", "__", "__a_2", "__a_zz", "__a_2E", // truncated, not hex, upper-case hex
		"__abc",    // a plain name spelled escaped: not canonical
		"__a_2cb",  // a comma: not an allowed name
		"__a_0ab",  // a control character
		"a.b", "*", // not one token
	} {
		if got, ok := ServerFromToken(bad); ok {
			t.Errorf("ServerFromToken(%q) = %q, want refused", bad, got)
		}
	}
}

func TestServerNameAllowed(t *testing.T) {
	for _, good := range []string{"jira", "deepwiki.mcp", "My Server", "a-b", "ünï", strings.Repeat("x", 64)} {
		if !ServerNameAllowed(good) {
			t.Errorf("ServerNameAllowed(%q) = false", good)
		}
	}
	for _, bad := range []string{"", " a", "a ", "a,b", "a/b", "a\nb", "a\tb", strings.Repeat("x", 65), "\xff"} {
		if ServerNameAllowed(bad) {
			t.Errorf("ServerNameAllowed(%q) = true", bad)
		}
	}
}

// ServerFromToken accepts exactly the tokens ServerToken makes of an
// allowed name: the same answers as decoding any way and checking the
// round trip, on random strings of the bytes that matter.
func TestServerFromToken_OnlyCanonicalTokens(t *testing.T) {
	roundTrip := func(token string) (string, bool) {
		rest, escaped := strings.CutPrefix(token, serverTokenEscape)
		if !escaped {
			return token, ValidServerName(token)
		}
		var b []byte
		for i := 0; i < len(rest); i++ {
			if c := rest[i]; c == '_' && i+2 < len(rest) && unhex(rest[i+1]) >= 0 && unhex(rest[i+2]) >= 0 {
				b = append(b, byte(unhex(rest[i+1])<<4|unhex(rest[i+2])))
				i += 2
			} else {
				b = append(b, c)
			}
		}
		name := string(b)
		return name, ServerNameAllowed(name) && ServerToken(name) == token
	}
	const alphabet = "__aZ9-.2ef5c3bE ,"
	r := rand.New(rand.NewPCG(3, 4))
	tokens := []string{strings.Repeat("_", 200), "__" + strings.Repeat("a", 64), "__" + strings.Repeat("a", 63) + "_2e", "__" + strings.Repeat("a", 65)}
	for _, tt := range serverTokens {
		tokens = append(tokens, tt.token)
	}
	for range 200000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if r.IntN(2) == 0 {
			b = append([]byte("__"), b...)
		}
		tokens = append(tokens, string(b))
	}
	// Tokens of random names, and the same with one byte changed.
	const nameBytes = "aZ9_-. ,\xc3\xa9\x01"
	for range 100000 {
		b := make([]byte, 1+r.IntN(10))
		for i := range b {
			b[i] = nameBytes[r.IntN(len(nameBytes))]
		}
		token := []byte(ServerToken(string(b)))
		if r.IntN(2) == 0 {
			token[r.IntN(len(token))] = alphabet[r.IntN(len(alphabet))]
		}
		tokens = append(tokens, string(token))
	}
	escaped := 0
	for _, token := range tokens {
		got, ok := ServerFromToken(token)
		want, wantOK := roundTrip(token)
		if ok != wantOK || ok && got != want {
			t.Fatalf("ServerFromToken(%q) = %q, %v; the round trip says %q, %v", token, got, ok, want, wantOK)
		}
		if ok && strings.HasPrefix(token, serverTokenEscape) {
			escaped++
		}
	}
	if escaped < 1000 {
		t.Fatalf("only %d escaped tokens decoded: the test is too weak", escaped)
	}
	t.Logf("%d of %d tokens escaped and canonical", escaped, len(tokens))
	if n := testing.AllocsPerRun(100, func() { _, _ = ServerFromToken("__deepwiki_2emcp") }); n != 1 {
		t.Errorf("ServerFromToken of an escaped token: %v allocations, want 1 (the name)", n)
	}
}
