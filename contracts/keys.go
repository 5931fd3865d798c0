package contracts

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sealing keys are X25519 keys used with HPKE (RFC 9180). Their text form is
// a versioned prefix and the raw key in unpadded base64url:
//
//	public:  tbpk1.<43 chars>
//	private: tbsk1.<43 chars>
//
// A key's ID is the first 8 bytes of SHA-256 of the public key, in hex. It
// names the recipient in every sealed field, so workers can hold several
// private keys while ingresses move from one public key to the next.
const (
	publicKeyPrefix  = "tbpk1."
	privateKeyPrefix = "tbsk1."
)

// ErrBadKey reports a sealing key that does not parse.
var ErrBadKey = errors.New("bad sealing key")

var keyEncoding = base64.RawURLEncoding

// PublicKey is a recipient key: ingresses seal to it.
type PublicKey struct {
	id  string
	raw []byte
	pk  hpke.PublicKey
}

// PrivateKey is a worker's key: it opens what was sealed to its public key.
// It never prints its secret: String and GoString show only the key ID.
type PrivateKey struct {
	id  string
	raw []byte
	sk  hpke.PrivateKey
	pub PublicKey
}

// GenerateKeyPair returns a new random private key (its Public half is the
// recipient key for ingresses).
func GenerateKeyPair() (*PrivateKey, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return newPrivateKey(k)
}

// ParsePublicKey parses the text form of a public key.
func ParsePublicKey(s string) (*PublicKey, error) {
	return parseKey(s, publicKeyPrefix, ecdh.X25519().NewPublicKey, newPublicKey)
}

// ParsePrivateKey parses the text form of a private key.
func ParsePrivateKey(s string) (*PrivateKey, error) {
	return parseKey(s, privateKeyPrefix, ecdh.X25519().NewPrivateKey, newPrivateKey)
}

// parseKey parses the text form of a key with prefix: newKey makes the
// X25519 key of the raw bytes, wrap the sealing key of that.
func parseKey[K, T any](s, prefix string, newKey func([]byte) (K, error), wrap func(K) (*T, error)) (*T, error) {
	raw, err := decodeKey(s, prefix)
	if err != nil {
		return nil, err
	}
	k, err := newKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return wrap(k)
}

func decodeKey(s, prefix string) ([]byte, error) {
	body, ok := strings.CutPrefix(strings.TrimSpace(s), prefix)
	if !ok {
		return nil, fmt.Errorf("%w: want prefix %q", ErrBadKey, prefix)
	}
	raw, err := keyEncoding.DecodeString(body)
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("%w: want 32 bytes of base64url after %q", ErrBadKey, prefix)
	}
	return raw, nil
}

func newPublicKey(k *ecdh.PublicKey) (*PublicKey, error) {
	pk, err := hpke.NewDHKEMPublicKey(k)
	if err != nil {
		return nil, err
	}
	raw := k.Bytes()
	sum := sha256.Sum256(raw)
	return &PublicKey{id: hex.EncodeToString(sum[:8]), raw: raw, pk: pk}, nil
}

func newPrivateKey(k *ecdh.PrivateKey) (*PrivateKey, error) {
	sk, err := hpke.NewDHKEMPrivateKey(k)
	if err != nil {
		return nil, err
	}
	pub, err := newPublicKey(k.PublicKey())
	if err != nil {
		return nil, err
	}
	return &PrivateKey{id: pub.id, raw: k.Bytes(), sk: sk, pub: *pub}, nil
}

// ID is the key's identifier (shared with its public half).
func (k *PublicKey) ID() string { return k.id }

// String is the key's text form; public keys are not secret.
func (k *PublicKey) String() string { return publicKeyPrefix + keyEncoding.EncodeToString(k.raw) }

// ID is the key's identifier (shared with its public half).
func (k *PrivateKey) ID() string { return k.id }

// Public returns the matching public key.
func (k *PrivateKey) Public() *PublicKey { return &k.pub }

// Secret is the key's text form, for keygen output and key files only.
func (k *PrivateKey) Secret() string { return privateKeyPrefix + keyEncoding.EncodeToString(k.raw) }

// String shows the key ID only, so a private key in a log line or a %v
// leaks nothing.
func (k *PrivateKey) String() string { return "sealing-private-key(" + k.id + ")" }

// GoString is String, for %#v.
func (k *PrivateKey) GoString() string { return k.String() }

// MarshalJSON keeps the secret out of JSON too.
func (k *PrivateKey) MarshalJSON() ([]byte, error) { return []byte(`"` + k.String() + `"`), nil }
