package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/toolbus/toolbus/contracts/config"
)

// caller makes one call; it returns an error for anything but success.
type caller func(ctx context.Context) error

// result is one measured figure.
type result struct {
	Part        string  `json:"part"`
	Path        string  `json:"path"`
	Concurrency int     `json:"concurrency"`
	Calls       int64   `json:"calls"`
	Errors      int64   `json:"errors"`
	CallsPerSec float64 `json:"calls_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	// CPU of the gateway processes (ingress, NATS, workers) per call.
	GatewayCPUus float64 `json:"gateway_cpu_us_per_call,omitempty"`
	IngressCPUs  float64 `json:"ingress_cpu_s,omitempty"`
	WorkersCPUs  float64 `json:"workers_cpu_s,omitempty"`
	NATSCPUs     float64 `json:"nats_cpu_s,omitempty"`
	// CPU per call of the load generator (this process: the callers,
	// which share the machine) and of the upstream MCP servers, so that the
	// direct and toolbus runs can be compared by what each side spends.
	LoadGenCPUus  float64 `json:"loadgen_cpu_us_per_call,omitempty"`
	UpstreamCPUus float64 `json:"upstream_cpu_us_per_call,omitempty"`
	IngressRSSMB  float64 `json:"ingress_peak_rss_mib,omitempty"`
	WorkerRSSMB   float64 `json:"worker_peak_rss_mib,omitempty"`
	Note          string  `json:"note,omitempty"`
}

// run drives call from c goroutines for d and measures it, with the CPU and
// peak RSS of the given processes.
func run(part, path string, c int, d time.Duration, call caller, s *system) result {
	var gw []*proc
	profiled := func() {}
	if s != nil {
		gw = s.gateway()
		profiled = s.profile(fmt.Sprintf("%s-%s-c%d", part, path, c), d)
	}
	cpu0 := map[*proc]float64{}
	for _, p := range append(gw, upstreams...) {
		cpu0[p] = p.cpuSeconds()
	}
	self0 := selfCPUSeconds()
	peak := map[*proc]int64{}
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			for _, p := range gw {
				peak[p] = max(peak[p], p.rssBytes())
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var calls, errs atomic.Int64
	lat := make([][]time.Duration, c)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				callCtx, callCancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := call(callCtx)
				callCancel()
				if ctx.Err() != nil && err != nil {
					return // cut by the end of the run
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled
	profiled()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	r := result{
		Part: part, Path: path, Concurrency: c, Calls: calls.Load(), Errors: errs.Load(),
		CallsPerSec: float64(calls.Load()) / elapsed.Seconds(),
		P50ms:       pct(0.50), P90ms: pct(0.90), P99ms: pct(0.99),
	}
	if r.Calls > 0 {
		r.LoadGenCPUus = (selfCPUSeconds() - self0) / float64(r.Calls) * 1e6
		var up float64
		for _, p := range upstreams {
			up += p.cpuSeconds() - cpu0[p]
		}
		r.UpstreamCPUus = up / float64(r.Calls) * 1e6
	}
	if s != nil {
		r.IngressCPUs = s.ingress.cpuSeconds() - cpu0[s.ingress]
		r.NATSCPUs = s.nats.cpuSeconds() - cpu0[s.nats]
		for _, w := range s.workers {
			r.WorkersCPUs += w.cpuSeconds() - cpu0[w]
			r.WorkerRSSMB = max(r.WorkerRSSMB, float64(peak[w])/(1<<20))
		}
		r.IngressRSSMB = float64(peak[s.ingress]) / (1 << 20)
		if r.Calls > 0 {
			r.GatewayCPUus = (r.IngressCPUs + r.NATSCPUs + r.WorkersCPUs) / float64(r.Calls) * 1e6
		}
	}
	return r
}

// upstreams are the upstream MCP server processes (set once they run).
var upstreams []*proc

// selfCPUSeconds is this process's user+system CPU time so far.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// httpClient is a keep-alive client sized for c concurrent calls.
func httpClient(c int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        c * 2,
		MaxIdleConnsPerHost: c * 2,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// directCaller calls tool on the upstream at url with one shared mcp-go
// client, as an application without toolbus would, speaking the protocol
// revision toolbus's workers speak to it (config.DefaultUpstreamProtocol),
// so that both sides pay the same client costs.
func directCaller(ctx context.Context, url, tool string, args map[string]any, c int, headers map[string]string) (caller, func(), error) {
	tr, err := transport.NewStreamableHTTP(url,
		transport.WithHTTPBasicClient(httpClient(c)), transport.WithHTTPHeaders(headers),
		transport.WithHTTPHeaderFunc(func(ctx context.Context) map[string]string {
			if tp := traceparentOf(ctx); tp != "" {
				return map[string]string{"traceparent": tp}
			}
			return nil
		}))
	if err != nil {
		return nil, nil, err
	}
	cl := client.NewClient(tr, client.WithProtocolVersion(config.DefaultUpstreamProtocol))
	if err := cl.Start(ctx); err != nil {
		return nil, nil, err
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "toolbus-bench", Version: "0.1.0"}
	if _, err := cl.Initialize(ctx, init); err != nil {
		_ = cl.Close()
		return nil, nil, err
	}
	call := func(ctx context.Context) error {
		req := mcp.CallToolRequest{}
		req.Params.Name = tool
		req.Params.Arguments = args
		res, err := cl.CallTool(ctx, req)
		if err != nil {
			return err
		}
		if res.IsError {
			return errors.New("tool error")
		}
		return nil
	}
	return call, func() { _ = cl.Close() }, nil
}

// restCaller posts body to /mcp/tools/call through toolbus, as one user.
func restCaller(base string, body []byte, c int) caller {
	return usersCaller(base, body, 1, c)
}
