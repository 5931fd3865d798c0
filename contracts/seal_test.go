package contracts

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

func testBinding(now time.Time) Binding {
	return Binding{
		Op: OpCall, RequestID: "req-1", Server: "jira", Tool: "create_issue",
		KeyID: "team-a", ReplyTo: "_INBOX.abc.1", Expires: now.Add(time.Minute),
		Payload: []byte(`{"summary":"New ticket"}`), TimeoutMS: 30000,
	}
}

func newTestKeys(t testing.TB) (*PrivateKey, *Sealer, *Opener) {
	t.Helper()
	sk, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return sk, NewSealer(sk.Public(), 0), NewOpener(sk)
}

// mustSeal seals token to b or fails the test.
func mustSeal(t testing.TB, sealer *Sealer, token string, b Binding) *Sealed {
	t.Helper()
	sealed, err := sealer.Seal(NewToken(token), b)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func TestSealer_RoundTrip(t *testing.T) {
	_, sealer, opener := newTestKeys(t)
	now := time.Now()
	b := testBinding(now)
	sealed := mustSeal(t, sealer, "Bearer user-token-5678", b)
	got, err := opener.Open(sealed, b, now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !got.Equal(NewToken("Bearer user-token-5678")) || got.Reveal()[HeaderAuthorization] != "Bearer user-token-5678" {
		t.Fatalf("got %v", got)
	}
	if strings.Contains(string(sealed.Ciphertext), "user-token") {
		t.Fatal("ciphertext contains the token")
	}
}

func TestOpener_RejectsEveryChangedBinding(t *testing.T) {
	_, sealer, opener := newTestKeys(t)
	now := time.Now()
	b := testBinding(now)
	sealed := mustSeal(t, sealer, "Bearer secret", b)
	tests := []struct {
		name   string
		change func(*Binding)
	}{
		{"another server", func(b *Binding) { b.Server = "github" }},
		{"another tool", func(b *Binding) { b.Tool = "delete_issue" }},
		{"another request", func(b *Binding) { b.RequestID = "req-2" }},
		{"another gateway key", func(b *Binding) { b.KeyID = "team-b" }},
		{"another reply subject", func(b *Binding) { b.ReplyTo = "_INBOX.evil.1" }},
		{"another operation", func(b *Binding) { b.Op = OpList }},
		{"a later expiry", func(b *Binding) { b.Expires = b.Expires.Add(time.Hour) }},
		{"fields shifted between server and tool", func(b *Binding) { b.Server, b.Tool = "jiracreate", "_issue" }},
		{"events redirected", func(b *Binding) { b.EventsTo = "_INBOX.evil.e" }},
		{"other arguments", func(b *Binding) { b.Payload = []byte(`{"summary":"edited"}`) }},
		{"arguments removed", func(b *Binding) { b.Payload = nil }},
		{"another timeout", func(b *Binding) { b.TimeoutMS = 300000 }},
		{"a caller added", func(b *Binding) { b.Caller = "0123456789abcdef0123456789abcdef" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moved := b
			tt.change(&moved)
			if _, err := opener.Open(sealed, moved, now); !errors.Is(err, ErrSealInvalid) {
				t.Fatalf("got %v, want ErrSealInvalid", err)
			}
		})
	}
}

func TestOpener_RejectsTamperedField(t *testing.T) {
	_, sealer, opener := newTestKeys(t)
	now := time.Now()
	b := testBinding(now)
	tests := []struct {
		name   string
		tamper func(*Sealed)
		want   error
	}{
		{"ciphertext bit", func(s *Sealed) { s.Ciphertext[0] ^= 1 }, ErrSealInvalid},
		{"tag bit", func(s *Sealed) { s.Ciphertext[len(s.Ciphertext)-1] ^= 1 }, ErrSealInvalid},
		{"nonce bit", func(s *Sealed) { s.Nonce[0] ^= 1 }, ErrSealInvalid},
		{"enc bit", func(s *Sealed) { s.Enc[0] ^= 1 }, ErrSealInvalid},
		{"truncated", func(s *Sealed) { s.Ciphertext = s.Ciphertext[:10] }, ErrSealInvalid},
		{"version", func(s *Sealed) { s.Version = 2 }, ErrSealInvalid},
		{"key id", func(s *Sealed) { s.KeyID = "0000000000000000" }, ErrSealUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := mustSeal(t, sealer, "Bearer secret", b)
			tt.tamper(sealed)
			if _, err := opener.Open(sealed, b, now); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpener_RejectsExpired(t *testing.T) {
	_, sealer, opener := newTestKeys(t)
	now := time.Now()
	b := testBinding(now)
	sealed := mustSeal(t, sealer, "Bearer secret", b)
	for _, at := range []time.Time{b.Expires, b.Expires.Add(time.Millisecond), b.Expires.Add(time.Hour)} {
		if _, err := opener.Open(sealed, b, at); !errors.Is(err, ErrSealExpired) {
			t.Fatalf("at expiry%+v: got %v, want ErrSealExpired", at.Sub(b.Expires), err)
		}
	}
}

func TestOpener_WrongPrivateKey(t *testing.T) {
	_, sealer, _ := newTestKeys(t)
	other, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sealed := mustSeal(t, sealer, "Bearer secret", testBinding(now))
	if _, err := NewOpener(other).Open(sealed, testBinding(now), now); !errors.Is(err, ErrSealUnknownKey) {
		t.Fatalf("got %v, want ErrSealUnknownKey", err)
	}
	// A field relabelled with the other key's id still does not open.
	sealed.KeyID = other.ID()
	if _, err := NewOpener(other).Open(sealed, testBinding(now), now); !errors.Is(err, ErrSealInvalid) {
		t.Fatalf("relabelled: got %v, want ErrSealInvalid", err)
	}
}

func TestOpener_KeyRotation(t *testing.T) {
	oldKey, oldSealer, _ := newTestKeys(t)
	newKey, newSealer, _ := newTestKeys(t)
	opener := NewOpener(oldKey, newKey) // a worker during rotation holds both
	now := time.Now()
	b := testBinding(now)
	for name, s := range map[string]*Sealer{"old": oldSealer, "new": newSealer} {
		sealed, err := s.Seal(NewToken("Bearer "+name), b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := opener.Open(sealed, b, now)
		if err != nil || got.Reveal()[HeaderAuthorization] != "Bearer "+name {
			t.Fatalf("%s key: got %q, %v", name, got, err)
		}
	}
}

func TestSealer_EpochRotates(t *testing.T) {
	sk, _, opener := newTestKeys(t)
	clock := time.Now()
	sealer := NewSealer(sk.Public(), time.Minute)
	sealer.now = func() time.Time { return clock }
	b := testBinding(clock)
	first, _ := sealer.Seal(NewToken("a"), b)
	second, _ := sealer.Seal(NewToken("b"), b)
	if string(first.Enc) != string(second.Enc) {
		t.Fatal("a new epoch within the TTL")
	}
	if string(first.Nonce) == string(second.Nonce) {
		t.Fatal("nonce reused")
	}
	clock = clock.Add(time.Minute)
	third, _ := sealer.Seal(NewToken("c"), b)
	if string(third.Enc) == string(first.Enc) {
		t.Fatal("epoch did not rotate after its TTL")
	}
	for _, s := range []*Sealed{first, second, third} {
		if _, err := opener.Open(s, b, clock.Add(-time.Second)); err != nil {
			t.Fatalf("open across epochs: %v", err)
		}
	}
}

func TestReplayGuard_Check(t *testing.T) {
	_, sealer, _ := newTestKeys(t)
	now := time.Now()
	b := testBinding(now)
	g := NewReplayGuard()
	sealed, _ := sealer.Seal(NewToken("t"), b)
	if err := g.Check(sealed, b.Expires, now); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(sealed, b.Expires, now); !errors.Is(err, ErrSealReplayed) {
		t.Fatalf("second use: got %v, want ErrSealReplayed", err)
	}
	// Many distinct tokens, all expiring: the guard prunes and stays bounded.
	for i := range 5000 {
		s, _ := sealer.Seal(NewToken(fmt.Sprint(i)), b)
		if err := g.Check(s, now.Add(time.Millisecond), now); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(time.Second)
	const live = 10000
	for i := range live {
		s, _ := sealer.Seal(NewToken(fmt.Sprint(i)), b)
		if err := g.Check(s, later.Add(time.Minute), later); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(g.seen); n > live+1 { // +1: the first token, still live
		t.Fatalf("guard holds %d entries, more than the %d live ones", n, live)
	}
}

func TestKeys_TextRoundTripAndRedaction(t *testing.T) {
	sk, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParsePrivateKey(sk.Secret())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.ID() != sk.ID() || parsed.Public().String() != sk.Public().String() {
		t.Fatal("private key did not round-trip")
	}
	pub, err := ParsePublicKey(sk.Public().String())
	if err != nil || pub.ID() != sk.ID() {
		t.Fatalf("public key did not round-trip: %v", err)
	}
	secretBody := strings.TrimPrefix(sk.Secret(), privateKeyPrefix)
	for _, shown := range []string{fmt.Sprint(sk), fmt.Sprintf("%v %+v %#v %s", sk, sk, sk, sk)} {
		if strings.Contains(shown, secretBody) {
			t.Fatalf("private key printed: %s", shown)
		}
	}
	for _, bad := range []string{"", "tbpk1.abc", sk.Secret(), "tbpk1." + strings.Repeat("A", 43) + "A"} {
		if _, err := ParsePublicKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParsePublicKey(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestToken_NeverPrintsItself(t *testing.T) {
	tok := NewToken("Bearer user-token-5678")
	set := NewTokenSet(map[string]string{"Authorization": "Bearer user-token-5678", "X-Api-Key": "user-key-9999"})
	for _, tok := range []Token{tok, set} {
		for _, shown := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s %q %x %d", tok, tok, tok, tok, tok, tok, tok), fmt.Sprint([]Token{tok})} {
			if strings.Contains(shown, "user-token") || strings.Contains(shown, "user-key") || strings.Contains(shown, "75736572") {
				t.Fatalf("token printed: %s", shown)
			}
		}
	}
	if set.Fingerprint() == tok.Fingerprint() || !strings.HasPrefix(set.Fingerprint(), "fp_") {
		t.Fatalf("set fingerprint %q", set.Fingerprint())
	}
	if tok.Fingerprint() != Fingerprint("Bearer user-token-5678") || !strings.HasPrefix(tok.Fingerprint(), "fp_") {
		t.Fatalf("fingerprint %q", tok.Fingerprint())
	}
	if NewToken("").Fingerprint() != "" {
		t.Fatal("empty token has a fingerprint")
	}
}

func BenchmarkSealer_Seal(b *testing.B) {
	_, sealer, _ := newTestKeys(b)
	bind := testBinding(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sealer.Seal(NewToken("Bearer user-token-5678"), bind); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpener_Open(b *testing.B) {
	_, sealer, opener := newTestKeys(b)
	now := time.Now()
	bind := testBinding(now)
	sealed, _ := sealer.Seal(NewToken("Bearer user-token-5678"), bind)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := opener.Open(sealed, bind, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpener_OpenNewEpoch measures the first open of an epoch: one
// X25519 decapsulation, paid once per epoch per worker.
func BenchmarkOpener_OpenNewEpoch(b *testing.B) {
	sk, _, _ := newTestKeys(b)
	now := time.Now()
	bind := testBinding(now)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		sealed, _ := NewSealer(sk.Public(), 0).Seal(NewToken("Bearer user-token-5678"), bind)
		opener := NewOpener(sk)
		b.StartTimer()
		if _, err := opener.Open(sealed, bind, now); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSealer_RoundTripsASet(t *testing.T) {
	_, sealer, opener := newTestKeys(t)
	now := time.Now()
	b := testBinding(now)
	set := NewTokenSet(map[string]string{"X-Api-Key": "k-1", "Authorization": "Bearer u", "x-tenant": "acme", "X-Empty": ""})
	got, err := opener.Open(mustSealToken(t, sealer, set, b), b, now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	want := map[string]string{"authorization": "Bearer u", "x-api-key": "k-1", "x-tenant": "acme"}
	if !maps.Equal(got.Reveal(), want) || !got.Equal(set) || got.Sum() != set.Sum() {
		t.Fatalf("got %v, want %v", got.Reveal(), want)
	}
	if other := NewTokenSet(map[string]string{"authorization": "Bearer u", "x-api-key": "k-1", "x-tenant": "acme2"}); other.Sum() == set.Sum() || other.Equal(set) {
		t.Fatal("two different sets share a key")
	}
}

// The plaintext of a sealed field decodes only as a set the ingress could
// have sealed: a worker refuses any other (a forged or old-format field).
func TestDecodeToken_RefusesMalformedSets(t *testing.T) {
	enc := func(pairs ...string) []byte {
		out := []byte{tokenEncoding}
		out = binary.AppendUvarint(out, uint64(len(pairs)/2))
		for _, p := range pairs {
			out = binary.AppendUvarint(out, uint64(len(p)))
			out = append(out, p...)
		}
		return out
	}
	if got, err := decodeToken(enc("authorization", "Bearer a", "x-tenant", "t")); err != nil || got.Reveal()["x-tenant"] != "t" {
		t.Fatalf("a valid set: %v %v", got, err)
	}
	for name, b := range map[string][]byte{
		"a bare token (seal v1)": []byte("Bearer a"),
		"unsorted":               enc("x-tenant", "t", "authorization", "Bearer a"),
		"duplicate":              enc("x-tenant", "t", "x-tenant", "u"),
		"upper case name":        enc("X-Tenant", "t"),
		"CR LF in a value":       enc("x-tenant", "t\r\nHost: evil"),
		"framing header":         enc("content-length", "0"),
		"host":                   enc("host", "evil.example"),
		"empty value":            enc("x-tenant", ""),
		"bad name":               enc("x tenant", "t"),
		"trailing bytes":         append(enc("x-tenant", "t"), 0),
		"truncated":              enc("x-tenant", "t")[:5],
	} {
		if _, err := decodeToken(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestWirePayload_MatchesTheMessageEncoding(t *testing.T) {
	args := json.RawMessage("{ \"q\" : \"<a&b>\",\n \"n\": 1 }")
	wire, err := WirePayload(args)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(&JobRequest{Tool: "t", Arguments: args})
	var back JobRequest
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if string(back.Arguments) != string(wire) {
		t.Fatalf("decoded %s, WirePayload %s", back.Arguments, wire)
	}
	if empty, _ := WirePayload(nil); len(empty) != 0 {
		t.Fatalf("empty became %s", empty)
	}
}

// TestWire_SealBindsTheBody: a v2 request sealed over its raw arguments
// opens from the message a worker decodes (the body is bound as is, no
// compaction), and fails with ErrSealInvalid when the body is edited, when
// the header is moved onto another message's body, or when the header is
// edited; a replay of the same message is refused by the ReplayGuard.
func TestWire_SealBindsTheBody(t *testing.T) {
	_, sealer, opener := newTestKeys(t)
	now := time.Now()
	const replyTo = "_INBOX.abc.req-1"
	build := func(id string, args string) Wire {
		req := &CallRequest{
			RequestHeader: RequestHeader{Type: TypeCallRequest, RequestID: id, Server: "jira", KeyID: "team-a",
				TimeoutMS: 30000, ExpiresUnixMS: now.Add(time.Minute).UnixMilli()},
			Tool: "create_issue", Arguments: json.RawMessage(args),
		}
		req.Token = mustSeal(t, sealer, "Bearer user-token-5678", req.Binding(replyTo))
		w, err := EncodeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	open := func(w Wire) error {
		req, err := DecodeCallRequest(w)
		if err != nil {
			return err
		}
		_, err = opener.Open(req.Token, req.Binding(replyTo), now)
		return err
	}
	// Not compact, with characters encoding/json would escape: bound as is.
	args := "{ \"summary\" : \"<New> & ticket\",\n \"n\": 1 }"
	w := build("req-1", args)
	if err := open(w); err != nil {
		t.Fatalf("the message as sent: %v", err)
	}
	other := build("req-2", `{"summary":"other"}`)
	headerEdit := strings.Replace(w.Header, `"create_issue"`, `"delete_issue"`, 1)
	for name, tampered := range map[string]Wire{
		"edited body":                   {Header: w.Header, Body: []byte(strings.Replace(args, "New", "Old", 1))},
		"compacted body":                {Header: w.Header, Body: []byte(`{"summary":"<New> & ticket","n":1}`)},
		"no body":                       {Header: w.Header},
		"header moved to another body":  {Header: w.Header, Body: other.Body},
		"another header onto this body": {Header: other.Header, Body: w.Body},
		"edited header":                 {Header: headerEdit, Body: w.Body},
	} {
		if err := open(tampered); !errors.Is(err, ErrSealInvalid) {
			t.Errorf("%s: got %v, want ErrSealInvalid", name, err)
		}
	}
	// A replay of the message as sent: the guard refuses the second one.
	guard := NewReplayGuard()
	for i, want := range []error{nil, ErrSealReplayed} {
		req, err := DecodeCallRequest(w)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := opener.Open(req.Token, req.Binding(replyTo), now); err != nil {
			t.Fatal(err)
		}
		if err := guard.Check(req.Token, req.Expires(), now); !errors.Is(err, want) {
			t.Fatalf("delivery %d: got %v, want %v", i+1, err, want)
		}
	}
}

func mustSealToken(t testing.TB, sealer *Sealer, token Token, b Binding) *Sealed {
	t.Helper()
	sealed, err := sealer.Seal(token, b)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}
