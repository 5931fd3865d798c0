package deploy

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	workerjobs "github.com/toolbus/toolbus/worker/jobs"
)

// clusterNodes are the node names docker-compose.yml gives nats/cluster.conf.
var clusterNodes = []string{"nats-1", "nats-2", "nats-3"}

// loadClusterNode parses nats/cluster.conf as docker-compose.yml runs it
// for node name.
func loadClusterNode(t *testing.T, name string) *server.Options {
	t.Helper()
	t.Setenv("TOOLBUS_INGRESS_NATS_PASSWORD", "ingress-pw")
	t.Setenv("TOOLBUS_WORKER_NATS_PASSWORD", "worker-pw")
	t.Setenv("TOOLBUS_ADMIN_NATS_PASSWORD", "admin-pw")
	t.Setenv("NATS_SERVER_NAME", name)
	opts, err := server.ProcessConfigFile("nats/cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// Three nodes of cluster.conf (on loopback ports) form a JetStream cluster
// in which a worker creates the jobs stream with 3 replicas and an ingress
// connected to another node queues a job in it.
func TestClusterConf_FormsAJetStreamCluster(t *testing.T) {
	// Routes as in the file, to the three nodes' (loopback) route ports.
	routes := make([]*url.URL, len(clusterNodes))
	for i := range routes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routes[i] = &url.URL{Scheme: "nats", Host: ln.Addr().String()}
		ln.Close()
	}
	var nodes []*server.Server
	for i, name := range clusterNodes {
		opts := loadClusterNode(t, name)
		opts.Cluster.Host = "127.0.0.1"
		opts.Cluster.Port = mustPort(t, routes[i])
		opts.Routes = routes
		nodes = append(nodes, startNode(t, opts))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := &config.File{Jobs: config.Jobs{Replicas: 3}}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	workerJS := clusterJetStream(t, nodes[2], "worker", "worker-pw")
	var infra *workerjobs.Infra
	for { // until the cluster has elected its JetStream meta leader
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		var err error
		infra, err = workerjobs.Setup(attempt, workerJS, cfg.Jobs)
		cancelAttempt()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("jobs stream with 3 replicas: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	info, err := infra.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Name != "toolbus" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream %s: replicas %d, cluster %+v; want 3 replicas in cluster toolbus", contracts.JobsStream, info.Config.Replicas, info.Cluster)
	}

	ingressJS := clusterJetStream(t, nodes[0], "ingress", "ingress-pw")
	ack, err := ingressJS.Publish(ctx, contracts.JobSubject("demo", "0011223344556677"), []byte("job"))
	if err != nil {
		t.Fatalf("ingress queues a job through another node: %v", err)
	}
	if ack.Stream != contracts.JobsStream {
		t.Fatalf("job stored in %q, want %s", ack.Stream, contracts.JobsStream)
	}
}

func mustPort(t *testing.T, u *url.URL) int {
	t.Helper()
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func clusterJetStream(t *testing.T, ns *server.Server, user, password string) jetstream.JetStream {
	t.Helper()
	u, err := url.Parse(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	nc, err := nats.Connect(u.String(), nats.Name("toolbus-"+user))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
