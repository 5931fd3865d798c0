package auth

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// startBus starts a NATS server with JetStream and returns a connection to
// it and its JetStream.
func startBus(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := contractstest.StartNATS(t).Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// goWatch runs each watch until the test ends, and returns the test's
// context (ended before the watches are waited for).
func goWatch(t *testing.T, watches ...func(context.Context)) context.Context {
	ctx, cancel := context.WithCancel(contractstest.Ctx(t))
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, watch := range watches {
		wg.Go(func() { watch(ctx) })
	}
	return ctx
}

// staticKeys is a key set with the configured key "static".
func staticKeys(t *testing.T) *Keys {
	t.Helper()
	k, err := New([]config.Key{{Name: "static", KeySHA256: config.HashKey("sk-static")}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// knows reports whether k accepts key.
func knows(k *Keys, key string) bool {
	_, err := k.Authenticate(http.Header{"X-Litellm-Key": {key}})
	return err == nil
}

// Two ingress replicas pick up a created key and drop a revoked one without
// a restart.
func TestManagedKeys_CreateAndRevokeReachEveryReplica(t *testing.T) {
	_, js := startBus(t)
	replicas := []*Keys{staticKeys(t), staticKeys(t)}
	ctx := goWatch(t,
		func(ctx context.Context) { replicas[0].Watch(ctx, js, zerolog.Nop()) },
		func(ctx context.Context) { replicas[1].Watch(ctx, js, zerolog.Nop()) })
	accepts := func(k *Keys, key string) bool {
		p, err := k.Authenticate(http.Header{"X-Litellm-Key": {key}})
		return err == nil && p.Name == "team-c" && p.AllowsServer("jira") && !p.AllowsServer("github")
	}

	key, err := CreateKey(ctx, js, 1, "team-c", []string{"jira"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range replicas {
		contractstest.Eventually(t, "replica accepts the new key", func() bool { return accepts(k, key) })
		if _, err := k.Authenticate(http.Header{"X-Litellm-Key": {"sk-static"}}); err != nil {
			t.Fatalf("replica %d lost its configured key: %v", i, err)
		}
	}
	if _, err := CreateKey(ctx, js, 1, "team-c", nil, nil); err == nil {
		t.Fatal("a second key with the same name was created")
	}
	list, err := ListKeys(ctx, js)
	if err != nil || len(list) != 1 || list[0].Name != "team-c" {
		t.Fatalf("list %+v %v", list, err)
	}

	if err := RevokeKey(ctx, js, "team-c"); err != nil {
		t.Fatal(err)
	}
	for _, k := range replicas {
		contractstest.Eventually(t, "replica refuses the revoked key", func() bool { return !accepts(k, key) })
	}
	if err := RevokeKey(ctx, js, "team-c"); err == nil {
		t.Fatal("revoking a missing key succeeded")
	}
}

// A managed key cannot take the name of a configured one (names are owners).
func TestManagedKeys_ConfiguredNameWins(t *testing.T) {
	_, js := startBus(t)
	k := staticKeys(t)
	ctx := goWatch(t, func(ctx context.Context) { k.Watch(ctx, js, zerolog.Nop()) })
	impostor, err := CreateKey(ctx, js, 1, "static", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	marker, err := CreateKey(ctx, js, 1, "marker", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	contractstest.Eventually(t, "the watch caught up", func() bool { return knows(k, marker) })
	if knows(k, impostor) {
		t.Fatal("a managed key with a configured key's name was accepted")
	}
}

// An ingress without managed keys says so once, not at every look for the
// bucket (dev mode used to log "watching again" every two seconds); the
// bucket's creation is picked up and logged once.
func TestWatch_LogsChangesNotRetries(t *testing.T) {
	nc, js := startBus(t)
	// Every look for the bucket asks the server for its stream.
	looks, err := nc.SubscribeSync("$JS.API.STREAM.INFO.KV_" + contracts.KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var logs contractstest.LogBuffer
	k := staticKeys(t)
	ctx := goWatch(t, func(ctx context.Context) {
		k.watch(ctx, js, logs.Logger("ingress"), time.Millisecond, 4*time.Millisecond)
	})

	for range 10 {
		if _, err := looks.NextMsgWithContext(ctx); err != nil {
			t.Fatalf("the watch stopped looking for the bucket: %v", err)
		}
	}
	messages := func() []any {
		var out []any
		for _, line := range logs.Lines(t) {
			out = append(out, line["message"])
		}
		return out
	}
	if got := messages(); len(got) != 1 {
		t.Fatalf("10 looks for a missing bucket logged %d lines, want 1: %q", len(got), got)
	}

	key, err := CreateKey(ctx, js, 1, "team-c", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	contractstest.Eventually(t, "the new key to be accepted", func() bool { return knows(k, key) })
	if got := messages(); len(got) != 2 || got[1] != "managed keys: watching" {
		t.Fatalf("log after the bucket appeared: %q", got)
	}
}

// Limits of a key - configured (keys[].limits) or managed (its record) -
// come with its Principal, for ingress/limits.
func TestManagedKeys_LimitsReachThePrincipal(t *testing.T) {
	_, js := startBus(t)
	k, err := New([]config.Key{{Name: "static", KeySHA256: config.HashKey("sk-static"), Limits: config.KeyLimits{MaxRequests: 3}, IdentityLimits: config.KeyLimits{MaxStreams: 2}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := goWatch(t, func(ctx context.Context) { k.Watch(ctx, js, zerolog.Nop()) })
	limited := contracts.KeyLimits{MaxRequests: 7, MaxStreams: -1, RequestsPerSecond: 2.5, Burst: 5}
	perIdentity := contracts.KeyLimits{MaxRequests: 1, RequestsPerSecond: -1}
	key, err := CreateManagedKey(ctx, js, 1, contracts.ManagedKey{Name: "team-l", Limits: &limited, IdentityLimits: &perIdentity})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := CreateKey(ctx, js, 1, "team-p", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	principal := func(key string) *Principal {
		p, _ := k.Authenticate(http.Header{"X-Litellm-Key": {key}})
		return p
	}
	contractstest.Eventually(t, "the managed keys to be accepted", func() bool { return principal(key) != nil && principal(plain) != nil })
	if got := principal(key).Limits; got != limited {
		t.Errorf("managed key's limits %+v, want %+v", got, limited)
	}
	if got := principal(key).IdentityLimits; got != perIdentity {
		t.Errorf("managed key's identity limits %+v, want %+v", got, perIdentity)
	}
	if got := principal(plain); got.Limits != (contracts.KeyLimits{}) || got.IdentityLimits != (contracts.KeyLimits{}) {
		t.Errorf("a managed key without limits has %+v and %+v", got.Limits, got.IdentityLimits)
	}
	if got := principal("sk-static"); got.Limits.MaxRequests != 3 || got.IdentityLimits != (config.KeyLimits{MaxStreams: 2}) {
		t.Errorf("configured key's limits %+v, identity limits %+v", got.Limits, got.IdentityLimits)
	}
	list, err := ListKeys(ctx, js)
	if err != nil || len(list) != 2 {
		t.Fatalf("list %+v %v", list, err)
	}
	for _, m := range list {
		if m.Name == "team-l" && (m.Limits == nil || *m.Limits != limited || m.IdentityLimits == nil || *m.IdentityLimits != perIdentity) {
			t.Errorf("listed record %+v", m)
		}
	}
}
