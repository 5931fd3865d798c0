// Command bench measures toolbus against a direct call to the same upstream,
// in one run on one machine: toolbus in production shape (a nats-server
// process, an ingress process, worker processes) in front of a fast mcp-go
// upstream (the demo server's echo tool).
//
//	go run ./scripts/bench [-duration 5s] [-parts sync,async,scale,size,users,budget,floor] [-concurrency 1,32,256]
//
// It prints a markdown table, and one JSON line per figure to -json FILE
// (or stdout with -json -).
//
// To run it where there is no Go toolchain (a many-core machine), build
// everything it runs into one directory and copy that:
//
//	go run ./scripts/bench -build DIR     # DIR/bench, DIR/ingress, DIR/worker, DIR/nats-server
//	DIR/bench -bin DIR [flags]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	partsFlag := flag.String("parts", "sync,async,scale,size,users,budget,floor", "which parts to run")
	usersFlag := flag.String("users", "1,100,5000", "numbers of distinct user tokens in the users part")
	binDir := flag.String("bin", "", "run the binaries in this directory (made by -build) instead of building them")
	buildDir := flag.String("build", "", "build the benchmark and every binary it runs into this directory, and exit")
	concFlag := flag.String("concurrency", "1,32,256", "concurrency levels of the sync part")
	jsonOut := flag.String("json", "", "also write one JSON line per figure to this file (- for stdout)")
	scaleLoad := flag.Float64("scale-load", 1, "callers per worker call slot in the scale part (see benchScale)")
	echo := flag.Bool("echo-server", false, "internal: be the floor part's echo process")
	profileDir := flag.String("profile", "", "write CPU and allocation profiles of the ingress, a worker and nats-server for each measurement to this directory (builds with -tags pprof; profiling costs a few percent)")
	flag.Parse()
	if *echo {
		return echoServer()
	}
	parts := strings.Split(*partsFlag, ",")
	levels, err := counts("-concurrency", *concFlag)
	if err != nil {
		return err
	}
	userCounts, err := counts("-users", *usersFlag)
	if err != nil {
		return err
	}

	ctx := context.Background()
	if *buildDir != "" {
		if err := os.MkdirAll(*buildDir, 0o755); err != nil {
			return err
		}
		_, err := build(ctx, *buildDir, *profileDir != "", true)
		return err
	}
	if *binDir != "" && *profileDir != "" {
		return fmt.Errorf("-profile needs profiling builds: make them with -build DIR -profile X, or leave out -bin")
	}
	dir, err := os.MkdirTemp("", "toolbus-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(os.Stderr, "building and starting toolbus (nats-server, ingress, worker, upstreams) in %s\n", dir)
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return err
		}
	}
	s, err := newSystem(ctx, dir, *binDir, slowSlots, *profileDir)
	if err != nil {
		return err
	}
	defer s.close()
	upstreams = []*proc{s.fast, s.slow}

	var results []result
	report := func(r result) {
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "  %-6s %-22s c=%-4d %8.0f calls/s  p50 %.3f ms  p99 %.3f ms  errors %d  CPU µs/call: gateway %.0f, load generator %.0f, upstream %.0f\n",
			r.Part, r.Path, r.Concurrency, r.CallsPerSec, r.P50ms, r.P99ms, r.Errors, r.GatewayCPUus, r.LoadGenCPUus, r.UpstreamCPUus)
	}
	if slices.Contains(parts, "sync") {
		if err := benchSync(ctx, s, levels, *duration, report); err != nil {
			return err
		}
	}
	if slices.Contains(parts, "size") {
		if err := benchSizes(ctx, s, *duration, report); err != nil {
			return err
		}
	}
	if slices.Contains(parts, "users") {
		if err := benchUsers(s, userCounts, *duration, report); err != nil {
			return err
		}
	}
	if slices.Contains(parts, "async") {
		if err := benchAsync(s, *duration, report); err != nil {
			return err
		}
	}
	if slices.Contains(parts, "scale") {
		if err := benchScale(s, *duration, *scaleLoad, report); err != nil {
			return err
		}
	}
	var budgets []budgetTable
	if slices.Contains(parts, "budget") {
		if budgets, err = benchBudget(ctx, s); err != nil {
			return err
		}
	}
	var floor *floorResult
	if slices.Contains(parts, "floor") {
		r, err := benchFloor(ctx)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		floor = &r
	}
	printTable(os.Stdout, results)
	printBudget(os.Stdout, budgets)
	printFloor(os.Stdout, floor)
	if *jsonOut != "" {
		w := io.Writer(os.Stdout)
		if *jsonOut != "-" {
			f, err := os.Create(*jsonOut)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		enc := json.NewEncoder(w)
		for _, r := range results {
			_ = enc.Encode(r)
		}
	}
	return nil
}

// counts parses a comma list of positive numbers.
func counts(flagName, list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad %s %q", flagName, list)
		}
		out = append(out, n)
	}
	return out, nil
}

func echoBody(server string, text string) []byte {
	b, _ := json.Marshal(map[string]any{"name": server + "-echo", "arguments": map[string]any{"text": text}})
	return b
}

func benchSync(ctx context.Context, s *system, levels []int, d time.Duration, report func(result)) error {
	for _, c := range levels {
		direct, closeDirect, err := directCaller(ctx, s.fastURL, "echo", map[string]any{"text": "hello"}, c, map[string]string{"Authorization": "Bearer bench-user"})
		if err != nil {
			return fmt.Errorf("direct client: %w", err)
		}
		report(run("sync", "direct", c, d, direct, nil))
		closeDirect()
		report(run("sync", "toolbus REST", c, d, restCaller(s.url, echoBody("fast", "hello"), c), s))
		mcpCall, closeMCP, err := directCaller(ctx, s.url+"/mcp", "fast-echo", map[string]any{"text": "hello"}, c,
			map[string]string{"x-litellm-key": benchKey, "Authorization": "Bearer bench-user"})
		if err != nil {
			report(result{Part: "sync", Path: "toolbus MCP /mcp", Concurrency: c, Note: "not measured: " + firstLine(err.Error())})
			continue
		}
		report(run("sync", "toolbus MCP /mcp", c, d, mcpCall, s))
		closeMCP()
	}
	return nil
}

func benchSizes(ctx context.Context, s *system, d time.Duration, report func(result)) error {
	const c = 8
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		text := strings.Repeat("x", size)
		label := fmt.Sprintf("%d KiB", size>>10)
		direct, closeDirect, err := directCaller(ctx, s.fastURL, "echo", map[string]any{"text": text}, c, nil)
		if err != nil {
			return err
		}
		r := run("size", "direct "+label, c, d, direct, nil)
		closeDirect()
		report(r)
		report(run("size", "toolbus REST "+label, c, d, restCaller(s.url, echoBody("fast", text), c), s))
	}
	return nil
}

// benchAsync submits jobs for d at concurrency 32, then waits for all of
// them; a sample is long-polled from submission to measure how soon a
// finished job is visible to a poll.
func benchAsync(s *system, d time.Duration, report func(result)) error {
	const c = 32
	hc := httpClient(c * 2)
	body := echoBody("fast", "hello")
	do := func(method, path string, body []byte) (map[string]any, error) {
		req, _ := http.NewRequest(method, s.url+path, strings.NewReader(string(body)))
		req.Header.Set("x-litellm-key", benchKey)
		req.Header.Set("Authorization", "Bearer bench-user")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			return nil, err
		}
		if resp.StatusCode >= 300 {
			return m, fmt.Errorf("status %d: %v", resp.StatusCode, m["error"])
		}
		return m, nil
	}

	var mu sync.Mutex
	var ids []string
	var lags []time.Duration
	var sampleWG sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	profiled := s.profile("async-submit-c32", d)
	var wg sync.WaitGroup
	var submitErrs int
	for i := range c {
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				m, err := do(http.MethodPost, "/v1/calls", body)
				if err != nil {
					mu.Lock()
					submitErrs++
					mu.Unlock()
					continue
				}
				id, _ := m["id"].(string)
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				if i == 0 && n%10 == 0 { // a sample: long-poll it from now on
					sampleWG.Go(func() {
						m, err := do(http.MethodGet, "/v1/calls/"+id+"?wait=30s", nil)
						seen := time.Now()
						if err != nil || m["status"] != "succeeded" {
							return
						}
						finished, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["finished_at"]))
						if err == nil {
							mu.Lock()
							lags = append(lags, seen.Sub(finished))
							mu.Unlock()
						}
					})
				}
			}
		})
	}
	wg.Wait()
	submitted := time.Since(start)
	profiled()
	profiled = s.profile("async-complete", d)
	defer profiled()
	// Wait for every job to finish.
	var last time.Time
	for _, id := range ids {
		m, err := do(http.MethodGet, "/v1/calls/"+id+"?wait=60s", nil)
		if err != nil || m["status"] != "succeeded" {
			return fmt.Errorf("job %s: %v %v", id, m["status"], err)
		}
		if f, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["finished_at"])); err == nil && f.After(last) {
			last = f
		}
	}
	sampleWG.Wait()
	completed := last.Sub(start)
	slices.Sort(lags)
	lag := 0.0
	if len(lags) > 0 {
		lag = float64(lags[len(lags)/2].Microseconds()) / 1000
	}
	report(result{Part: "async", Path: "jobs submitted", Concurrency: c, Calls: int64(len(ids)), Errors: int64(submitErrs),
		CallsPerSec: float64(len(ids)) / submitted.Seconds()})
	report(result{Part: "async", Path: "jobs completed", Concurrency: c, Calls: int64(len(ids)),
		CallsPerSec: float64(len(ids)) / completed.Seconds(), P50ms: lag,
		Note: "p50 here: completion to visibility in a long poll"})
	return nil
}

// benchScale measures throughput against the 50 ms upstream with 1, 2 and 4
// workers, each allowed 16 concurrent calls on it (max_concurrency), with
// load callers per slot of all the workers: throughput should grow with the
// workers, since each adds capacity. With one caller per slot some slots
// idle: a worker's queue group share is random, so at any moment some
// workers have more calls than slots (the rest wait in their queue) while
// others have fewer. Two callers per slot keep every worker's slots busy,
// but a worker's wait queue (as deep as it has slots) then overflows now and
// then: those calls are answered 503 overloaded, counted as errors.
func benchScale(s *system, d time.Duration, load float64, report func(result)) error {
	body := echoBody("slow", "hello")
	for _, n := range []int{1, 2, 4} {
		for len(s.workers) < n {
			if err := s.addWorker(); err != nil {
				return err
			}
		}
		s.keepWorkers(n)
		if err := s.waitWorkers(n); err != nil {
			return err
		}
		c := max(1, int(load*float64(slowSlots*n)))
		r := run("scale", fmt.Sprintf("%d worker(s), 50 ms upstream", n), c, d, restCaller(s.url, body, c), s)
		report(r)
	}
	s.keepWorkers(1)
	return nil
}

// slowSlots is each worker's max_concurrency on the 50 ms upstream.
const slowSlots = 16

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func printTable(w io.Writer, results []result) {
	fmt.Fprintf(w, "\nMachine: %d cores, %s/%s, %s. Gateway CPU = ingress + nats-server + workers.\n\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintln(w, "| part | path | C | calls/s | p50 ms | p90 ms | p99 ms | errors | gateway CPU µs/call | ingress RSS MiB | worker RSS MiB |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		if r.Note != "" && r.Calls == 0 {
			fmt.Fprintf(w, "| %s | %s | %d | — | — | — | — | — | — | — | — |\n", r.Part, r.Path+" ("+r.Note+")", r.Concurrency)
			continue
		}
		cpu, in, wk := "—", "—", "—"
		if r.GatewayCPUus > 0 {
			cpu = fmt.Sprintf("%.0f", r.GatewayCPUus)
			in = fmt.Sprintf("%.1f", r.IngressRSSMB)
			wk = fmt.Sprintf("%.1f", r.WorkerRSSMB)
		}
		path := r.Path
		if r.Note != "" {
			path += " (" + r.Note + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.3f | %.3f | %.3f | %d | %s | %s | %s |\n",
			r.Part, path, r.Concurrency, r.CallsPerSec, r.P50ms, r.P90ms, r.P99ms, r.Errors, cpu, in, wk)
	}
}
