package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process whose CPU and memory the benchmark reads from
// /proc. Its output (one log line per request for the ingress and workers)
// goes to a file, as it would to a log collector: the load generator shares
// the machine and must not spend its CPU copying the gateway's logs.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	// pprofPort serves net/http/pprof (profiling builds only, see -profile); 0: none.
	pprofPort int
	exited    chan struct{}
}

func start(dir, name, bin string, env []string, args ...string) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command(bin, args...), logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	for _, e := range env {
		if port, ok := strings.CutPrefix(e, pprofPortEnv+"="); ok {
			p.pprofPort, _ = strconv.Atoi(port)
		}
	}
	out, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// output is the start of the process's output (enough for error messages
// and the lines printed at start).
func (p *proc) output() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return string(b)
}

// stop sends SIGTERM and waits up to 15 s, then kills.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

var urlPattern = regexp.MustCompile(`http://127\.0\.0\.1:\d+[^\s"]*`)

// waitURL waits for a URL containing want on an output line that also
// contains onLine ("" for any line), and returns the first such URL.
func (p *proc) waitURL(want string, timeout time.Duration, onLine ...string) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.output(), "\n") {
			if len(onLine) > 0 && !strings.Contains(line, onLine[0]) {
				continue
			}
			for _, m := range urlPattern.FindAllString(line, -1) {
				if strings.Contains(m, want) {
					return m, nil
				}
			}
		}
		select {
		case <-p.exited:
			return "", fmt.Errorf("%s exited:\n%s", p.name, p.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("%s printed no URL in %s:\n%s", p.name, timeout, p.output())
}

// cpuSeconds is the process's user+system CPU time so far.
func (p *proc) cpuSeconds() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces) start after ")".
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// rssBytes is the process's resident set size now.
func (p *proc) rssBytes() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// benchBinaries are the programs the benchmark runs, by file name, with
// the package each is built from.
var benchBinaries = map[string]string{
	"ingress":     "./ingress",
	"worker":      "./worker",
	"nats-server": "github.com/nats-io/nats-server/v2",
}

// prebuilt returns the binaries in dir (see -bin), checking each is there.
func prebuilt(dir string) (map[string]string, error) {
	out := map[string]string{}
	for name := range benchBinaries {
		path := filepath.Join(dir, name)
		if info, err := os.Stat(path); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("-bin %s: no executable %s (make the directory with -build)", dir, name)
		}
		out[name] = path
	}
	return out, nil
}

// build compiles the binaries the benchmark runs into dir as the container
// image does (-tags nodev: the ingress without dev mode); profiling builds
// the ingress and worker with net/http/pprof too (see
// contracts/telemetry/pprof.go).
// withSelf also builds the benchmark itself there, so that dir runs on a
// machine without a Go toolchain (-build).
func build(ctx context.Context, dir string, profiling, withSelf bool) (map[string]string, error) {
	bins := maps.Clone(benchBinaries)
	if withSelf {
		bins["bench"] = "./scripts/bench"
	}
	out := map[string]string{}
	for name, pkg := range bins {
		path := filepath.Join(dir, name)
		args := []string{"build", "-o", path}
		switch {
		case name == "nats-server":
		case profiling:
			args = append(args, "-tags", "nodev,pprof")
		default:
			args = append(args, "-tags", "nodev")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		out[name] = path
	}
	return out, nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
}
