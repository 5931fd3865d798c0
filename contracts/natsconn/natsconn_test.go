package natsconn_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/contracts/natsconn"
)

// connect dials with Connect and closes the connection when the test ends.
func connect(t *testing.T, c config.NATS, log zerolog.Logger, extra ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := natsconn.Connect(c, natsconn.NameWorker, log, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// names returns the names of the connections the server holds.
func names(t *testing.T, ns *server.Server) []string {
	t.Helper()
	cz, err := ns.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cz.Conns {
		out = append(out, c.Name)
	}
	return out
}

func TestConnect_Names(t *testing.T) {
	n := contractstest.StartNATS(t)
	for _, tt := range []struct {
		name  string
		c     config.NATS
		extra []nats.Option
		want  string
	}{
		{"the binary's name when nats.name is unset", config.NATS{URL: n.URL}, nil, natsconn.NameWorker},
		{"nats.name when set", config.NATS{URL: n.URL, Name: "edge-7"}, nil, "edge-7"},
		{"a later option wins", config.NATS{URL: n.URL, Name: "edge-7"}, []nats.Option{nats.Name("edge-7-service")}, "edge-7-service"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc := connect(t, tt.c, zerolog.Nop(), tt.extra...)
			if !nc.IsConnected() {
				t.Fatalf("not connected: %v", nc.LastError())
			}
			contractstest.Eventually(t, "the server to show the connection "+tt.want, func() bool {
				for _, got := range names(t, n.Server) {
					if got == tt.want {
						return true
					}
				}
				return false
			})
			nc.Close()
		})
	}
}

// An unparsable URL is an error that names it without its password (the
// parser's own message holds the whole URL).
func TestConnect_ErrorHidesThePassword(t *testing.T) {
	for _, url := range []string{"nats://toolbus:pw-secret@nats-1:notaport", "nats://a:b@127.0.0.1:1,nats://toolbus:pw-secret@%zz"} {
		nc, err := natsconn.Connect(config.NATS{URL: url}, natsconn.NameIngress, zerolog.Nop())
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected", url)
		}
		if strings.Contains(err.Error(), "pw-secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// Both binaries connect with the same TLS settings: the CA to trust and a
// client certificate for a server that verifies clients.
func TestConnect_MutualTLS(t *testing.T) {
	p := contractstest.WritePKI(t, t.TempDir())
	url := contractstest.StartTLSNATS(t, p)
	good := config.NATS{URL: url, TLS: config.NATSTLS{CAFile: p.CA, CertFile: p.ClientCert, KeyFile: p.ClientKey}}
	nc := connect(t, good, zerolog.Nop())
	contractstest.Eventually(t, "a connection over mutual TLS", nc.IsConnected)
	state, err := nc.TLSConnectionState()
	if err != nil || !nc.TLSRequired() || state.Version < tls.VersionTLS12 || len(state.PeerCertificates) == 0 {
		t.Fatalf("TLS state %v %v", state.Version, err)
	}

	// connectOnce connects with the shared options but fails at once.
	connectOnce := func(c config.NATS) error {
		opts, err := natsconn.Options(c, natsconn.NameIngress, zerolog.Nop())
		if err != nil {
			return err
		}
		nc, err := nats.Connect(c.URL, append(opts, nats.RetryOnFailedConnect(false), nats.Timeout(2*time.Second))...)
		if err == nil {
			nc.Close()
		}
		return err
	}
	if connectOnce(config.NATS{URL: url, TLS: config.NATSTLS{CAFile: p.CA}}) == nil {
		t.Error("connected without a client certificate")
	}
	if connectOnce(config.NATS{URL: url, TLS: config.NATSTLS{CertFile: p.ClientCert, KeyFile: p.ClientKey}}) == nil {
		t.Error("trusted a server signed by an unknown CA")
	}
	if _, err := natsconn.Options(config.NATS{URL: url, TLS: config.NATSTLS{CAFile: p.ClientKey}}, natsconn.NameIngress, zerolog.Nop()); err == nil {
		t.Error("a CA file without a certificate was accepted")
	}
}

// A process may start before NATS, and survives its restart; each change
// is logged once, and closing the connection on purpose logs no disconnect.
func TestOptions_LogConnectionChanges(t *testing.T) {
	n := contractstest.StartNATS(t)
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	var logs contractstest.LogBuffer
	nc := connect(t, config.NATS{URL: n.URL}, logs.Logger("test"))
	if nc.IsConnected() {
		t.Fatal("connected to a stopped server")
	}
	count := func(msg string) int {
		c := 0
		for _, line := range logs.Lines(t) {
			if line["message"] == msg {
				c++
			}
		}
		return c
	}

	n.Restart(t)
	contractstest.Eventually(t, "NATS connected logged", func() bool { return count("NATS connected") == 1 })
	n.Restart(t)
	contractstest.Eventually(t, "NATS reconnected logged", func() bool { return count("NATS reconnected") == 1 })

	if err := natsconn.Drain(nc, contractstest.WaitTimeout); err != nil {
		t.Fatal(err)
	}
	if got := count("NATS disconnected"); got != 1 {
		t.Errorf("%d disconnect lines, want 1 (the restart; not the drain):\n%s", got, logs.String())
	}
	if strings.Contains(logs.String(), "NATS error") {
		t.Errorf("an error was logged:\n%s", logs.String())
	}
}

// Drain hands every pending message to its handler and flushes what was
// published before it closes the connection; the closed handler the
// connection had still runs.
func TestDrain_FinishesPendingWork(t *testing.T) {
	n := contractstest.StartNATS(t)
	nc := connect(t, config.NATS{URL: n.URL}, zerolog.Nop())
	other := n.Connect(t)

	var handled atomic.Int32
	release := make(chan struct{})
	sub, err := nc.Subscribe("work", func(*nats.Msg) {
		<-release
		handled.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := other.SubscribeSync("out")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := other.Publish("work", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	contractstest.Eventually(t, "the messages to be pending", func() bool {
		p, _, _ := sub.Pending()
		return p >= 4 // one is in the handler
	})
	if err := nc.Publish("out", []byte("last words")); err != nil {
		t.Fatal(err)
	}
	var previousRan atomic.Bool
	nc.SetClosedHandler(func(*nats.Conn) { previousRan.Store(true) })

	close(release)
	if err := natsconn.Drain(nc, contractstest.WaitTimeout); err != nil {
		t.Fatal(err)
	}
	if !nc.IsClosed() || handled.Load() != 5 || !previousRan.Load() {
		t.Fatalf("closed %v, handled %d of 5, previous closed handler ran %v", nc.IsClosed(), handled.Load(), previousRan.Load())
	}
	if m, err := out.NextMsgWithContext(contractstest.Ctx(t)); err != nil || string(m.Data) != "last words" {
		t.Fatalf("the last publish was lost: %v", err)
	}
}

// A handler that never returns cannot hold a shutdown: Drain closes the
// connection after its bound.
func TestDrain_IsBounded(t *testing.T) {
	n := contractstest.StartNATS(t)
	nc := connect(t, config.NATS{URL: n.URL}, zerolog.Nop())
	stuck, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	if _, err := nc.Subscribe("work", func(*nats.Msg) {
		close(stuck)
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("work", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck:
	case <-contractstest.Ctx(t).Done():
		t.Fatal("the handler never ran")
	}
	if err := natsconn.Drain(nc, 50*time.Millisecond); !errors.Is(err, natsconn.ErrDrainTimeout) {
		t.Fatalf("Drain = %v, want ErrDrainTimeout", err)
	}
	if !nc.IsClosed() {
		t.Fatal("the connection is open after the bound")
	}
	// A closed connection drains at once.
	if err := natsconn.Drain(nc, contractstest.WaitTimeout); err != nil {
		t.Fatalf("Drain of a closed connection = %v", err)
	}
}

func TestRedactURL_EveryPassword(t *testing.T) {
	got := natsconn.RedactURL("nats://ingress:pw-one@nats-1:4222,nats://ingress:pw-two@nats-2:4222,nats://nats-3:4222")
	if strings.Contains(got, "pw-one") || strings.Contains(got, "pw-two") || !strings.Contains(got, "nats-3:4222") {
		t.Fatalf("RedactURL = %q", got)
	}
	if got := natsconn.RedactURL("nats://u:p%zz@host"); strings.Contains(got, "p%zz") {
		t.Fatalf("an unparsable URL kept its password: %q", got)
	}
}
