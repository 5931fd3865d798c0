package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/devmode"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// BenchmarkConcurrentCallsMemory drives 32 and 256 keep-alive clients
// through the whole system in this process (ingress, embedded NATS, a
// worker, a demo upstream configured as scripts/bench configures its own)
// with REST and MCP tool calls, and reports the Go runtime's peak heap and
// stack memory sampled during the load, the GC cycles and the GC's share of
// the CPU. Every part shares one process, so the figures are the system's,
// not the ingress's or the worker's (scripts/bench measures those); what
// grows with concurrency shows by comparing the two levels, and in a heap
// profile taken in the middle of the load:
//
//	TOOLBUS_MIDWAY_HEAP=/tmp/mid.heap go test -run '^$' -bench 'ConcurrentCallsMemory/rest-c256' -benchtime 5000x ./ingress/httpapi/
//	go tool pprof -sample_index=inuse_space -top /tmp/mid.heap
func BenchmarkConcurrentCallsMemory(b *testing.B) {
	for _, path := range []string{"rest", "mcp"} {
		for _, c := range []int{32, 256} {
			b.Run(fmt.Sprintf("%s-c%d", path, c), func(b *testing.B) { benchConcurrentMemory(b, path, c) })
		}
	}
}

func benchConcurrentMemory(b *testing.B, path string, clients int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fast, err := devmode.StartDemo(ctx, devmode.DemoOptions{}, devmode.DemoHTTP)
	if err != nil {
		b.Fatal(err)
	}
	// The scripts/bench configuration: one key is the whole load.
	g := gatewaytest.Start(b, gatewaytest.DemoOnly(), gatewaytest.WithConfig(func(f *config.File) {
		if f.MCPServers == nil {
			f.MCPServers = map[string]*config.Server{}
		}
		f.MCPServers["fast"] = &config.Server{URL: fast.URL, MaxConcurrency: 512}
		f.Worker.MaxConcurrency = 1024
		f.Ingress.KeyLimits = config.KeyLimits{MaxRequests: -1, MaxStreams: -1}
	}))
	url, body := g.URL+"/mcp/tools/call", []byte(`{"name":"fast-echo","arguments":{"text":"hello"}}`)
	if path == "mcp" {
		url, body = g.URL+"/mcp", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fast-echo","arguments":{"text":"hello"}}}`)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	call := func() error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("x-litellm-key", gatewaytest.MasterKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, data)
		}
		return nil
	}
	if err := call(); err != nil {
		b.Fatal(err)
	}
	var peak runtime.MemStats
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse+m.StackInuse > peak.HeapInuse+peak.StackInuse {
					peak = m
				}
			}
		}
	}()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cpuBefore := cpuSeconds()
	b.ResetTimer()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	per := b.N/clients + 1
	var done atomic.Int64
	midway := int64(per * clients / 2)
	for range clients {
		wg.Go(func() {
			for range per {
				if done.Add(1) == midway {
					midwayProfile(b)
				}
				if err := call(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(stop)
	<-sampled
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(mib(peak.HeapInuse), "peak-heap-inuse-MiB")
	b.ReportMetric(mib(peak.HeapAlloc), "peak-heap-alloc-MiB")
	b.ReportMetric(mib(peak.StackInuse), "peak-stack-MiB")
	b.ReportMetric(mib(peak.Sys), "peak-sys-MiB")
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	cpuAfter := cpuSeconds()
	b.ReportMetric(100*(cpuAfter[0]-cpuBefore[0])/(cpuAfter[1]-cpuBefore[1]), "GC-CPU-%")
	b.ReportMetric(float64(after.NumGC-before.NumGC), "GCs")
	b.ReportMetric(float64(after.PauseTotalNs-before.PauseTotalNs)/1e6, "GC-pause-ms")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines-after")
}

// midwayProfile writes a heap profile of what is live in the middle of the
// load to $TOOLBUS_MIDWAY_HEAP, if set (a -memprofile shows the end, when
// no call is in flight).
func midwayProfile(b *testing.B) {
	path := os.Getenv("TOOLBUS_MIDWAY_HEAP")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Error(err)
	}
	if p := pprof.Lookup("goroutine"); p != nil {
		g, err := os.Create(path + ".goroutines")
		if err == nil {
			_ = p.WriteTo(g, 1)
			g.Close()
		}
	}
}

// cpuSeconds is the CPU time the GC and the whole process (user code, GC,
// scavenger) have spent so far.
func cpuSeconds() [2]float64 {
	samples := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(samples)
	idle := []metrics.Sample{{Name: "/cpu/classes/idle:cpu-seconds"}}
	metrics.Read(idle)
	return [2]float64{samples[0].Value.Float64(), samples[1].Value.Float64() - idle[0].Value.Float64()}
}
