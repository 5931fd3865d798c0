package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
)

// Identity tells callers apart. A caller is its gateway key and every
// credential it presented; its identity is an HMAC-SHA256, keyed with the
// deployment's secret, over the key's name and those credentials in
// canonical order, at full length. The identity owns the caller's jobs,
// tasks, idempotency keys, cancellations, subscriptions and client answers.
// Without the secret nobody can compute an identity, nor search for two
// credentials that share one; short fingerprints (contracts.Fingerprint)
// are for logs and decide nothing.
type Identity struct {
	secret []byte
	macs   sync.Pool // of *identityMAC
}

// minIdentitySecret is the shortest secret accepted (bytes).
const minIdentitySecret = 16

// NewIdentity keys identities with secret (at least 16 bytes).
func NewIdentity(secret []byte) (*Identity, error) {
	if len(secret) < minIdentitySecret {
		return nil, fmt.Errorf("identity secret: want at least %d bytes", minIdentitySecret)
	}
	return &Identity{secret: secret}, nil
}

// LoadIdentity keys identities with configured when it is set
// (ingress.identity_secret), else with the deployment's secret in the
// IdentityBucket: read if present, generated and created only if absent, so
// every replica - the first ones racing included - ends with the same one.
func LoadIdentity(ctx context.Context, js jetstream.JetStream, configured string, replicas int) (*Identity, error) {
	if configured != "" {
		return NewIdentity([]byte(configured))
	}
	kv, err := js.KeyValue(ctx, contracts.IdentityBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: contracts.IdentityBucket, History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
			Description: "toolbus: the key of callers' identities (ingress.identity_secret unset)",
		})
		if errors.Is(err, jetstream.ErrBucketExists) { // another replica made it first
			kv, err = js.KeyValue(ctx, contracts.IdentityBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("identity secret: bucket %s: %w", contracts.IdentityBucket, err)
	}
	for range 3 {
		if e, err := kv.Get(ctx, contracts.IdentitySecretKey); err == nil {
			secret, err := base64.StdEncoding.DecodeString(string(e.Value()))
			if err != nil {
				return nil, fmt.Errorf("identity secret: the stored value is not base64")
			}
			return NewIdentity(secret)
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("identity secret: %w", err)
		}
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		_, err := kv.Create(ctx, contracts.IdentitySecretKey, []byte(base64.StdEncoding.EncodeToString(secret)))
		switch {
		case err == nil:
			return NewIdentity(secret)
		case !errors.Is(err, jetstream.ErrKeyExists):
			return nil, fmt.Errorf("identity secret: %w", err)
		}
		// Another replica created it first: read that one.
	}
	return nil, errors.New("identity secret: the stored secret could not be read")
}

// Of returns the owner tag (contracts.Owner form: 32 hex digits) of a caller
// that presented key keyName and the credentials creds: name and value
// pairs, in canonical order (sorted by name, each name once). A caller that
// presented none has one identity per key, on purpose.
func (id *Identity) Of(keyName string, creds [][2]string) string {
	m, _ := id.macs.Get().(*identityMAC)
	if m == nil {
		m = &identityMAC{mac: hmac.New(sha256.New, id.secret)}
	}
	defer id.macs.Put(m)
	// The MAC's input, framed as it always was (each string after its
	// length as a uvarint), written at once: no conversion per string.
	in := m.in[:0]
	put := func(s string) {
		in = binary.AppendUvarint(in, uint64(len(s)))
		in = append(in, s...)
	}
	put("toolbus.identity.v1")
	put(keyName)
	for _, c := range creds {
		put(c[0])
		put(c[1])
	}
	m.mac.Write(in)
	var fp [2 * sha256.Size]byte
	hex.Encode(fp[:], m.mac.Sum(m.sum[:0]))
	// Nothing of the credentials stays in the pool: the input is zeroed,
	// the MAC back to its keyed start.
	m.mac.Reset()
	clear(in)
	clear(m.sum[:])
	if cap(in) <= maxPooledIdentityInput {
		m.in = in[:0]
	} else {
		m.in = nil
	}
	return owner(keyName, fp[:])
}

// identityMAC is Of's keyed MAC, input buffer and sum, reused
// (Identity.macs).
type identityMAC struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

// maxPooledIdentityInput bounds the input buffer an identityMAC keeps.
const maxPooledIdentityInput = 4 << 10

// owner is contracts.Owner(keyID, string(tokenFP)), computed without
// allocating but for its result (TestOwner_AsContracts).
func owner(keyID string, tokenFP []byte) string {
	var buf [256]byte
	in := append(buf[:0], ownerDomain...)
	in = binary.AppendUvarint(in, uint64(len(keyID)))
	in = append(append(in, keyID...), tokenFP...)
	sum := sha256.Sum256(in)
	return hex.EncodeToString(sum[:16])
}

// ownerDomain begins contracts.Owner's input.
const ownerDomain = "toolbus.owner.v1\x00"
