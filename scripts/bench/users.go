package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// usersConcurrency is the concurrency of the users part.
const usersConcurrency = 32

// sessionsMetric counts the upstream clients (MCP sessions) a worker opened.
const sessionsMetric = "toolbus_worker_upstream_clients_opened_total"

// benchUsers measures REST calls at concurrency 32 where each call carries
// one of n distinct user tokens, round robin: every new token is a new
// upstream session (a worker never shares a session between two tokens),
// so this is what many users cost against one. Each user first makes one
// call (its first call opens its session: the "first calls" figure in the
// note), then the measurement runs on, round robin, as users who come back
// do. Each figure notes how many sessions the first worker opened during
// it (the scale part leaves one worker).
func benchUsers(s *system, userCounts []int, d time.Duration, report func(result)) error {
	body := echoBody("fast", "hello")
	for _, n := range userCounts {
		call := usersCaller(s.url, body, n, usersConcurrency)
		first, err := firstCalls(call, n, usersConcurrency)
		if err != nil {
			return fmt.Errorf("users %d, first calls: %w", n, err)
		}
		before, haveSessions := s.sessionsOpened()
		r := run("users", fmt.Sprintf("toolbus REST, %d user(s)", n), usersConcurrency, d, call, s)
		if after, ok := s.sessionsOpened(); ok && haveSessions {
			r.Note = fmt.Sprintf("%d upstream sessions opened; first calls of the %d users: %.0f calls/s", int64(after-before), n, first)
		}
		report(r)
	}
	return nil
}

// firstCalls makes n calls, c at a time (with usersCaller: one per user),
// and returns their rate.
func firstCalls(call caller, n, c int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, c)
	start := time.Now()
	for range c {
		go func() {
			for left.Add(-1) >= 0 {
				if err := call(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range c {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return float64(n) / time.Since(start).Seconds(), first
}

// usersCaller posts body to /mcp/tools/call through toolbus, with the
// Authorization of user i%n on call i.
func usersCaller(base string, body []byte, n, c int) caller {
	hc := httpClient(c)
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("Bearer bench-user-%d", i)
	}
	var next atomic.Uint64
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/mcp/tools/call", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("x-litellm-key", benchKey)
		req.Header.Set("Authorization", tokens[next.Add(1)%uint64(n)])
		req.Header.Set("Content-Type", "application/json")
		if tp := traceparentOf(ctx); tp != "" {
			req.Header.Set("traceparent", tp)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

// sessionsOpened sums the first worker's sessionsMetric; false when the
// worker does not export it.
func (s *system) sessionsOpened() (float64, bool) {
	if s.metricsURL == "" {
		return 0, false
	}
	resp, err := http.Get(s.metricsURL)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, sessionsMetric) {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}
