package oauthproxy

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// What a sealed value is for: its associated data, with the server's name,
// so that one kind (or one server's) cannot stand for another.
const (
	purposeClient = "toolbus.oauth.client.v1"
	purposeState  = "toolbus.oauth.state.v1"
	purposeCode   = "toolbus.oauth.code.v1"
)

// clientPrefix starts every client_id the proxy issues.
const clientPrefix = "tbc1."

// keys gives each server's sealing key. Every replica derives the same
// one, so any replica opens what another sealed: from the server's
// client_secret when it has one (nothing shared at run time), else from a
// random key kept in the NATS KV bucket contracts.OAuthBucket, created by
// the first replica that needs it.
type keys struct {
	conn *nats.Conn

	mu     sync.Mutex
	shared []byte // the KV key, once read
	aeads  map[string]cipher.AEAD
}

func newKeys(conn *nats.Conn) *keys {
	return &keys{conn: conn, aeads: map[string]cipher.AEAD{}}
}

// aead returns srv's AEAD.
func (k *keys) aead(ctx context.Context, srv *config.Server) (cipher.AEAD, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a := k.aeads[srv.Name]; a != nil {
		return a, nil
	}
	secret := []byte(srv.ClientSecret)
	if len(secret) == 0 {
		if k.shared == nil {
			shared, err := k.sharedKey(ctx)
			if err != nil {
				return nil, err
			}
			k.shared = shared
		}
		secret = k.shared
	}
	raw, err := hkdf.Key(sha256.New, secret, []byte("toolbus oauthproxy v1"), srv.Name, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k.aeads[srv.Name] = a
	return a, nil
}

// sharedKey reads the replicas' shared random key, creating it if no
// replica has yet.
func (k *keys) sharedKey(ctx context.Context) ([]byte, error) {
	if k.conn == nil {
		return nil, errors.New("no NATS connection for the shared OAuth key")
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	js, err := jetstream.New(k.conn)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: contracts.OAuthBucket, History: 1,
		Description: "toolbus OAuth proxy: the key registrations, states and codes are sealed with",
	})
	if err != nil {
		return nil, fmt.Errorf("the OAuth bucket: %w", err)
	}
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	if _, err := kv.Create(ctx, contracts.OAuthStateKey, fresh); err == nil {
		return fresh, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("the OAuth key: %w", err)
	}
	e, err := kv.Get(ctx, contracts.OAuthStateKey)
	if err != nil {
		return nil, fmt.Errorf("the OAuth key: %w", err)
	}
	if len(e.Value()) != 32 {
		return nil, errors.New("the OAuth key in NATS is not 32 bytes")
	}
	return e.Value(), nil
}

// seal encrypts v (as JSON) for purpose and srv.
func seal(a cipher.AEAD, purpose, server string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	out := a.Seal(nonce, nonce, plain, []byte(purpose+"\x00"+server))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// open decrypts what seal made for purpose and server into v.
func open(a cipher.AEAD, purpose, server, sealed string, v any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < a.NonceSize() {
		return false
	}
	plain, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], []byte(purpose+"\x00"+server))
	if err != nil {
		return false
	}
	return json.Unmarshal(plain, v) == nil
}

// registration is what a client_id the proxy issued holds.
type registration struct {
	RedirectURIs []string `json:"r"`
	Issued       int64    `json:"i"`
}

// authState travels as the upstream's state through the browser.
type authState struct {
	RedirectURI string `json:"r"`
	State       string `json:"s,omitempty"`
	Client      string `json:"c"` // clientTag of the client_id
	Expires     int64  `json:"x"`
}

// authCode is the authorization code the client receives: the upstream's,
// bound to the client and the redirect URI it was issued for.
type authCode struct {
	Code        string `json:"u"`
	RedirectURI string `json:"r"`
	Client      string `json:"c"`
	Expires     int64  `json:"x"`
}

// clientTag identifies a client_id inside sealed values, short.
func clientTag(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func expired(unix int64, now time.Time) bool { return now.Unix() > unix }
