package contracts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
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
		if got := sha256.Sum256(b.aad()); hex.EncodeToString(got[:]) != want[i] {
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
