package contracts

import (
	"crypto/sha256"
	"encoding/hex"
)

// Token is a user credential (an Authorization header value) held in memory.
// Every way of printing it - fmt verbs, JSON, zerolog's Stringer support -
// shows only its fingerprint; Reveal is the one way to the value, used where
// it is sealed and where it is sent upstream.
type Token struct{ v string }

// NewToken wraps a credential.
func NewToken(v string) Token { return Token{v: v} }

// Reveal returns the credential itself.
func (t Token) Reveal() string { return t.v }

// IsZero reports whether there is no credential.
func (t Token) IsZero() bool { return t.v == "" }

// Fingerprint is a short, stable, non-reversible tag of the credential.
func (t Token) Fingerprint() string { return Fingerprint(t.v) }

// String returns the fingerprint.
func (t Token) String() string { return t.Fingerprint() }

// GoString returns the fingerprint.
func (t Token) GoString() string { return t.Fingerprint() }

// MarshalJSON returns the fingerprint as a JSON string.
func (t Token) MarshalJSON() ([]byte, error) { return []byte(`"` + t.Fingerprint() + `"`), nil }

// MarshalText returns the fingerprint.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.Fingerprint()), nil }

// Fingerprint returns "fp_" and 12 hex digits of SHA-256 over a domain label
// and v, or "" for an empty v. 48 bits tell tokens apart in logs and pools;
// they do not help guess a token of real entropy.
func Fingerprint(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("toolbus.fingerprint.v1\x00" + v))
	return "fp_" + hex.EncodeToString(sum[:6])
}
