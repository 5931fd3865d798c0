package contracts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Known answers: the bytes a sealed field binds and encrypts, and the
// hashes and tags built from tokens and keys, are wire and storage
// contracts (a worker of another version opens what this ingress seals;
// job owners and key tags are stored). They were recorded from the
// implementation before its allocations were reduced and must never
// change without a new version.

func katBindings() []Binding {
	exp := time.UnixMilli(1_800_000_000_123)
	return []Binding{
		{Op: OpCall, RequestID: "GNHTKyA357k0WcRrj0BYt2", Server: "jira", Tool: "create_issue", KeyID: "team-a",
			ReplyTo: "_INBOX.abc.GNHTKyA357k0WcRrj0BYt2", Expires: exp, Payload: []byte(`{"summary":"New ticket"}`), TimeoutMS: 30000},
		{Op: OpCall, RequestID: "req-2", Server: "my.server", Tool: "t", KeyID: "k", ReplyTo: "job.0123.abc",
			EventsTo: "toolbus.v2.events.req-2", Expires: exp, Payload: []byte(strings.Repeat("x", 300)), TimeoutMS: 1, Caller: "user@example.com"},
		{Op: OpList, RequestID: "r", Server: "s", KeyID: strings.Repeat("k", 200), ReplyTo: "_INBOX.x", Expires: exp, Caller: "c"},
		{},
	}
}

func katTokens() []Token {
	return []Token{
		NewToken("Bearer user-token-5678"),
		NewTokenSet(map[string]string{"Authorization": "Bearer u", "X-Api-Key": "k-1", "x-tenant": "acme"}),
		NewToken("Bearer " + strings.Repeat("j", 2000)),
	}
}

func TestBinding_AADKnownAnswers(t *testing.T) {
	want := []string{
		"a2e8108774dea1534b293258edafcf316d3f2b260269ec9891264f07b235477a",
		"f5fa460c17851f78d7c3ba4a48f791e52ce1d03a3e8548137d56d499071ab3f1",
		"1e0650893af1d2cfc649409bcf6b87e61ce6f32e7d5bda49e4cc24adb89017dc",
		"a00a83d748e6ae78a28177cc66468cdb2c1d2f1113ce9f9f283ba7cde5d91a32",
	}
	for i, b := range katBindings() {
		if got := sha256.Sum256(b.appendAAD(nil)); hex.EncodeToString(got[:]) != want[i] {
			t.Errorf("binding %d: SHA-256 of the AAD %x, want %s", i, got, want[i])
		}
	}
}

func TestToken_KnownAnswers(t *testing.T) {
	want := []struct{ fp, sum string }{
		{"fp_764aa48ed983", "c0b3198c0766ae12de1afbc413e886b81879bf81b9165353efccc514b79bf297"},
		{"fp_f32dfdf1a539", "f1ef9e7a248d34882a64248440e2e725a8fe6f49671e3c93dcf479b8a03fd649"},
		{"fp_8857a2849672", "e9c4398219b7be8d627b28f8642f8d9b4d12ddb847bc9f8e1b9dadd27daa838e"},
	}
	for i, tok := range katTokens() {
		// The encoding's hash is the set's Sum: both pin its bytes.
		if enc := sha256.Sum256(tok.encode()); hex.EncodeToString(enc[:]) != want[i].sum {
			t.Errorf("token %d: SHA-256 of the encoding %x, want %s", i, enc, want[i].sum)
		}
		if sum := tok.Sum(); hex.EncodeToString(sum[:]) != want[i].sum {
			t.Errorf("token %d: Sum %x, want %s", i, sum, want[i].sum)
		}
		if fp := tok.Fingerprint(); fp != want[i].fp {
			t.Errorf("token %d: Fingerprint %s, want %s", i, fp, want[i].fp)
		}
	}
	if enc := hex.EncodeToString(katTokens()[1].encode()); enc != "01030d617574686f72697a6174696f6e08426561726572207509782d6170692d6b6579036b2d3108782d74656e616e740461636d65" {
		t.Errorf("set encoding %s", enc)
	}
	for _, c := range []struct{ got, want string }{
		{Fingerprint("Bearer user-token-5678"), "fp_764aa48ed983"},
		{Fingerprint(strings.Repeat("j", 3000)), "fp_bd347b9788b3"},
		{Owner("team-a", "fp_0123456789ab"), "b5a2882d1ff210b6f1273a4d6fe7ce0b"},
		{Owner(strings.Repeat("k", 200), "fp_0123456789ab"), "f98671fe373642f168d63934a26a14b9"},
		{KeyTag("team-a"), "22b4e323940bbb05"},
		{HashIdempotencyKey("idem-1"), "d91222bfc225b26dafc42b72481adb8c"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

// A field sealed by the implementation before its allocations were
// reduced still opens, to exactly its token, and with any other binding
// does not.
func TestOpener_OpensAKnownField(t *testing.T) {
	sk, err := ParsePrivateKey("tbsk1.T8fW4qpt3POL8mJ_a1ZrFTP2lcYZQJUMeDy-ee2R8aA")
	if err != nil {
		t.Fatal(err)
	}
	var sealed Sealed
	if err := json.Unmarshal([]byte(`{"v":2,"kid":"3e0a046dddd07337","enc":"26zInf4KBuuffthd1U1Yh7yquYt8gDWYgXg+Y84xpXM=",`+
		`"nonce":"AZgCyWG20zDqNjew","ct":"2mqn47T8z16v2+IrV5o/Eu6q2pEeQ3IBRswiTWgB8CXYw1nNFxvr9zhZ0wFcYfd7zOEtPyo7Q3B0g0VbI33PAjLfVgut"}`), &sealed); err != nil {
		t.Fatal(err)
	}
	b := katBindings()[1]
	opener := NewOpener(sk)
	got, err := opener.Open(&sealed, b, b.Expires.Add(-time.Second))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !got.Equal(katTokens()[1]) {
		t.Fatalf("opened %v, want %v", got, katTokens()[1])
	}
	other := b
	other.Caller = "user@example.org"
	if _, err := opener.Open(&sealed, other, b.Expires.Add(-time.Second)); !errors.Is(err, ErrSealInvalid) {
		t.Fatalf("Open with another caller: %v, want ErrSealInvalid", err)
	}
}

// The lengths Seal and Open size their buffers with are exact.
func TestEncodedLengths(t *testing.T) {
	for i, b := range katBindings() {
		if got, want := b.aadLen(), len(b.appendAAD(nil)); got != want {
			t.Errorf("binding %d: aadLen %d, encoding %d bytes", i, got, want)
		}
	}
	tokens := append(katTokens(), Token{}, NewTokenSet(map[string]string{"x-" + strings.Repeat("n", 200): strings.Repeat("v", 20000)}))
	for i, tok := range tokens {
		if got, want := tok.encodedLen(), len(tok.appendEncoding(nil)); got != want {
			t.Errorf("token %d: encodedLen %d, encoding %d bytes", i, got, want)
		}
	}
}

// What the per-call helpers allocate: Seal its field (the struct and one
// buffer for nonce and ciphertext), Open the token (one string and its
// headers), a fingerprint its string, Sum nothing.
func TestSealAndTokens_Allocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled buffers")
	}
	_, sealer, opener := newTestKeys(t)
	now := time.Now()
	b := katBindings()[1]
	b.Expires = now.Add(time.Minute)
	tok := katTokens()[1]
	sealed := mustSealToken(t, sealer, tok, b)
	for _, c := range []struct {
		name string
		want float64
		f    func()
	}{
		{"Seal", 2, func() { _, _ = sealer.Seal(tok, b) }},
		{"Open", 2, func() { _, _ = opener.Open(sealed, b, now) }},
		{"Fingerprint", 1, func() { _ = Fingerprint("Bearer user-token-5678") }},
		{"Token.Fingerprint of a set", 1, func() { _ = tok.Fingerprint() }},
		{"Token.Sum", 0, func() { _ = tok.Sum() }},
		{"Owner", 1, func() { _ = Owner("team-a", "fp_0123456789ab") }},
	} {
		if got := testing.AllocsPerRun(100, c.f); got != c.want {
			t.Errorf("%s: %v allocations, want %v", c.name, got, c.want)
		}
	}
}

// Seals and opens running at once, each with its own token and binding,
// each get their own token back: no scratch buffer is shared.
func TestSealer_ConcurrentRoundTrips(t *testing.T) {
	_, sealer, opener := newTestKeys(t)
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				tok := NewTokenSet(map[string]string{"authorization": fmt.Sprintf("Bearer %d-%d-%s", g, i, strings.Repeat("t", (g*131+i*17)%3000)), "x-n": strconv.Itoa(i)})
				b := katBindings()[i%2]
				b.RequestID, b.Expires = fmt.Sprintf("req-%d-%d", g, i), now.Add(time.Minute)
				sealed, err := sealer.Seal(tok, b)
				if err != nil {
					errs <- err
					return
				}
				got, err := opener.Open(sealed, b, now)
				if err != nil || !got.Equal(tok) {
					errs <- fmt.Errorf("goroutine %d call %d: opened %v (%v), want %v", g, i, got, err, tok)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A scratch buffer goes back to the pool cleared.
func TestPutSealScratch_Clears(t *testing.T) {
	p := new([]byte)
	used := append((*p)[:0], "Bearer user-token-5678"...)
	putSealScratch(p, used)
	for i, c := range used {
		if c != 0 {
			t.Fatalf("byte %d left: %q", i, used)
		}
	}
}
