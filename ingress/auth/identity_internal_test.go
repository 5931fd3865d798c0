package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/toolbus/toolbus/contracts"
)

// identityOf is Of as it was written before its MAC was reused: the
// reference the owner tags of existing jobs and tasks were computed with.
func identityOf(secret []byte, keyName string, creds [][2]string) string {
	mac := hmac.New(sha256.New, secret)
	put := func(s string) {
		mac.Write(binary.AppendUvarint(nil, uint64(len(s))))
		mac.Write([]byte(s))
	}
	put("toolbus.identity.v1")
	put(keyName)
	for _, c := range creds {
		put(c[0])
		put(c[1])
	}
	return contracts.Owner(keyName, hex.EncodeToString(mac.Sum(nil)))
}

// Of gives every caller the identity it always had, called from many
// goroutines at once (its MACs are pooled), for short and long credentials.
func TestIdentity_Of_AsBefore(t *testing.T) {
	t.Parallel()
	secret := []byte("an-identity-secret-of-some-length")
	id, err := NewIdentity(secret)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		key   string
		creds [][2]string
	}{
		{"master", nil},
		{"", nil},
		{"master", [][2]string{{"authorization", "Bearer a"}}},
		{"master", [][2]string{{"authorization", "Bearer b"}}},
		{"team-a", [][2]string{{"authorization", "Bearer a"}, {"legacy", "x"}, {"plain\x00x-tenant", "t1"}}},
		{"team-a", [][2]string{{"authorization", strings.Repeat("long", 3000)}}},
		{strings.Repeat("k", 300), [][2]string{{"x-mcp\x00demo\x00authorization", "é\x00\xff"}}},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				c := cases[(g+i)%len(cases)]
				if got, want := id.Of(c.key, c.creds), identityOf(secret, c.key, c.creds); got != want {
					t.Errorf("%q %q: %s, want %s", c.key, c.creds, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// owner computes contracts.Owner.
func TestOwner_AsContracts(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"", "master", strings.Repeat("k", 127), strings.Repeat("k", 128), strings.Repeat("k", 1000)} {
		for _, fp := range []string{"", "fp_0123", strings.Repeat("ab", 32)} {
			if got, want := owner(key, []byte(fp)), contracts.Owner(key, fp); got != want {
				t.Errorf("%d-byte key, %q: %s, want %s", len(key), fp, got, want)
			}
		}
	}
}

// The key headers' canonical names are the ones net/http keys them by.
func TestKeyHeaders_Canonical(t *testing.T) {
	t.Parallel()
	for name, canonical := range map[string]string{HeaderKey: headerKeyCanonical, HeaderAPIKey: headerAPIKeyCanonical} {
		if got := http.CanonicalHeaderKey(name); got != canonical {
			t.Errorf("%s: %s, want %s", name, canonical, got)
		}
	}
}

func BenchmarkIdentity_Of(b *testing.B) {
	id, err := NewIdentity([]byte("an-identity-secret-of-some-length"))
	if err != nil {
		b.Fatal(err)
	}
	creds := [][2]string{{"authorization", "Bearer user-token"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = id.Of("master", creds)
	}
}
