// Package clustertest runs NATS for the process-level scale tests: one
// nats-server, or a cluster of them routed to each other, in this process,
// on 127.0.0.1 and random ports, each with JetStream and a store directory
// of its own. Any node can be stopped and started again on the same ports
// and store, so that clients (the ingress and worker binaries, given every
// node's URL) reconnect by themselves.
package clustertest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts/contractstest"
)

// Timeout bounds every wait of this package.
const Timeout = 30 * time.Second

// Cluster is a set of nats-servers (one, or several routed to each other).
// Its methods must be called from one goroutine (the test's).
type Cluster struct {
	t     testing.TB
	name  string
	nodes []*node
}

type node struct {
	name        string
	storeDir    string
	port        int // client port, fixed after the first start
	clusterPort int // route port (0: no cluster)
	srv         *server.Server
}

// Start runs n nats-servers with JetStream (n = 1: a single server, no
// cluster) until the test ends, and waits until JetStream answers.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, name: "toolbus-test"}
	for i := range n {
		nd := &node{name: fmt.Sprintf("n%d", i), storeDir: t.TempDir(), port: server.RANDOM_PORT}
		if n > 1 {
			// A clustered JetStream server needs its routes when it starts,
			// so every route port is chosen before the first start.
			nd.clusterPort = freePort(t)
		}
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.stop()
		}
	})
	for i := range c.nodes {
		c.start(i)
	}
	c.WaitJetStream()
	return c
}

// URL is node i's client URL.
func (c *Cluster) URL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].port)
}

// URLs is every node's client URL, comma-separated (what TOOLBUS_NATS_URL
// takes).
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// Server is node i's server, nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server { return c.nodes[i].srv }

func (c *Cluster) options(i int) *server.Options {
	nd := c.nodes[i]
	o := &server.Options{
		ServerName: nd.name,
		Host:       "127.0.0.1",
		Port:       nd.port,
		JetStream:  true,
		StoreDir:   nd.storeDir,
		NoSigs:     true,
		NoLog:      true,
	}
	if len(c.nodes) > 1 {
		o.Cluster = server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: nd.clusterPort}
		for j, other := range c.nodes {
			if j != i {
				o.Routes = append(o.Routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", other.clusterPort)})
			}
		}
	}
	return o
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	srv, err := server.NewServer(c.options(i))
	if err != nil {
		c.t.Fatalf("clustertest: node %s: %v", nd.name, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(Timeout) {
		srv.Shutdown()
		c.t.Fatalf("clustertest: node %s not ready after %s", nd.name, Timeout)
	}
	nd.srv = srv
	nd.port = srv.Addr().(*net.TCPAddr).Port
}

// freePort returns a loopback TCP port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Stop shuts node i down; its clients reconnect to the other nodes.
func (c *Cluster) Stop(i int) { c.nodes[i].stop() }

func (nd *node) stop() {
	if nd.srv == nil {
		return
	}
	nd.srv.Shutdown()
	nd.srv.WaitForShutdown()
	nd.srv = nil
}

// Restart starts the stopped node i again on its ports and store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.nodes[i].srv != nil {
		c.t.Fatalf("clustertest: node %s is running", c.nodes[i].name)
	}
	c.start(i)
}

// NodeOf returns the running node a client connection named name is
// connected to, or -1.
func (c *Cluster) NodeOf(name string) int {
	for i, nd := range c.nodes {
		if nd.srv == nil {
			continue
		}
		cz, err := nd.srv.Connz(&server.ConnzOptions{})
		if err != nil {
			continue
		}
		for _, ci := range cz.Conns {
			if ci.Name == name {
				return i
			}
		}
	}
	return -1
}

// Connect returns a connection to the running nodes, closed when the test
// ends; it reconnects forever.
func (c *Cluster) Connect(opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	var urls []string
	for i, nd := range c.nodes {
		if nd.srv != nil {
			urls = append(urls, c.URL(i))
		}
	}
	all := append([]nats.Option{
		nats.Name("clustertest"), nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond), nats.Timeout(5 * time.Second),
	}, opts...)
	nc, err := nats.Connect(strings.Join(urls, ","), all...)
	if err != nil {
		c.t.Fatalf("clustertest: connect: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// WaitJetStream waits until JetStream answers requests (in a cluster: has a
// meta leader).
func (c *Cluster) WaitJetStream() {
	c.t.Helper()
	nc := c.Connect()
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	contractstest.Eventually(c.t, "clustertest: JetStream to answer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
}
