package contractstest

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// FlushTimeout bounds Recording.Flush.
const FlushTimeout = 10 * time.Second

// Message is one recorded NATS message.
type Message struct {
	Subject string
	Reply   string
	Header  nats.Header
	Data    []byte
}

// Recording holds every message received on a subject since RecordAll. It is
// safe for concurrent use; accessors return copies.
type Recording struct {
	nc  *nats.Conn
	sub *nats.Subscription

	mu   sync.Mutex
	msgs []Message
}

// RecordAll subscribes nc to subject (wildcards allowed: "toolbus.>" or ">")
// and records every message's subject, reply, headers and data. The
// subscription is registered with the server before RecordAll returns, has
// no pending limits (no slow-consumer drops) and ends with the test.
func RecordAll(t testing.TB, nc *nats.Conn, subject string) *Recording {
	t.Helper()
	r := &Recording{nc: nc}
	sub, err := nc.Subscribe(subject, r.add)
	if err != nil {
		t.Fatalf("contractstest: subscribe %q: %v", subject, err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatalf("contractstest: pending limits: %v", err)
	}
	if err := nc.FlushTimeout(FlushTimeout); err != nil {
		t.Fatalf("contractstest: flush subscription %q: %v", subject, err)
	}
	r.sub = sub
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

func (r *Recording) add(m *nats.Msg) {
	rec := Message{
		Subject: m.Subject,
		Reply:   m.Reply,
		Header:  copyHeader(m.Header),
		Data:    bytes.Clone(m.Data),
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, rec)
	r.mu.Unlock()
}

func copyHeader(h nats.Header) nats.Header {
	if h == nil {
		return nil
	}
	out := make(nats.Header, len(h))
	for k, v := range h {
		out[k] = slices.Clone(v)
	}
	return out
}

// Flush waits until every message the server sent to the recording's
// connection before this call has been recorded: it round-trips a PING on
// the connection, then waits for the subscription's queue to drain. Messages
// published on another connection count only once that connection has been
// flushed too.
func (r *Recording) Flush(t testing.TB) {
	t.Helper()
	if err := r.nc.FlushTimeout(FlushTimeout); err != nil {
		t.Fatalf("contractstest: flush: %v", err)
	}
	// nats.go decrements Pending only after the message callback returns, so
	// zero pending means every delivered message has been recorded.
	deadline := time.Now().Add(FlushTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		msgs, _, err := r.sub.Pending()
		if err != nil {
			t.Fatalf("contractstest: pending: %v", err)
		}
		if msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("contractstest: %d messages still pending after %s", msgs, FlushTimeout)
		}
		<-tick.C
	}
}

// Count returns the number of recorded messages.
func (r *Recording) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Messages returns a copy of the recorded messages, in arrival order.
func (r *Recording) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Message, len(r.msgs))
	for i, m := range r.msgs {
		out[i] = Message{Subject: m.Subject, Reply: m.Reply, Header: copyHeader(m.Header), Data: bytes.Clone(m.Data)}
	}
	return out
}

// Bytes returns, per message, its subject, reply, header keys and values and
// data concatenated (separated by newlines and ": "), for searching.
func (r *Recording) Bytes() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]byte, len(r.msgs))
	for i, m := range r.msgs {
		var b bytes.Buffer
		b.WriteString(m.Subject)
		b.WriteByte('\n')
		b.WriteString(m.Reply)
		b.WriteByte('\n')
		for _, k := range sortedKeys(m.Header) {
			for _, v := range m.Header[k] {
				b.WriteString(k)
				b.WriteString(": ")
				b.WriteString(v)
				b.WriteByte('\n')
			}
		}
		b.WriteByte('\n')
		b.Write(m.Data)
		out[i] = b.Bytes()
	}
	return out
}

func sortedKeys(h nats.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Contains reports whether secret occurs as a raw substring of any recorded
// message's subject, reply, a header key or value, or data. Each field is
// searched on its own, so a match never spans two fields. An empty secret is
// always reported as contained, so a leak test that forgot to set its secret
// fails instead of passing.
func (r *Recording) Contains(secret []byte) bool {
	if len(secret) == 0 {
		return true
	}
	s := string(secret)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(m.Subject, s) || strings.Contains(m.Reply, s) || bytes.Contains(m.Data, secret) {
			return true
		}
		for k, vs := range m.Header {
			if strings.Contains(k, s) {
				return true
			}
			for _, v := range vs {
				if strings.Contains(v, s) {
					return true
				}
			}
		}
	}
	return false
}
