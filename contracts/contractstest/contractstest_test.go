package contractstest_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts/contractstest"
)

func TestStartNATS(t *testing.T) {
	t.Parallel()
	ctx := contractstest.Ctx(t)

	n := contractstest.StartNATS(t, contractstest.WithMaxPayload(64*1024))
	if !strings.HasPrefix(n.URL, "nats://127.0.0.1:") {
		t.Errorf("URL = %q", n.URL)
	}
	nc := n.Connect(t)
	if got := nc.MaxPayload(); got != 64*1024 {
		t.Errorf("MaxPayload = %d, want the option's 65536", got)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "t.one", []byte("1")); err != nil {
		t.Fatalf("publish: %v", err)
	}

	t.Run("Restart keeps the URL and the JetStream store", func(t *testing.T) {
		url := n.URL
		old := n.Server
		n.Restart(t)
		if n.URL != url || n.Server == old {
			t.Fatalf("after Restart: URL %q (was %q), server replaced %v", n.URL, url, n.Server != old)
		}
		// Restart waited for nc to reconnect, so this request cannot be
		// written to the closed socket and lost.
		if !nc.IsConnected() {
			t.Fatal("Restart returned before the connection reconnected")
		}
		s, err := js.Stream(ctx, "T")
		if err != nil {
			t.Fatalf("stream after restart: %v", err)
		}
		if msgs := s.CachedInfo().State.Msgs; msgs != 1 {
			t.Errorf("stream has %d messages after restart, want 1", msgs)
		}
	})
}

func TestRecordAll(t *testing.T) {
	t.Parallel()
	n := contractstest.StartNATS(t)
	nc := n.Connect(t)
	all := contractstest.RecordAll(t, nc, ">")
	bus := contractstest.RecordAll(t, nc, "toolbus.>")

	msg := nats.NewMsg("toolbus.call.subj-secret")
	msg.Reply = "reply-secret"
	msg.Header.Set("Hdr-Key-Secret", "hdr-value-secret")
	msg.Data = []byte("data-secret")
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("other.subject", []byte("elsewhere")); err != nil {
		t.Fatal(err)
	}
	// A message from another connection counts once that one is flushed.
	pub := n.Connect(t)
	if err := pub.Publish("toolbus.from.pub", []byte("pub")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	all.Flush(t)
	bus.Flush(t)

	if got := all.Count(); got != 3 {
		t.Errorf("> recorded %d messages, want 3", got)
	}
	if got := bus.Count(); got != 2 {
		t.Errorf("toolbus.> recorded %d messages, want 2", got)
	}
	for _, secret := range []string{"subj-secret", "reply-secret", "Hdr-Key-Secret", "hdr-value-secret", "data-secret"} {
		if !bus.Contains([]byte(secret)) {
			t.Errorf("Contains(%q) = false", secret)
		}
	}
	for _, absent := range []string{"elsewhere", "never-sent", "secret\ndata"} {
		if bus.Contains([]byte(absent)) {
			t.Errorf("Contains(%q) = true", absent)
		}
	}
	if !bus.Contains(nil) {
		t.Error("Contains(empty) = false; an empty secret must fail leak tests")
	}

	// Two connections published: their messages may arrive in either order.
	msgs := bus.Messages()
	i := slices.IndexFunc(msgs, func(m contractstest.Message) bool { return m.Subject == "toolbus.call.subj-secret" })
	if len(msgs) != 2 || i < 0 || msgs[i].Header.Get("Hdr-Key-Secret") != "hdr-value-secret" {
		t.Fatalf("Messages = %+v", msgs)
	}
	b := bus.Bytes()
	if len(b) != 2 || !strings.Contains(string(b[i]), "data-secret") || !strings.Contains(string(b[i]), "Hdr-Key-Secret: hdr-value-secret") {
		t.Errorf("Bytes()[%d] = %q", i, b[i])
	}
}
