package validate

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	composeFile = "docker-compose.yml"
	testPubKey  = "test-public-key"
	testPrivKey = "test-private-key"
)

var natsNodes = []string{"nats-1", "nats-2", "nats-3"}

// loadCompose loads docker-compose.yml the way `docker compose` does:
// schema validation, interpolation from env (and nothing from the
// machine's environment), normalization and consistency checks.
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, composeFile)},
		cli.WithWorkingDirectory(abs),
		cli.WithEnv(list),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func mustLoadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	if env == nil {
		env = map[string]string{"TOOLBUS_SEAL_PUBLIC_KEYS": testPubKey, "TOOLBUS_SEAL_PRIVATE_KEYS": testPrivKey}
	}
	p, err := loadCompose(t, env)
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

func TestCompose_LoadsAsDockerComposeDoes(t *testing.T) {
	p := mustLoadCompose(t, nil)
	want := []string{"demo", "ingress", "nats-1", "nats-2", "nats-3", "worker"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services %v, want %v", got, want)
	}
}

// Without sealing keys compose refuses to start, naming the variable.
func TestCompose_RequiresTheSealingKeys(t *testing.T) {
	_, err := loadCompose(t, map[string]string{"TOOLBUS_SEAL_PRIVATE_KEYS": testPrivKey})
	if err == nil || !strings.Contains(err.Error(), "TOOLBUS_SEAL_PUBLIC_KEYS") {
		t.Fatalf("without TOOLBUS_SEAL_PUBLIC_KEYS: err = %v, want one naming it", err)
	}
	_, err = loadCompose(t, map[string]string{"TOOLBUS_SEAL_PUBLIC_KEYS": testPubKey})
	if err == nil || !strings.Contains(err.Error(), "TOOLBUS_SEAL_PRIVATE_KEYS") {
		t.Fatalf("without TOOLBUS_SEAL_PRIVATE_KEYS: err = %v, want one naming it", err)
	}
}

func TestCompose_EveryServiceHasAHealthcheck(t *testing.T) {
	p := mustLoadCompose(t, nil)
	for name, s := range p.Services {
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
			t.Errorf("%s: healthcheck %+v, want an exec-form (CMD) test", name, hc)
			continue
		}
		if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("%s: healthcheck without interval, timeout or retries", name)
		}
	}
}

// The toolbus images have no shell: their healthchecks run the binary's own
// healthcheck command against the port the process listens on.
func TestCompose_ToolbusHealthchecksProbeWhatTheProcessServes(t *testing.T) {
	p := mustLoadCompose(t, nil)
	cfg := decodeConfig(t, readFile(t, "deploy", "config.yaml"))
	_, ingressPort, _ := net.SplitHostPort(cfg.Ingress.Listen)
	worker := p.Services["worker"]
	metrics := worker.Environment["TOOLBUS_METRICS_LISTEN"]
	if metrics == nil {
		t.Fatal("worker: no TOOLBUS_METRICS_LISTEN: the healthcheck has no port to probe")
	}
	_, metricsPort, _ := net.SplitHostPort(*metrics)
	demo := p.Services["demo"]
	i := slices.Index(demo.Command, "--listen")
	if i < 0 || i+1 >= len(demo.Command) {
		t.Fatalf("demo: command %v without --listen", demo.Command)
	}
	_, demoPort, _ := net.SplitHostPort(demo.Command[i+1])

	for name, want := range map[string]string{
		"ingress": "http://127.0.0.1:" + ingressPort + "/readyz",
		"worker":  "http://127.0.0.1:" + metricsPort + "/healthz",
		"demo":    "http://127.0.0.1:" + demoPort + "/mcp",
	} {
		got := p.Services[name].HealthCheck.Test
		if !slices.Equal(got, []string{"CMD", "/toolbus", "healthcheck", want}) {
			t.Errorf("%s: healthcheck %v, want [CMD /toolbus healthcheck %s]", name, got, want)
		}
	}
	if demoURL := cfg.MCPServers["demo"].URL; demoURL != "http://demo:"+demoPort+"/mcp" {
		t.Errorf("config.yaml: demo server at %s, but the demo service listens on port %s", demoURL, demoPort)
	}
	ing := p.Services["ingress"]
	if len(ing.Ports) != 1 || ing.Ports[0].Target != uint32(atoi(t, ingressPort)) || ing.Ports[0].Published != ingressPort {
		t.Errorf("ingress: ports %+v, want %s published to the ingress's listen port", ing.Ports, ingressPort)
	}
}

// `docker compose up --scale worker=N` needs a service without a fixed
// container name, host name or host port.
func TestCompose_WorkersScale(t *testing.T) {
	p := mustLoadCompose(t, nil)
	w := p.Services["worker"]
	if w.ContainerName != "" || w.Hostname != "" || len(w.Ports) != 0 {
		t.Errorf("worker: container_name %q, hostname %q, ports %v: cannot scale", w.ContainerName, w.Hostname, w.Ports)
	}
	if w.Deploy != nil && w.Deploy.Replicas != nil && *w.Deploy.Replicas < 1 {
		t.Errorf("worker: %d replicas", *w.Deploy.Replicas)
	}
	// The worker stops stdio servers with their process group; an init as
	// PID 1 reaps the children they leave (the image has none).
	if w.Init == nil || !*w.Init {
		t.Error("worker: no init: true (stopped stdio servers' children would stay as zombies of PID 1)")
	}
}

// Three NATS nodes run deploy/nats/cluster.conf, each with its own name and
// JetStream volume; the variables they get are those the config reads.
func TestCompose_NATSCluster(t *testing.T) {
	p := mustLoadCompose(t, nil)
	confVars := natsConfVars(t)
	volumes := map[string]bool{}
	for _, name := range natsNodes {
		s := p.Services[name]
		if !slices.Equal(s.Command, []string{"--config", "/etc/nats/cluster.conf"}) {
			t.Errorf("%s: command %v", name, s.Command)
		}
		if v := s.Environment["NATS_SERVER_NAME"]; v == nil || *v != name {
			t.Errorf("%s: NATS_SERVER_NAME %v, want %s (JetStream needs unique names)", name, v, name)
		}
		var env []string
		for k := range s.Environment {
			env = append(env, k)
		}
		if !slices.Equal(sorted(env), confVars) {
			t.Errorf("%s: environment %v, want the variables the NATS config reads: %v", name, sorted(env), confVars)
		}
		var confDir, data bool
		for _, v := range s.Volumes {
			switch {
			case v.Type == types.VolumeTypeBind && v.Target == "/etc/nats" && v.ReadOnly &&
				filepath.Clean(v.Source) == mustAbs(t, repoPath("deploy", "nats")):
				confDir = true
			case v.Type == types.VolumeTypeVolume && v.Target == "/data":
				data = true
				if volumes[v.Source] {
					t.Errorf("%s: JetStream volume %s shared with another node", name, v.Source)
				}
				volumes[v.Source] = true
			}
		}
		if !confDir || !data {
			t.Errorf("%s: volumes %+v, want deploy/nats read-only at /etc/nats and a volume of its own at /data", name, s.Volumes)
		}
		if len(s.Ports) != 0 {
			t.Errorf("%s: publishes %v; NATS stays on the compose network", name, s.Ports)
		}
	}
	for _, dep := range []string{"ingress", "worker"} {
		for _, node := range natsNodes {
			if d, ok := p.Services[dep].DependsOn[node]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: does not wait for %s to be healthy", dep, node)
			}
		}
	}
}

// The ingress and the workers read only variables toolbus knows, reach all
// three NATS nodes, each as its own least-privilege user with the password
// the NATS nodes were given.
func TestCompose_ToolbusEnvironment(t *testing.T) {
	env := map[string]string{
		"TOOLBUS_SEAL_PUBLIC_KEYS": testPubKey, "TOOLBUS_SEAL_PRIVATE_KEYS": testPrivKey,
	}
	pwVars := natsPasswordVars(t)
	for user, v := range pwVars {
		env[v] = "custom-" + user // what an operator sets
	}
	p := mustLoadCompose(t, env)
	nodeEnv := p.Services["nats-1"].Environment
	for name, user := range map[string]string{"ingress": "ingress", "worker": "worker"} {
		s := p.Services[name]
		for k := range s.Environment {
			if !knownToolbusEnv(k) {
				t.Errorf("%s: environment %s is not one contracts/config reads", name, k)
			}
		}
		raw := s.Environment["TOOLBUS_NATS_URL"]
		if raw == nil {
			t.Fatalf("%s: no TOOLBUS_NATS_URL", name)
		}
		var hosts []string
		for _, part := range strings.Split(*raw, ",") {
			u, err := url.Parse(strings.TrimSpace(part))
			if err != nil {
				t.Fatalf("%s: TOOLBUS_NATS_URL: %v", name, err)
			}
			hosts = append(hosts, u.Host)
			pw, _ := u.User.Password()
			if u.Scheme != "nats" || u.User.Username() != user || pw != "custom-"+user || pw != *nodeEnv[pwVars[user]] {
				t.Errorf("%s: NATS URL %s, want user %s with the password the NATS nodes have", name, u.Redacted(), user)
			}
		}
		if !slices.Equal(hosts, []string{"nats-1:4222", "nats-2:4222", "nats-3:4222"}) {
			t.Errorf("%s: NATS hosts %v, want all three nodes", name, hosts)
		}
	}
	if v := p.Services["ingress"].Environment["TOOLBUS_SEAL_PUBLIC_KEYS"]; v == nil || *v != testPubKey {
		t.Errorf("ingress: TOOLBUS_SEAL_PUBLIC_KEYS %v", v)
	}
	if v := p.Services["worker"].Environment["TOOLBUS_SEAL_PRIVATE_KEYS"]; v == nil || *v != testPrivKey {
		t.Errorf("worker: TOOLBUS_SEAL_PRIVATE_KEYS %v", v)
	}
	if _, ok := p.Services["ingress"].Environment["TOOLBUS_SEAL_PRIVATE_KEYS"]; ok {
		t.Error("ingress: holds the private sealing key")
	}
	for _, name := range []string{"ingress", "worker"} {
		s := p.Services[name]
		if !slices.Equal(s.Command, []string{"--config", "/etc/toolbus/config.yaml"}) {
			t.Errorf("%s: command %v", name, s.Command)
		}
		var mounted bool
		for _, v := range s.Volumes {
			mounted = mounted || (v.Target == "/etc/toolbus/config.yaml" && v.ReadOnly &&
				filepath.Clean(v.Source) == mustAbs(t, repoPath("deploy", "config.yaml")))
		}
		if !mounted {
			t.Errorf("%s: deploy/config.yaml not mounted read-only at /etc/toolbus/config.yaml", name)
		}
	}
}

// The compose configuration is valid for the binaries and replicates the
// jobs state on the three nodes.
func TestCompose_ConfigFile(t *testing.T) {
	cfg := decodeConfig(t, readFile(t, "deploy", "config.yaml"))
	if cfg.Jobs.Replicas != len(natsNodes) {
		t.Errorf("config.yaml: jobs.replicas %d on a %d-node cluster", cfg.Jobs.Replicas, len(natsNodes))
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
