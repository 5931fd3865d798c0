package auth

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two ingress replicas pick up a created key and drop a revoked one without
// a restart.
func TestManagedKeys_CreateAndRevokeReachEveryReplica(t *testing.T) {
	ns := contractstest.StartNATS(t)
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var replicas []*Keys
	for range 2 {
		k, err := New([]config.Key{{Name: "static", KeySHA256: config.HashKey("sk-static")}}, "")
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, k)
		wg.Go(func() { k.Watch(ctx, js, zerolog.Nop()) })
	}
	accepts := func(k *Keys, key string) bool {
		p, err := k.Authenticate(http.Header{"X-Litellm-Key": {key}})
		return err == nil && p.Name == "team-c" && p.AllowsServer("jira") && !p.AllowsServer("github")
	}

	key, err := CreateKey(ctx, js, 1, "team-c", []string{"jira"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range replicas {
		eventually(t, "replica accepts the new key", func() bool { return accepts(k, key) })
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
		eventually(t, "replica refuses the revoked key", func() bool { return !accepts(k, key) })
	}
	if err := RevokeKey(ctx, js, "team-c"); err == nil {
		t.Fatal("revoking a missing key succeeded")
	}
}

// A managed key cannot take the name of a configured one (names are owners).
func TestManagedKeys_ConfiguredNameWins(t *testing.T) {
	ns := contractstest.StartNATS(t)
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	k, _ := New([]config.Key{{Name: "static", KeySHA256: config.HashKey("sk-static")}}, "")
	wg.Go(func() { k.Watch(ctx, js, zerolog.Nop()) })
	impostor, err := CreateKey(ctx, js, 1, "static", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	marker, err := CreateKey(ctx, js, 1, "marker", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch caught up", func() bool {
		_, err := k.Authenticate(http.Header{"X-Litellm-Key": {marker}})
		return err == nil
	})
	if _, err := k.Authenticate(http.Header{"X-Litellm-Key": {impostor}}); err == nil {
		t.Fatal("a managed key with a configured key's name was accepted")
	}
}
