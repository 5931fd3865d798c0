package validate

import (
	"slices"
	"testing"
)

// The compose cluster config is toolbus.conf (same users, same
// permissions) plus a cluster of the three compose nodes, each with its own
// JetStream server name. (deploy/cluster_test.go runs the three nodes.)
func TestClusterConf_ThreeNodesWithTheLeastPrivilegeUsers(t *testing.T) {
	single := loadNATSConf(t, repoPath("deploy", "nats", "toolbus.conf"))
	for _, name := range []string{"nats-1", "nats-2", "nats-3"} {
		opts := loadNATSNode(t, repoPath("deploy", "nats", "cluster.conf"), name)
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
