package deploy

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
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

// The compose cluster config is toolbus.conf (same users, same
// permissions) plus a cluster of the three compose nodes, each with its own
// JetStream server name.
func TestClusterConf_ThreeNodesWithTheLeastPrivilegeUsers(t *testing.T) {
	loadClusterNode(t, "nats-1") // sets the passwords' variables
	single, err := server.ProcessConfigFile("nats/toolbus.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range clusterNodes {
		opts := loadClusterNode(t, name)
		if opts.ServerName != name {
			t.Errorf("%s: server_name %q", name, opts.ServerName)
		}
		if !opts.JetStream || opts.StoreDir != "/data" {
			t.Errorf("%s: JetStream %v in %q, want on in /data (the compose volume)", name, opts.JetStream, opts.StoreDir)
		}
		if opts.Port != 4222 || opts.HTTPPort != 8222 || opts.Cluster.Port != 6222 || opts.Cluster.Name != "toolbus" {
			t.Errorf("%s: ports client %d monitor %d cluster %d (%q), want 4222, 8222, 6222 (toolbus)",
				name, opts.Port, opts.HTTPPort, opts.Cluster.Port, opts.Cluster.Name)
		}
		var routes []string
		for _, r := range opts.Routes {
			routes = append(routes, r.Host)
		}
		if want := []string{"nats-1:6222", "nats-2:6222", "nats-3:6222"}; !slices.Equal(routes, want) {
			t.Errorf("%s: routes %v, want %v", name, routes, want)
		}
		if got, want := usersPermissions(opts), usersPermissions(single); got != want {
			t.Errorf("%s: users and permissions differ from toolbus.conf:\n got %s\nwant %s", name, got, want)
		}
	}
}

// usersPermissions renders each user's account and permissions.
func usersPermissions(o *server.Options) string {
	var out []string
	for _, u := range o.Users {
		acc := ""
		if u.Account != nil {
			acc = u.Account.Name
		}
		out = append(out, fmt.Sprintf("%s@%s:%+v/%+v/%+v", u.Username, acc, *u.Permissions.Publish, *u.Permissions.Subscribe, u.Permissions.Response))
	}
	slices.Sort(out)
	return fmt.Sprint(out)
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
