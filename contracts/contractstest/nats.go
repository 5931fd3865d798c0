package contractstest

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ReadyTimeout bounds how long StartNATS and Restart wait for the server.
const ReadyTimeout = 10 * time.Second

// Option adjusts the server options before the server is built. It is applied
// again on every Restart.
type Option func(*server.Options)

// WithMaxPayload sets the server's maximum message payload in bytes.
func WithMaxPayload(n int32) Option {
	return func(o *server.Options) { o.MaxPayload = n }
}

// NATS is an embedded nats-server with JetStream, started by StartNATS.
// Its methods must not be called concurrently with Restart.
type NATS struct {
	// Server is the running server; Restart replaces it.
	Server *server.Server
	// URL is the client URL, nats://127.0.0.1:PORT; it survives Restart.
	URL string

	storeDir string
	port     int
	opts     []Option

	mu    sync.Mutex
	conns []*nats.Conn // from Connect, for Restart to wait on
}

// StartNATS starts a nats-server with JetStream on 127.0.0.1 and a random
// port, storing in t.TempDir(), without signal handlers or logs. It is shut
// down when the test ends.
func StartNATS(t testing.TB, opts ...Option) *NATS {
	t.Helper()
	n := &NATS{
		storeDir: t.TempDir(),
		port:     server.RANDOM_PORT,
		opts:     opts,
	}
	n.start(t)
	t.Cleanup(n.shutdown)
	return n
}

func (n *NATS) options() *server.Options {
	o := &server.Options{
		ServerName: "contractstest",
		Host:       "127.0.0.1",
		Port:       n.port,
		JetStream:  true,
		StoreDir:   n.storeDir,
		NoSigs:     true,
		NoLog:      true,
	}
	for _, opt := range n.opts {
		opt(o)
	}
	return o
}

func (n *NATS) start(t testing.TB) {
	t.Helper()
	ns, err := server.NewServer(n.options())
	if err != nil {
		t.Fatalf("contractstest: new nats-server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		t.Fatalf("contractstest: nats-server on port %d not ready after %s", n.port, ReadyTimeout)
	}
	addr, ok := ns.Addr().(*net.TCPAddr)
	if !ok {
		ns.Shutdown()
		ns.WaitForShutdown()
		t.Fatalf("contractstest: nats-server address %v is not TCP", ns.Addr())
	}
	n.Server = ns
	n.port = addr.Port
	n.URL = ns.ClientURL()
}

func (n *NATS) shutdown() {
	if n.Server == nil {
		return
	}
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// Restart shuts the server down and starts a new one on the same port and
// store directory, so JetStream streams, consumers and buckets persist.
//
// It returns once every open connection from Connect has reconnected.
// Without that wait, a request made right after Restart could be written to
// the old socket before the client noticed it was closed: NATS drops such a
// message, and the request would wait out its whole timeout. (Seen in the
// full suite on two cores, where the client's read loop lags.) Connections
// made some other way reconnect on their own time.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	conns := slices.Clone(n.conns)
	n.mu.Unlock()
	before := make([]uint64, len(conns))
	for i, nc := range conns {
		before[i] = nc.Stats().Reconnects
	}
	n.shutdown()
	n.start(t)
	deadline := time.Now().Add(ReadyTimeout)
	for i, nc := range conns {
		for !nc.IsClosed() && (nc.Stats().Reconnects == before[i] || !nc.IsConnected()) {
			if time.Now().After(deadline) {
				t.Fatalf("contractstest: a connection did not reconnect within %s of the restart", ReadyTimeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Connect returns a connection to the server, closed when the test ends. It
// reconnects forever every 25ms (so it survives Restart); opts are applied
// after these defaults.
func (n *NATS) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{
		nats.Name("contractstest"),
		nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(25 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := nats.Connect(n.URL, all...)
	if err != nil {
		t.Fatalf("contractstest: connect %s: %v", n.URL, err)
	}
	t.Cleanup(nc.Close)
	n.mu.Lock()
	n.conns = append(n.conns, nc)
	n.mu.Unlock()
	return nc
}
