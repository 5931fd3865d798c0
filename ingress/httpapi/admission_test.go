package httpapi_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

func TestAdmission(t *testing.T) {
	g := startGateway(t)
	master := map[string]string{"x-litellm-key": masterKey}

	t.Run("in-flight limit answers 503 overloaded at once", func(t *testing.T) {
		url := g.NewIngress(t, func(c *config.Ingress) { c.MaxInFlight = 1 }).URL
		held := make(chan *response, 1)
		go func() {
			held <- doURL(t, url, http.MethodPost, "/mcp/tools/call", master, `{"name":"demo-slow","arguments":{"ms":1500}}`)
		}()
		// Wait until the slow call holds the only slot: the demo server has
		// received it.
		contractstest.Eventually(t, "the slow call to reach the upstream", func() bool {
			return slices.Contains(g.Upstreams["demo"].Recorder.RPCMethods(), "tools/call")
		})
		start := time.Now()
		resp := doURL(t, url, http.MethodPost, "/mcp/tools/call", master, `{"name":"demo-echo","arguments":{"text":"x"}}`)
		if resp.Status != http.StatusServiceUnavailable || resp.ErrorCode(t) != "overloaded" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("second call: %d %s (Retry-After %q)", resp.Status, resp.Body, resp.Header.Get("Retry-After"))
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the refusal took %s", d)
		}
		// Probes and the admin endpoint are not limited.
		if r := doURL(t, url, http.MethodGet, "/readyz", nil, ""); r.Status != http.StatusOK {
			t.Errorf("readyz while full: %d %s", r.Status, r.Body)
		}
		if r := doURL(t, url, http.MethodGet, "/admin/workers", master, ""); r.Status != http.StatusOK {
			t.Errorf("admin while full: %d %s", r.Status, r.Body)
		}
		if r := <-held; r.Status != http.StatusOK {
			t.Errorf("the held call: %d %s", r.Status, r.Body)
		}
		if r := doURL(t, url, http.MethodPost, "/mcp/tools/call", master, `{"name":"demo-echo","arguments":{"text":"x"}}`); r.Status != http.StatusOK {
			t.Errorf("call after the slot freed: %d %s", r.Status, r.Body)
		}
	})

	t.Run("admin workers needs the master key", func(t *testing.T) {
		if r := g.do(t, http.MethodGet, "/admin/workers", nil, ""); r.Status != http.StatusUnauthorized {
			t.Errorf("no key: %d %s", r.Status, r.Body)
		}
		if r := g.do(t, http.MethodGet, "/admin/workers", map[string]string{"x-litellm-key": teamAKey}, ""); r.Status != http.StatusForbidden {
			t.Errorf("team key: %d %s", r.Status, r.Body)
		}
	})

	t.Run("admin workers lists the workers per server", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { g.call(t, "", "demo-echo", `{"text":"x"}`) })
		}
		wg.Wait()
		r := g.do(t, http.MethodGet, "/admin/workers", master, "")
		if r.Status != http.StatusOK {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		body := r.JSON(t)
		servers, _ := body["servers"].(map[string]any)
		if body["count"] != float64(1) || servers["demo"] != float64(1) || servers["ghost"] != float64(0) {
			t.Fatalf("admin workers: %s", r.Body)
		}
		workers, _ := body["workers"].([]any)
		w, _ := workers[0].(map[string]any)
		var served float64
		for _, e := range w["endpoints"].([]any) {
			ep := e.(map[string]any)
			if ep["name"] == "call_demo" {
				served = ep["requests"].(float64)
				if ep["queue_group"] != "toolbus-workers" || ep["subject"] != "toolbus.v2.call.demo" {
					t.Errorf("endpoint %v", ep)
				}
			}
		}
		if served < 3 {
			t.Errorf("the worker served %v calls, want at least 3", served)
		}
	})
}
