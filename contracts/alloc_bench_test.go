package contracts

import (
	"testing"
	"time"
)

// The per-call helpers every tool call runs once or twice (ingress and
// worker): what they allocate is what -benchmem shows.

func BenchmarkFingerprint(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if Fingerprint("Bearer user-token-5678") == "" {
			b.Fatal("empty")
		}
	}
}

func BenchmarkToken_Fingerprint(b *testing.B) {
	for _, c := range benchTokens() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c.tok.Fingerprint() == "" {
					b.Fatal("empty")
				}
			}
		})
	}
}

func BenchmarkToken_Sum(b *testing.B) {
	for _, c := range benchTokens() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c.tok.Sum() == ([32]byte{}) {
					b.Fatal("zero")
				}
			}
		})
	}
}

func BenchmarkToken_Equal(b *testing.B) {
	for _, c := range benchTokens() {
		u := Token{h: append([]tokenHeader(nil), c.tok.h...)}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !c.tok.Equal(u) {
					b.Fatal("not equal")
				}
			}
		})
	}
}

func benchTokens() []struct {
	name string
	tok  Token
} {
	return []struct {
		name string
		tok  Token
	}{
		{"Authorization", NewToken("Bearer user-token-5678")},
		{"Set", NewTokenSet(map[string]string{"Authorization": "Bearer user-token-5678", "X-Api-Key": "user-key-9999", "X-Tenant": "acme"})},
	}
}

// BenchmarkScanJSON_Validate is a door's check of a small call's
// arguments: ScanJSON with no wanted member.
func BenchmarkScanJSON_Validate(b *testing.B) {
	args := []byte(`{"summary":"New ticket","priority":3,"labels":["a","b"],"ratio":1.5e3}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ScanJSON(args, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOwner(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if Owner("team-a", "fp_0123456789ab") == "" {
			b.Fatal("empty")
		}
	}
}

func BenchmarkParseSubject(b *testing.B) {
	subjects := []string{CallSubject("jira"), CallSubject("my.server"), JobSubject("jira", KeyTag("team-a"))}
	for _, subject := range subjects {
		b.Run(subject, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := ParseSubject(subject); !ok {
					b.Fatal("not parsed")
				}
			}
		})
	}
}

func BenchmarkReplayGuard_Check(b *testing.B) {
	g := NewReplayGuard()
	now := time.Now()
	s := &Sealed{Nonce: make([]byte, sealNonceSize)}
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		for i := range 8 {
			s.Nonce[i] = byte(n >> (8 * i))
		}
		// A call a microsecond, each valid for a millisecond: about a
		// thousand live nonces, the rest pruned.
		at := now.Add(time.Duration(n) * time.Microsecond)
		if err := g.Check(s, at.Add(time.Millisecond), at); err != nil {
			b.Fatal(err)
		}
	}
}
