package contracts

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// The sealed field.
//
// An ingress seals the user's credential to the workers' public key; a worker
// opens it with the private key. Public-key operations (X25519) cost tens of
// microseconds, so the ingress does one per epoch, not per message: it runs an
// HPKE (RFC 9180, base mode, DHKEM(X25519)/HKDF-SHA256) sender setup to the
// recipient key, exports a 256-bit AES-GCM key from that context, and seals
// each token with that key, a fresh random nonce, and the request's binding as
// associated data. The field carries the epoch's encapsulated key (enc), so a
// worker recovers the epoch key with one decapsulation and caches it.
//
// The plaintext is the caller's credential set (Token), canonically encoded.
//
// The binding (operation, request id, server, tool, gateway key id, reply
// subject, expiry, and the SHA-256 of the call's arguments or the relayed
// request's params, and the timeout) is never sent inside the field: the
// worker rebuilds it from the message it received and the subject it
// arrived on. If anything differs - the message was edited (its arguments,
// params or timeout too), moved to another server's subject, given another
// reply subject, or is past its expiry - the AEAD tag does not verify and
// the field does not open.
//
// Epochs rotate after EpochTTL or epochMaxSeals seals, whichever comes first.

// Sealing parameters. Changing any of them is a new wire version.
const (
	// sealVersion 2: the plaintext is a credential set (Token's encoding)
	// and the binding covers the payload and the timeout. Version 1 fields
	// (a bare Authorization value, no payload binding) do not open.
	sealVersion    = 2
	sealInfo       = "toolbus.seal.v1"
	sealExportCtx  = "toolbus.seal.v1 epoch key"
	sealAADLabel   = "toolbus.seal.v2 binding"
	sealNonceSize  = 12
	sealKeySize    = 32
	encSize        = 32 // DHKEM(X25519) encapsulated key
	maxSealedToken = 16 << 10

	// DefaultEpochTTL is how long one encapsulated epoch key is used.
	DefaultEpochTTL = 10 * time.Minute
	// epochMaxSeals keeps random 96-bit nonces far from collision.
	epochMaxSeals = 1 << 24
	// openerCacheSize bounds the epoch keys a worker keeps.
	openerCacheSize = 1024
)

var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.AES256GCM() // only the key schedule uses it; messages use the exported key
)

// Sentinel errors of Open. All of them mean the field must not be used.
var (
	ErrSealInvalid    = errors.New("sealed token invalid")
	ErrSealExpired    = errors.New("sealed token expired")
	ErrSealUnknownKey = errors.New("sealed token for an unknown key")
	ErrSealReplayed   = errors.New("sealed token replayed")
)

// Sealed is the encrypted user credential inside a request.
type Sealed struct {
	Version    int    `json:"v"`
	KeyID      string `json:"kid"`   // recipient key
	Enc        []byte `json:"enc"`   // HPKE encapsulated key of the epoch
	Nonce      []byte `json:"nonce"` // AES-GCM nonce, random per message
	Ciphertext []byte `json:"ct"`    // token + tag
}

func (s *Sealed) validate() error {
	switch {
	case s.Version != sealVersion:
		return badMessage("sealed token version %d", s.Version)
	case s.KeyID == "" || len(s.KeyID) > maxIDLen:
		return badMessage("sealed token key id")
	case len(s.Enc) != encSize:
		return badMessage("sealed token enc size")
	case len(s.Nonce) != sealNonceSize:
		return badMessage("sealed token nonce size")
	case len(s.Ciphertext) < 16 || len(s.Ciphertext) > maxSealedToken:
		return badMessage("sealed token size")
	}
	return nil
}

// Binding is what a sealed token is valid for.
type Binding struct {
	Op        string // OpCall or OpList
	RequestID string
	Server    string
	Tool      string // empty for OpList
	KeyID     string // gateway key id
	ReplyTo   string // the NATS reply subject (or job record key) the answer goes to
	// EventsTo is the subject progress and log events go to, if any. It is
	// bound only when set.
	EventsTo string
	Expires  time.Time
	// Payload is the call's arguments (or a relayed request's params)
	// exactly as the message carries them; the binding holds its SHA-256.
	// A v2 message (wire.go) carries them as its body, byte for byte; a
	// job's (v1) inside its JSON, so the ingress encodes them with
	// WirePayload before sealing.
	Payload []byte
	// TimeoutMS is the request's budget.
	TimeoutMS int64
	// Caller is the caller's identity (RequestHeader.Caller), bound when set.
	Caller string
}

// appendAAD appends the binding's encoding, the AEAD's associated data, to
// out: a label, then each field length-prefixed, so that no two bindings
// encode alike.
func (b Binding) appendAAD(out []byte) []byte {
	fields := [...]string{b.Op, b.RequestID, b.Server, b.Tool, b.KeyID, b.ReplyTo}
	out = append(out, sealAADLabel...)
	for _, f := range fields {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	out = binary.BigEndian.AppendUint64(out, uint64(b.Expires.UnixMilli()))
	payload := sha256.Sum256(b.Payload)
	out = append(out, payload[:]...)
	out = binary.BigEndian.AppendUint64(out, uint64(b.TimeoutMS))
	if b.EventsTo != "" {
		out = append(out, "events"...)
		out = binary.AppendUvarint(out, uint64(len(b.EventsTo)))
		out = append(out, b.EventsTo...)
	}
	if b.Caller != "" {
		out = append(out, "caller"...)
		out = binary.AppendUvarint(out, uint64(len(b.Caller)))
		out = append(out, b.Caller...)
	}
	return out
}

// aadLen is the length of the binding's encoding (appendAAD).
func (b Binding) aadLen() int {
	n := len(sealAADLabel) + 8 + sha256.Size + 8
	for _, f := range [...]string{b.Op, b.RequestID, b.Server, b.Tool, b.KeyID, b.ReplyTo} {
		n += uvarintLen(uint64(len(f))) + len(f)
	}
	if b.EventsTo != "" {
		n += len("events") + uvarintLen(uint64(len(b.EventsTo))) + len(b.EventsTo)
	}
	if b.Caller != "" {
		n += len("caller") + uvarintLen(uint64(len(b.Caller))) + len(b.Caller)
	}
	return n
}

// Sealer seals tokens to one recipient public key. It is safe for concurrent use.
type Sealer struct {
	pub      *PublicKey
	epochTTL time.Duration
	now      func() time.Time

	mu    sync.Mutex
	epoch *sealEpoch
}

type sealEpoch struct {
	enc     []byte
	aead    cipher.AEAD
	expires time.Time
	seals   int
}

// NewSealer returns a Sealer for pub. epochTTL <= 0 means DefaultEpochTTL.
func NewSealer(pub *PublicKey, epochTTL time.Duration) *Sealer {
	if epochTTL <= 0 {
		epochTTL = DefaultEpochTTL
	}
	return &Sealer{pub: pub, epochTTL: epochTTL, now: time.Now}
}

// KeyID is the recipient key's ID.
func (s *Sealer) KeyID() string { return s.pub.id }

// Seal encrypts the credential set token for the recipient, bound to b.
func (s *Sealer) Seal(token Token, b Binding) (*Sealed, error) {
	enc, aead, err := s.current()
	if err != nil {
		return nil, err
	}
	// One buffer holds the nonce and the ciphertext. The token is encoded
	// where its ciphertext goes and sealed in place: no other copy of it
	// is made.
	n := token.encodedLen()
	buf := make([]byte, sealNonceSize, sealNonceSize+n+aead.Overhead())
	nonce := buf[:sealNonceSize:sealNonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	pt := token.appendEncoding(buf[sealNonceSize:sealNonceSize])
	scratch := getSealScratch()
	aad := b.appendAAD((*scratch)[:0])
	ct := aead.Seal(pt[:0], nonce, pt, aad)
	putSealScratch(scratch, aad)
	return &Sealed{
		Version:    sealVersion,
		KeyID:      s.pub.id,
		Enc:        enc,
		Nonce:      nonce,
		Ciphertext: ct,
	}, nil
}

// sealScratch holds buffers a seal or an open needs only during the call -
// the binding's encoding, an opened plaintext - so that they cost no
// allocation. A buffer is cleared before it is put back, and one grown
// past maxSealScratch is left to the collector.
var sealScratch = sync.Pool{New: func() any { return new([]byte) }}

const maxSealScratch = 64 << 10

func getSealScratch() *[]byte { return sealScratch.Get().(*[]byte) }

// putSealScratch clears used, the part of the scratch buffer p (or of the
// buffer it grew into) that the call wrote, and puts the buffer back.
func putSealScratch(p *[]byte, used []byte) {
	clear(used)
	if cap(used) > maxSealScratch {
		return
	}
	*p = used[:0]
	sealScratch.Put(p)
}

// current returns the epoch's enc and AEAD, starting a new epoch when due.
func (s *Sealer) current() ([]byte, cipher.AEAD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.epoch
	if e == nil || e.seals >= epochMaxSeals || !s.now().Before(e.expires) {
		enc, sender, err := hpke.NewSender(s.pub.pk, sealKDF, sealAEAD, []byte(sealInfo))
		if err != nil {
			return nil, nil, fmt.Errorf("seal: new epoch: %w", err)
		}
		key, err := sender.Export(sealExportCtx, sealKeySize)
		if err != nil {
			return nil, nil, fmt.Errorf("seal: export epoch key: %w", err)
		}
		aead, err := newGCM(key)
		if err != nil {
			return nil, nil, err
		}
		e = &sealEpoch{enc: enc, aead: aead, expires: s.now().Add(s.epochTTL)}
		s.epoch = e
	}
	e.seals++
	return e.enc, e.aead, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Opener opens sealed tokens with one or more private keys (several during a
// key rotation). It caches the epoch keys it has derived. Safe for concurrent use.
type Opener struct {
	keys map[string]*PrivateKey

	mu     sync.Mutex
	epochs map[epochKey]cipher.AEAD
}

// epochKey names an epoch: the recipient key and the encapsulated key.
type epochKey struct {
	kid string
	enc [encSize]byte
}

// NewOpener returns an Opener for keys.
func NewOpener(keys ...*PrivateKey) *Opener {
	o := &Opener{keys: make(map[string]*PrivateKey, len(keys)), epochs: make(map[epochKey]cipher.AEAD)}
	for _, k := range keys {
		o.keys[k.id] = k
	}
	return o
}

// Open returns the credential set sealed in s if s was sealed for exactly
// b, to one of the Opener's keys, and b.Expires is after now.
func (o *Opener) Open(s *Sealed, b Binding, now time.Time) (Token, error) {
	if s == nil {
		return Token{}, fmt.Errorf("%w: missing", ErrSealInvalid)
	}
	if err := s.validate(); err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrSealInvalid, err)
	}
	if !now.Before(b.Expires) {
		return Token{}, ErrSealExpired
	}
	aead, err := o.epochAEAD(s)
	if err != nil {
		return Token{}, err
	}
	// The binding's encoding and then the plaintext go in one scratch
	// buffer, cleared once the token is decoded (into a copy of its own).
	scratch := getSealScratch()
	aad := b.appendAAD(slices.Grow((*scratch)[:0], b.aadLen()+len(s.Ciphertext)))
	used := aad[:min(cap(aad), len(aad)+len(s.Ciphertext))]
	pt, err := aead.Open(aad[len(aad):len(aad)], s.Nonce, s.Ciphertext, aad[:len(aad):len(aad)])
	if err != nil {
		putSealScratch(scratch, used)
		return Token{}, fmt.Errorf("%w: binding or ciphertext does not verify", ErrSealInvalid)
	}
	t, err := decodeToken(pt)
	putSealScratch(scratch, used)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrSealInvalid, err)
	}
	return t, nil
}

// WirePayload is raw (a job's arguments) as encoding/json writes it inside
// a v1 message - compacted, with <, > and & escaped - so that the Binding
// an ingress seals to before encoding the message matches the one a worker
// rebuilds from the decoded message. Empty stays empty. A v2 message needs
// none: its body is bound as is.
func WirePayload(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		return raw, nil
	}
	return json.Marshal(raw)
}

func (o *Opener) epochAEAD(s *Sealed) (cipher.AEAD, error) {
	k, ok := o.keys[s.KeyID]
	if !ok {
		return nil, ErrSealUnknownKey
	}
	cacheKey := epochKey{kid: s.KeyID, enc: [encSize]byte(s.Enc)}
	o.mu.Lock()
	aead, ok := o.epochs[cacheKey]
	o.mu.Unlock()
	if ok {
		return aead, nil
	}
	r, err := hpke.NewRecipient(s.Enc, k.sk, sealKDF, sealAEAD, []byte(sealInfo))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSealInvalid, err)
	}
	key, err := r.Export(sealExportCtx, sealKeySize)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSealInvalid, err)
	}
	if aead, err = newGCM(key); err != nil {
		return nil, err
	}
	o.mu.Lock()
	if len(o.epochs) >= openerCacheSize {
		for k := range o.epochs { // evict an arbitrary entry; epochs are cheap to rebuild
			delete(o.epochs, k)
			break
		}
	}
	o.epochs[cacheKey] = aead
	o.mu.Unlock()
	return aead, nil
}

// ReplayGuard remembers the nonces of opened tokens until they expire, so the
// same sealed field is accepted once per process. Synchronous calls use it;
// async jobs do not (a redelivered job legitimately opens its token again).
// Safe for concurrent use.
type ReplayGuard struct {
	mu        sync.Mutex
	seen      map[[sealNonceSize]byte]time.Time
	pruneAt   int
	minPrunes int
}

// NewReplayGuard returns an empty ReplayGuard.
func NewReplayGuard() *ReplayGuard {
	return &ReplayGuard{seen: make(map[[sealNonceSize]byte]time.Time), pruneAt: 1024, minPrunes: 1024}
}

// Check records s's nonce until expires and fails if it was seen before.
func (g *ReplayGuard) Check(s *Sealed, expires, now time.Time) error {
	var n [sealNonceSize]byte
	if copy(n[:], s.Nonce) != sealNonceSize {
		return ErrSealInvalid
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if exp, ok := g.seen[n]; ok && now.Before(exp) {
		return ErrSealReplayed
	}
	g.seen[n] = expires
	if len(g.seen) >= g.pruneAt {
		for k, exp := range g.seen {
			if !now.Before(exp) {
				delete(g.seen, k)
			}
		}
		// Amortise: scan again only when the live set has doubled.
		g.pruneAt = max(2*len(g.seen), g.minPrunes)
	}
	return nil
}
