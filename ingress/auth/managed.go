package auth

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// Managed keys live in the KeysBucket: created, listed and revoked at run
// time (`ingress keys ...`), picked up by every ingress replica within a
// moment through Watch, no restart needed. Only their SHA-256 is stored.

// Watch's retry delays: after a failed look for the bucket, Watch waits
// watchRetryMin, doubling up to watchRetryMax while the failure lasts.
const (
	watchRetryMin = time.Second
	watchRetryMax = 8 * time.Second
)

// Watch keeps the managed keys in step with the KeysBucket until ctx ends.
// It waits for the bucket to exist (the first `keys create` makes it),
// looking again with a growing delay (1 s to 8 s). A managed key with the
// name of a configured key is ignored: names identify owners, so two keys
// must never share one.
//
// It logs a change of state once (no bucket yet, watching, failing), never
// the retries in between: an ingress without managed keys logs one line.
func (k *Keys) Watch(ctx context.Context, js jetstream.JetStream, log zerolog.Logger) {
	k.watch(ctx, js, log, watchRetryMin, watchRetryMax)
}

// watchState is where Watch stands, for logging changes only.
type watchState int

const (
	watchStarting watchState = iota
	watchNoBucket
	watchWatching
	watchFailing
)

func (k *Keys) watch(ctx context.Context, js jetstream.JetStream, log zerolog.Logger, retryMin, retryMax time.Duration) {
	configured := map[string]bool{}
	for _, p := range k.byHash {
		configured[p.Name] = true
	}
	state, delay := watchStarting, retryMin
	enter := func(s watchState, err error) {
		if s == state {
			return
		}
		state = s
		switch s {
		case watchNoBucket:
			log.Debug().Str("bucket", contracts.KeysBucket).Msg("managed keys: none yet; configured keys only until `ingress keys create` makes the bucket")
		case watchWatching:
			log.Info().Str("bucket", contracts.KeysBucket).Msg("managed keys: watching")
		case watchFailing:
			log.Warn().Err(err).Str("bucket", contracts.KeysBucket).Msg("managed keys: cannot watch; trying again")
		}
	}
	for ctx.Err() == nil {
		err := k.watchOnce(ctx, js, configured, func() { enter(watchWatching, nil) }, log)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errWatchEnded):
			delay = retryMin // it worked: look again soon, quietly
		case errors.Is(err, jetstream.ErrBucketNotFound):
			enter(watchNoBucket, err)
		default:
			enter(watchFailing, err)
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
		delay = min(delay*2, retryMax)
	}
}

// errWatchEnded is watchOnce's answer when the watch's updates end.
var errWatchEnded = errors.New("watch ended")

// watchOnce finds the bucket and applies its changes until the watch ends;
// watching is called once the watch is set up.
func (k *Keys) watchOnce(ctx context.Context, js jetstream.JetStream, configured map[string]bool, watching func(), log zerolog.Logger) error {
	kv, err := js.KeyValue(ctx, contracts.KeysBucket)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	watching()
	for entry := range w.Updates() {
		if entry == nil {
			continue // the initial values are in
		}
		raw, err := hex.DecodeString(entry.Key())
		if err != nil || len(raw) != sha256.Size {
			continue
		}
		hash := [sha256.Size]byte(raw)
		if entry.Operation() != jetstream.KeyValuePut {
			k.mu.Lock()
			delete(k.managed, hash)
			k.mu.Unlock()
			continue
		}
		mk, err := contracts.DecodeManagedKey(entry.Value())
		if err != nil {
			log.Warn().Str("entry", entry.Key()[:12]).Msg("managed keys: unreadable entry ignored")
			continue
		}
		if configured[mk.Name] {
			log.Warn().Str("key", mk.Name).Msg("managed keys: a configured key has this name; ignored")
			continue
		}
		p := newPrincipal(mk.Name, hash, k.managedServers(mk), mk.Tools, k.sep)
		if len(mk.ToolRefs) > 0 {
			p.setRefs(mk.ToolRefs)
		}
		restricted := len(mk.Tools) > 0 || len(mk.ToolRefs) > 0
		p.resources = newGrants(mk.ResourceRefs, restricted || len(mk.ResourceRefs) > 0)
		p.prompts = newGrants(mk.PromptRefs, restricted || len(mk.PromptRefs) > 0)
		if mk.Limits != nil {
			p.Limits = *mk.Limits
		}
		if mk.IdentityLimits != nil {
			p.IdentityLimits = *mk.IdentityLimits
		}
		k.mu.Lock()
		k.managed[hash] = p
		k.mu.Unlock()
	}
	return errWatchEnded
}

// bucket returns the KeysBucket, creating it when create is set.
func bucket(ctx context.Context, js jetstream.JetStream, create bool, replicas int) (jetstream.KeyValue, error) {
	if !create {
		return js.KeyValue(ctx, contracts.KeysBucket)
	}
	return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: contracts.KeysBucket, History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		Description: "toolbus managed gateway keys (SHA-256 only)",
	})
}

// CreateKey makes a new random gateway key named name, stores its hash and
// returns the key: the only time it is ever shown. Names are unique.
// accessGroups, if any, are access groups the key may use (their servers
// are those the reading ingress's configuration declares).
func CreateKey(ctx context.Context, js jetstream.JetStream, replicas int, name string, servers, tools []string, accessGroups ...string) (string, error) {
	return CreateManagedKey(ctx, js, replicas, contracts.ManagedKey{Name: name, Servers: servers, Tools: tools, AccessGroups: accessGroups})
}

// CreateManagedKey is CreateKey for the record mk (its type and creation
// time are set here): with the (server, tool) pairs of its tools
// (config.File.KeyToolRefs resolves them), its access groups and the
// resources and prompts it may use.
func CreateManagedKey(ctx context.Context, js jetstream.JetStream, replicas int, mk contracts.ManagedKey) (string, error) {
	name := mk.Name
	if name == "" {
		return "", errors.New("a key needs a name")
	}
	kv, err := bucket(ctx, js, true, replicas)
	if err != nil {
		return "", err
	}
	existing, err := ListKeys(ctx, js)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(existing, func(m contracts.ManagedKey) bool { return m.Name == name }) {
		return "", fmt.Errorf("a key named %q exists; revoke it first", name)
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	key := "sk-tb-" + base64.RawURLEncoding.EncodeToString(secret)
	mk.Type, mk.CreatedAt = contracts.TypeManagedKey, time.Now().UTC()
	rec, _ := json.Marshal(mk)
	if _, err := kv.Create(ctx, config.HashKey(key), rec); err != nil {
		return "", err
	}
	return key, nil
}

// ListKeys returns the managed keys (never the keys themselves).
func ListKeys(ctx context.Context, js jetstream.JetStream) ([]contracts.ManagedKey, error) {
	kv, err := bucket(ctx, js, false, 0)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []contracts.ManagedKey
	for h := range lister.Keys() {
		entry, err := kv.Get(ctx, h)
		if err != nil {
			continue
		}
		if mk, err := contracts.DecodeManagedKey(entry.Value()); err == nil {
			out = append(out, *mk)
		}
	}
	slices.SortFunc(out, func(a, b contracts.ManagedKey) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// RevokeKey deletes the managed key named name; every ingress stops
// accepting it as soon as its watch sees the deletion.
func RevokeKey(ctx context.Context, js jetstream.JetStream, name string) error {
	kv, err := bucket(ctx, js, false, 0)
	if err != nil {
		return fmt.Errorf("no managed keys: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	found := false
	for h := range lister.Keys() {
		entry, err := kv.Get(ctx, h)
		if err != nil {
			continue
		}
		if mk, err := contracts.DecodeManagedKey(entry.Value()); err == nil && mk.Name == name {
			if err := kv.Delete(ctx, h); err != nil {
				return err
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no managed key named %q", name)
	}
	return nil
}

// Import is one key to store by ImportKeys: the hex SHA-256 of the key (as
// LiteLLM stores its virtual keys: LiteLLM_VerificationToken.token) and its
// record.
type Import struct {
	Hash   string
	Record contracts.ManagedKey
}

// ImportResult counts what ImportKeys did.
type ImportResult struct {
	Created, Replaced, Revoked int
}

// ImportKeys stores keys under their hashes and deletes the managed keys
// whose hashes are in revoke (keys that are blocked or expired where they
// come from), after checking the whole set first: a hash that is not 64
// hex digits, a name used twice, or a name another managed key already has
// under another hash refuses the import before anything is written. A key
// already stored under its hash is replaced (an import can be run again).
func ImportKeys(ctx context.Context, js jetstream.JetStream, replicas int, keys []Import, revoke []string) (ImportResult, error) {
	var res ImportResult
	names := map[string]string{}
	for _, k := range keys {
		if !validHex(k.Hash) {
			return res, fmt.Errorf("key %q: the hash is not a SHA-256 hex digest", k.Record.Name)
		}
		if k.Record.Name == "" {
			return res, errors.New("a key without a name")
		}
		if other, dup := names[k.Record.Name]; dup && other != k.Hash {
			return res, fmt.Errorf("the name %q is given to two keys", k.Record.Name)
		}
		names[k.Record.Name] = k.Hash
	}
	for _, h := range revoke {
		if !validHex(h) {
			return res, errors.New("a key to revoke whose hash is not a SHA-256 hex digest")
		}
	}
	kv, err := bucket(ctx, js, true, replicas)
	if err != nil {
		return res, err
	}
	existing := map[string]string{} // name -> hash
	lister, err := kv.ListKeys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return res, err
	}
	stored := map[string]bool{}
	if lister != nil {
		for h := range lister.Keys() {
			stored[h] = true
			entry, err := kv.Get(ctx, h)
			if err != nil {
				continue
			}
			if mk, err := contracts.DecodeManagedKey(entry.Value()); err == nil {
				existing[mk.Name] = h
			}
		}
	}
	for name, h := range names {
		if other, ok := existing[name]; ok && other != h && !slices.Contains(revoke, other) {
			return res, fmt.Errorf("a managed key named %q exists with another key; revoke it first", name)
		}
	}
	for _, k := range keys {
		rec := k.Record
		rec.Type = contracts.TypeManagedKey
		if rec.CreatedAt.IsZero() {
			rec.CreatedAt = time.Now().UTC()
		}
		data, _ := json.Marshal(rec)
		if _, err := kv.Put(ctx, k.Hash, data); err != nil {
			return res, fmt.Errorf("storing key %q: %w", rec.Name, err)
		}
		if stored[k.Hash] {
			res.Replaced++
		} else {
			res.Created++
		}
	}
	for _, h := range revoke {
		if !stored[h] {
			continue
		}
		if err := kv.Delete(ctx, h); err != nil {
			return res, err
		}
		res.Revoked++
	}
	return res, nil
}

func validHex(h string) bool {
	raw, err := hex.DecodeString(h)
	return err == nil && len(raw) == sha256.Size && h == hex.EncodeToString(raw)
}
