package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// system is toolbus in production shape: a nats-server process, an ingress
// process, worker processes, and the upstreams they call.
type system struct {
	dir     string
	bins    map[string]string
	nats    *proc
	natsURL string
	fast    *proc // echo upstream, answers at once
	fastURL string
	slow    *proc // echo upstream with a 50 ms delay
	slowURL string
	ingress *proc
	url     string
	workers []*proc
	// metricsURL is the first worker's Prometheus endpoint.
	metricsURL string
	// extraEnv is added to the environment of the ingress and workers
	// started from now on (see restart).
	extraEnv []string
	// starts numbers the processes started, for their log files' names.
	starts  int
	pub     string
	priv    string
	cfgPath string
	// profileDir, if set, receives CPU and allocation profiles of each
	// measured run (see profile.go).
	profileDir string
	natsProf   int // nats-server's prof_port when profiling
}

const benchKey = "sk-bench"

// newSystem starts toolbus in dir, from the binaries in binDir (-bin) or,
// when binDir is empty, from binaries it builds.
func newSystem(ctx context.Context, dir, binDir string, slowConcurrency int, profileDir string) (*system, error) {
	s := &system{dir: dir, profileDir: profileDir}
	var err error
	if binDir != "" {
		s.bins, err = prebuilt(binDir)
	} else {
		s.bins, err = build(ctx, dir, profileDir != "", false)
	}
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	natsCfg := filepath.Join(dir, "nats.conf")
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: 8MB\njetstream {\n  store_dir: %q\n}\n", port, filepath.Join(dir, "js"))
	if profileDir != "" {
		if s.natsProf, err = freePort(); err != nil {
			return nil, err
		}
		conf += fmt.Sprintf("prof_port: %d\n", s.natsProf)
	}
	if err := os.WriteFile(natsCfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if s.nats, err = start(dir, "nats-server", s.bins["nats-server"], nil, "-c", natsCfg); err != nil {
		return nil, err
	}
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
		return nil, err
	}

	if s.fast, s.fastURL, err = s.upstream("fast", "0s"); err != nil {
		return nil, err
	}
	if s.slow, s.slowURL, err = s.upstream("slow", "50ms"); err != nil {
		return nil, err
	}
	out, err := exec.Command(s.bins["worker"], "keygen").Output()
	if err != nil {
		return nil, fmt.Errorf("keygen: %w", err)
	}
	for _, f := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(f, "tbpk1."):
			s.pub = f
		case strings.HasPrefix(f, "tbsk1."):
			s.priv = f
		}
	}
	cfg := fmt.Sprintf(`general_settings:
  master_key: %s
mcp_servers:
  fast:
    url: %s
    max_concurrency: 512
  slow:
    url: %s
    max_concurrency: %d
ingress:
  max_body_bytes: 8388608
  key_limits: # one key is the whole load here: no fair share to keep
    max_requests: -1
    max_streams: -1
worker:
  max_concurrency: 1024
jobs:
  max_queued_per_key: 1000000
  max_running_per_key: -1
`, benchKey, s.fastURL, s.slowURL, slowConcurrency)
	s.cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := s.addWorker(); err != nil {
		return nil, err
	}
	if err := s.startIngress(); err != nil {
		return nil, err
	}
	return s, s.waitWorkers(1)
}

// startIngress starts the ingress process, with s.extraEnv.
func (s *system) startIngress() error {
	env, err := s.pprofEnv(append([]string{"TOOLBUS_NATS_URL=" + s.natsURL, "TOOLBUS_SEAL_PUBLIC_KEYS=" + s.pub, "TOOLBUS_LISTEN=127.0.0.1:0"}, s.extraEnv...))
	if err != nil {
		return err
	}
	s.ingress, err = start(s.dir, fmt.Sprintf("ingress-%d", s.starts), s.bins["ingress"], env, "--config", s.cfgPath)
	if err != nil {
		return err
	}
	s.starts++
	s.url, err = s.ingress.waitURL("127.0.0.1", 30*time.Second, "ingress listening")
	return err
}

// restart stops the ingress and every worker and starts the ingress and
// one worker again, with env added to their environment.
func (s *system) restart(env []string) error {
	s.ingress.stop()
	s.keepWorkers(0)
	s.extraEnv = env
	if err := s.addWorker(); err != nil {
		return err
	}
	if err := s.startIngress(); err != nil {
		return err
	}
	return s.waitWorkers(1)
}

func (s *system) upstream(name, delay string) (*proc, string, error) {
	p, err := start(s.dir, "upstream-"+name, s.bins["worker"], nil, "demo-server", "--transport", "http", "--listen", "127.0.0.1:0", "--delay", delay)
	if err != nil {
		return nil, "", err
	}
	url, err := p.waitURL("/mcp", 10*time.Second)
	return p, url, err
}

// addWorker starts one more worker process.
func (s *system) addWorker() error {
	env, err := s.pprofEnv(append([]string{"TOOLBUS_NATS_URL=" + s.natsURL, "TOOLBUS_SEAL_PRIVATE_KEYS=" + s.priv}, s.extraEnv...))
	if err != nil {
		return err
	}
	if len(s.workers) == 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		env = append(env, fmt.Sprintf("TOOLBUS_METRICS_LISTEN=127.0.0.1:%d", port))
		s.metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	}
	w, err := start(s.dir, fmt.Sprintf("worker-%d", s.starts), s.bins["worker"], env, "--config", s.cfgPath)
	if err != nil {
		return err
	}
	s.starts++
	s.workers = append(s.workers, w)
	return nil
}

// waitWorkers waits until /readyz counts n workers.
func (s *system) waitWorkers(n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			var body struct{ Workers int }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if body.Workers >= n {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var logs []string
	for _, w := range s.workers {
		logs = append(logs, w.name+":\n"+w.output())
	}
	return fmt.Errorf("%d workers never became ready; their output:\n%s", n, strings.Join(logs, "\n"))
}

// stopWorkers stops all but the first n workers.
func (s *system) keepWorkers(n int) {
	for len(s.workers) > n {
		last := s.workers[len(s.workers)-1]
		last.stop()
		s.workers = s.workers[:len(s.workers)-1]
	}
}

func (s *system) close() {
	procs := []*proc{s.ingress}
	procs = append(procs, s.workers...)
	procs = append(procs, s.fast, s.slow, s.nats)
	for _, p := range procs {
		if p != nil {
			p.stop()
		}
	}
}

// gateway returns the processes whose CPU is the gateway's cost.
func (s *system) gateway() []*proc {
	return append([]*proc{s.ingress, s.nats}, s.workers...)
}

// pprofPortEnv names the port a profiling build serves net/http/pprof on.
const pprofPortEnv = "TOOLBUS_PPROF_PORT"

// pprofEnv adds a free pprof port to env when profiling.
func (s *system) pprofEnv(env []string) ([]string, error) {
	if s.profileDir == "" {
		return env, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return append(env, fmt.Sprintf("%s=%d", pprofPortEnv, port)), nil
}
