package mcpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// The official MCP conformance suite (npm @modelcontextprotocol/conformance)
// against an upstream directly, and against /<server>/mcp of the gateway in
// front of that upstream: every scenario that passes directly must pass
// through the gateway, except those listed in gatewayCannot. The upstream is
// mcp-go's own conformance server (examples/conformance of the mcp-go
// version in go.mod), which implements every tool, resource and prompt the
// suite expects. The suite sends no custom headers: a reverse proxy in front
// of the gateway adds the gateway key (and keeps Host and Origin, so that the
// DNS-rebinding scenario reaches the gateway's own check).
//
// scripts/conformance.sh installs what it needs (Node 22, the suite, the
// inspector CLI) into a cache directory, builds the upstream, and runs this
// test with TOOLBUS_CONFORMANCE_DIR set; without it the test is skipped.

// conformanceDirEnv names the directory the script prepared.
const conformanceDirEnv = "TOOLBUS_CONFORMANCE_DIR"

// gatewayCannot are the scenarios that cannot pass through the gateway, and
// why. None is left: sampling and elicitation cross NATS as client
// requests and answers, resource subscriptions as subscriptions held by a
// worker with their updates on the caller's notification subject.
var gatewayCannot = map[string]string{}

// gatewayOpen are scenarios that pass directly but not yet through the
// gateway, for a reason not yet fixed. They are reported, not failed, so
// that the suite guards every other scenario; each is an open item.
var gatewayOpen = map[string]string{
	"tools-call-with-progress": "open: through the gateway the client gets all 3 progress notifications " +
		"less often than directly. One cause is known: the suite's client declares sampling, so the worker's " +
		"upstream client keeps mcp-go's standalone stream open (mcp-go servers send sampling only there), and " +
		"mcp-go's server hands a notification to whichever of the session's streams reads it first; one that " +
		"goes to the standalone stream can arrive after the call's result, when its call no longer listens",
}

// flakyUpstream are scenarios the upstream itself passes only sometimes
// (mcp-go's own conformance baseline lists them): the tool sends its last
// notification just before its handler returns, and mcp-go's streamable
// HTTP server sometimes drops it (its forwarder goroutine loses the race
// with the final drain); direct runs pass about one time in four. They are
// run again before counting as failed.
var flakyUpstream = []string{"tools-call-with-logging", "tools-call-with-progress"}

func TestConformance(t *testing.T) {
	dir := os.Getenv(conformanceDirEnv)
	if dir == "" {
		t.Skipf("set %s (scripts/conformance.sh does) to run the MCP conformance suite", conformanceDirEnv)
	}
	node := filepath.Join(dir, "node_modules", ".bin", "node")
	suite := filepath.Join(dir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	inspector := filepath.Join(dir, "node_modules", "@modelcontextprotocol", "inspector-cli", "build", "index.js")
	upstreamBin := filepath.Join(dir, "mcp-conformance-server")

	upstreamURL := startConformanceUpstream(t, upstreamBin)
	g := startGateway(t, func(f *config.File) {
		f.MCPServers["conformance"] = &config.Server{URL: upstreamURL, Timeout: config.Duration(30 * time.Second)}
	})
	proxy := keyProxy(t, g.URL, "/conformance", masterKey)

	results := filepath.Join(dir, "results")
	_ = os.RemoveAll(results)
	direct := runSuite(t, node, suite, upstreamURL, filepath.Join(results, "direct"), "")
	through := runSuite(t, node, suite, proxy+"/mcp", filepath.Join(results, "gateway"), "")
	// Scenarios the upstream passes only sometimes count as passed on a
	// side if they pass in any of several tries: up to 8 directly, and - if
	// they passed directly - up to 16 through the gateway (a false
	// regression at the upstream's ~25% pass rate: about 1%).
	tries := map[string][2]int{}
	for _, sc := range flakyUpstream {
		n := [2]int{1, 1}
		for ; n[0] < 8 && !direct[sc].passed; n[0]++ {
			retry(t, node, suite, upstreamURL, filepath.Join(results, fmt.Sprintf("direct-retry-%s-%d", sc, n[0])), sc, direct)
		}
		for ; n[1] < 16 && direct[sc].passed && !through[sc].passed; n[1]++ {
			retry(t, node, suite, proxy+"/mcp", filepath.Join(results, fmt.Sprintf("gateway-retry-%s-%d", sc, n[1])), sc, through)
		}
		tries[sc] = n
	}

	var summary strings.Builder
	fmt.Fprintf(&summary, "MCP conformance suite (@modelcontextprotocol/conformance), active server scenarios\n")
	fmt.Fprintf(&summary, "  direct to the upstream:      %s\n", score(direct))
	fmt.Fprintf(&summary, "  through the gateway (/<server>/mcp): %s\n", score(through))
	var scenarios []string
	for sc := range direct {
		scenarios = append(scenarios, sc)
	}
	slices.Sort(scenarios)
	var regressions []string
	for _, sc := range scenarios {
		d, gw := direct[sc], through[sc]
		mark := func(r scenarioResult) string {
			if r.passed {
				return "pass"
			}
			return "FAIL"
		}
		line := fmt.Sprintf("  %-32s direct %s  gateway %s", sc, mark(d), mark(gw))
		if n, ok := tries[sc]; ok {
			line += fmt.Sprintf("  (flaky upstream: tries %d direct, %d gateway)", n[0], n[1])
		}
		if why, ok := gatewayCannot[sc]; ok && !gw.passed {
			line += "  (cannot: " + why + ")"
		} else if why, ok := gatewayOpen[sc]; ok && !gw.passed {
			line += "  (" + why + ")"
		} else if d.passed && !gw.passed {
			line += "  REGRESSION: " + gw.detail
			regressions = append(regressions, sc)
		}
		summary.WriteString(line + "\n")
	}
	t.Log("\n" + summary.String())
	_ = os.WriteFile(filepath.Join(dir, "scores.txt"), []byte(summary.String()), 0o644)
	if len(regressions) > 0 {
		t.Errorf("scenarios that pass directly fail through the gateway: %v (results in %s)", regressions, results)
	}

	t.Run("inspector CLI through /mcp", func(t *testing.T) {
		if _, err := os.Stat(inspector); err != nil {
			t.Skipf("inspector CLI not installed: %v", err)
		}
		h := []string{"--header", "x-litellm-key: " + masterKey, "--header", "Authorization: " + userToken}
		list := runNode(t, node, append([]string{inspector, g.URL + "/mcp", "--transport", "http", "--method", "tools/list"}, h...)...)
		if !strings.Contains(list, `"conformance-test_simple_text"`) || !strings.Contains(list, `"demo-whoami"`) {
			t.Fatalf("tools/list through the inspector CLI lacks the prefixed tools:\n%s", clipOutput(list))
		}
		call := runNode(t, node, append([]string{inspector, g.URL + "/mcp", "--transport", "http", "--method", "tools/call", "--tool-name", "demo-whoami"}, h...)...)
		if !strings.Contains(call, userToken) {
			t.Fatalf("tools/call demo-whoami through the inspector CLI:\n%s", clipOutput(call))
		}
		t.Logf("inspector CLI: tools/list and tools/call through /mcp with --header flags work")
	})
}

// retry runs scenario sc once more against url and records a pass in into.
func retry(t *testing.T, node, suite, url, out, sc string, into map[string]scenarioResult) {
	t.Helper()
	if r, ok := runSuite(t, node, suite, url, out, sc)[sc]; ok && r.passed {
		into[sc] = r
	}
}

// scenarioResult is one scenario's outcome in one run.
type scenarioResult struct {
	passed         bool
	checks, failed int
	detail         string
}

func score(r map[string]scenarioResult) string {
	passed, checks, failedChecks := 0, 0, 0
	for _, s := range r {
		if s.passed {
			passed++
		}
		checks += s.checks
		failedChecks += s.failed
	}
	return fmt.Sprintf("%d/%d scenarios passed (%d/%d checks)", passed, len(r), checks-failedChecks, checks)
}

// startConformanceUpstream runs mcp-go's conformance server on a free
// loopback port and returns its /mcp URL.
func startConformanceUpstream(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "CONFORMANCE_ADDR="+addr)
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("upstream %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	contractstest.Eventually(t, "the conformance upstream to start", func() bool {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return "http://" + addr + "/mcp"
}

// keyProxy is a reverse proxy to gateway+prefix that adds the gateway key,
// and passes Host and Origin through unchanged.
func keyProxy(t *testing.T, gateway, prefix, key string) string {
	t.Helper()
	target, err := url.Parse(gateway)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = prefix + r.In.URL.Path
			r.Out.URL.RawPath = ""
			r.Out.Host = r.In.Host
			r.Out.Header.Set("x-litellm-key", key)
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// runSuite runs the conformance suite's server scenarios (one, or all
// active ones) against url and returns each scenario's result.
func runSuite(t *testing.T, node, suite, url, out, scenario string) map[string]scenarioResult {
	t.Helper()
	args := []string{suite, "server", "--url", url, "-o", out}
	if scenario != "" {
		args = append(args, "--scenario", scenario)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	_ = cmd.Run() // exits non-zero when a scenario fails; the results say which
	results, err := readResults(out)
	if err != nil || len(results) == 0 {
		t.Fatalf("conformance suite against %s produced no results (%v):\n%s", url, err, clipOutput(output.String()))
	}
	return results
}

var resultDir = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(-\d{3})?Z$`)

func readResults(dir string) (map[string]scenarioResult, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]scenarioResult{}
	for _, e := range entries {
		m := resultDir.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "checks.json"))
		if err != nil {
			return nil, err
		}
		var checks []struct {
			ID           string `json:"id"`
			Status       string `json:"status"`
			ErrorMessage string `json:"errorMessage"`
		}
		if err := json.Unmarshal(data, &checks); err != nil {
			return nil, err
		}
		r := scenarioResult{passed: len(checks) > 0, checks: len(checks)}
		for _, c := range checks {
			if c.Status == "FAILURE" {
				r.passed = false
				r.failed++
				r.detail = c.ID + ": " + c.ErrorMessage
			}
		}
		out[m[1]] = r
	}
	return out, nil
}

func runNode(t *testing.T, node string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	// The inspector CLI finds its package.json relative to the working
	// directory.
	cmd.Dir = filepath.Dir(args[0])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %v: %v\n%s", args[1:], err, clipOutput(string(out)))
	}
	return string(out)
}

func clipOutput(s string) string {
	const maxOutput = 8000
	if len(s) > maxOutput {
		return s[:maxOutput] + "\n…"
	}
	return s
}
