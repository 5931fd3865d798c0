package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
)

// job is a decoded GET /v1/calls/{id}.
type job struct {
	ID         string                 `json:"id"`
	Server     string                 `json:"server"`
	Tool       string                 `json:"tool"`
	Status     string                 `json:"status"`
	CreatedAt  *time.Time             `json:"created_at"`
	StartedAt  *time.Time             `json:"started_at"`
	FinishedAt *time.Time             `json:"finished_at"`
	Attempts   int                    `json:"attempts"`
	Progress   *contracts.JobProgress `json:"progress"`
	Result     json.RawMessage        `json:"result"`
	Error      *contracts.Error       `json:"error"`
	StatusURL  string                 `json:"status_url"`
}

func (j *job) Text(t *testing.T) string {
	t.Helper()
	return (&response{Body: j.Result}).Text(t)
}

// caller is the headers of a caller: a gateway key and, optionally, a user token.
var caller = gatewaytest.Headers

// submit posts a job and returns its id.
func (g *gateway) submit(t *testing.T, h map[string]string, body string) string {
	t.Helper()
	resp := g.do(t, http.MethodPost, "/v1/calls", h, body)
	if resp.Status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.Status, resp.Body)
	}
	m := resp.JSON(t)
	id, _ := m["id"].(string)
	if m["status"] != "queued" || m["status_url"] != "/v1/calls/"+id || resp.Header.Get("Location") != "/v1/calls/"+id {
		t.Fatalf("submit answer: %s (Location %q)", resp.Body, resp.Header.Get("Location"))
	}
	return id
}

func (g *gateway) getJob(t *testing.T, h map[string]string, id, query string) (*job, *response) {
	t.Helper()
	resp := g.do(t, http.MethodGet, "/v1/calls/"+id+query, h, "")
	if resp.Status != http.StatusOK {
		return nil, resp
	}
	var j job
	if err := json.Unmarshal(resp.Body, &j); err != nil {
		t.Fatal(err)
	}
	return &j, resp
}

// wantJobCount fails the test unless GET /v1/calls lists n jobs for h.
func (g *gateway) wantJobCount(t *testing.T, h map[string]string, n int, when string) {
	t.Helper()
	list := g.do(t, http.MethodGet, "/v1/calls", h, "")
	if calls, _ := list.JSON(t)["calls"].([]any); len(calls) != n {
		t.Fatalf("%d jobs listed %s, want %d: %s", len(calls), when, n, list.Body)
	}
}

// waitJob polls until cond holds (bounded).
func (g *gateway) waitJob(t *testing.T, h map[string]string, id string, cond func(*job) bool) *job {
	t.Helper()
	var j *job
	contractstest.Eventually(t, "job "+id+" to reach the state", func() bool {
		var resp *response
		if j, resp = g.getJob(t, h, id, ""); j == nil {
			t.Fatalf("get %s: %d %s", id, resp.Status, resp.Body)
		}
		return cond(j)
	})
	return j
}

func TestJobs_SubmitThenLongPoll(t *testing.T) {
	g := startGateway(t)
	me := caller(masterKey, "Bearer job-user")
	id := g.submit(t, me, `{"name":"demo-whoami","arguments":{}}`)
	j, resp := g.getJob(t, me, id, "?wait=10s")
	if j == nil || j.Status != "succeeded" {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	if j.Text(t) != "Bearer job-user" || j.Server != "demo" || j.Tool != "whoami" || j.Attempts != 1 {
		t.Fatalf("job %+v, result %s", j, j.Result)
	}
	if j.CreatedAt == nil || j.StartedAt == nil || j.FinishedAt == nil || j.FinishedAt.Before(*j.StartedAt) {
		t.Fatalf("timestamps %+v", j)
	}

	// A long poll returns when the job finishes, not when the wait ends: the
	// wait is 60 s, the client gives up after 10 s, the job takes 0.3 s.
	id = g.submit(t, me, `{"name":"demo-slow","arguments":{"ms":300}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+"/v1/calls/"+id+"?wait=60s", nil)
	req.Header.Set("x-litellm-key", masterKey)
	req.Header.Set("Authorization", "Bearer job-user")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("long poll did not return on completion: %v", err)
	}
	defer r.Body.Close()
	var done job
	_ = json.NewDecoder(r.Body).Decode(&done)
	if done.Status != "succeeded" {
		t.Fatalf("long poll returned %+v", done)
	}
}

func TestJobs_PreferRespondAsync(t *testing.T) {
	g := startGateway(t)
	for _, path := range []string{"/mcp/tools/call", "/mcp-rest/tools/call"} {
		h := caller(masterKey, "")
		h["Prefer"] = "respond-async, wait=0"
		resp := g.do(t, http.MethodPost, path, h, `{"name":"demo-echo","arguments":{"text":"later"}}`)
		if resp.Status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", path, resp.Status, resp.Body)
		}
		id, _ := resp.JSON(t)["id"].(string)
		j := g.waitJob(t, caller(masterKey, ""), id, func(j *job) bool { return j.Status == "succeeded" })
		if j.Text(t) != "later" {
			t.Fatalf("%s: result %s", path, j.Result)
		}
	}
}

func TestJobs_Idempotency(t *testing.T) {
	g := startGateway(t)
	h := caller(masterKey, "Bearer idem")
	h["Idempotency-Key"] = "import-2026-11-27"
	first := g.do(t, http.MethodPost, "/v1/calls", h, `{"name":"demo-echo","arguments":{"text":"once"}}`)
	second := g.do(t, http.MethodPost, "/v1/calls", h, `{"name":"demo-echo","arguments":{"text":"once"}}`)
	if first.Status != 202 || second.Status != 202 {
		t.Fatalf("%d %d", first.Status, second.Status)
	}
	if first.JSON(t)["id"] != second.JSON(t)["id"] || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a second job: %s / %s", first.Body, second.Body)
	}
	// Another user of the same key has its own idempotency space.
	other := caller(masterKey, "Bearer someone-else")
	other["Idempotency-Key"] = "import-2026-11-27"
	third := g.do(t, http.MethodPost, "/v1/calls", other, `{"name":"demo-echo","arguments":{"text":"once"}}`)
	if third.Status != 202 || third.JSON(t)["id"] == first.JSON(t)["id"] {
		t.Fatalf("idempotency key shared across users: %s", third.Body)
	}
	g.wantJobCount(t, caller(masterKey, "Bearer idem"), 1, "for one idempotency key")

	// The same key with another request is a conflict, not the first job.
	for _, body := range []string{
		`{"name":"demo-echo","arguments":{"text":"twice"}}`,
		`{"name":"demo-whoami","arguments":{"text":"once"}}`,
		`{"name":"demo-echo","arguments":{"text":"once"},"timeout_seconds":3}`,
	} {
		conflict := g.do(t, http.MethodPost, "/v1/calls", h, body)
		if conflict.Status != http.StatusConflict || conflict.ErrorCode(t) != "idempotency_conflict" {
			t.Errorf("replay with %s: %d %s, want 409 idempotency_conflict", body, conflict.Status, conflict.Body)
		}
	}
	g.wantJobCount(t, caller(masterKey, "Bearer idem"), 1, "after conflicting replays")
}

func TestJobs_CancelQueuedAndRunning(t *testing.T) {
	g := startGateway(t)
	me := caller(masterKey, "Bearer canceller")

	// ghost has no worker: its job stays queued until cancelled.
	queued := g.submit(t, me, `{"name":"ghost-echo","arguments":{"text":"never"}}`)
	resp := g.do(t, http.MethodDelete, "/v1/calls/"+queued, me, "")
	if resp.Status != 200 || resp.JSON(t)["status"] != "cancelled" {
		t.Fatalf("cancel queued: %d %s", resp.Status, resp.Body)
	}

	running := g.submit(t, me, `{"name":"demo-slow","arguments":{"ms":20000}}`)
	g.waitJob(t, me, running, func(j *job) bool { return j.Status == "running" })
	resp = g.do(t, http.MethodDelete, "/v1/calls/"+running, me, "")
	if resp.Status != 200 || resp.JSON(t)["status"] != "cancelled" {
		t.Fatalf("cancel running: %d %s", resp.Status, resp.Body)
	}
	j, _ := g.getJob(t, me, running, "?wait=1s")
	if j.Status != "cancelled" || j.Error == nil || j.Error.Code != contracts.CodeCancelled {
		t.Fatalf("after cancel: %+v", j)
	}
	// Cancelling again, or a finished job, changes nothing.
	if resp := g.do(t, http.MethodDelete, "/v1/calls/"+running, me, ""); resp.Status != 200 || resp.JSON(t)["status"] != "cancelled" {
		t.Fatalf("second cancel: %d %s", resp.Status, resp.Body)
	}
}

func TestJobs_IsolatedByKeyAndUser(t *testing.T) {
	g := startGateway(t)
	owner := caller(masterKey, "Bearer alice")
	id := g.submit(t, owner, `{"name":"demo-echo","arguments":{"text":"private"}}`)
	g.waitJob(t, owner, id, func(j *job) bool { return j.Status == "succeeded" })
	for name, h := range map[string]map[string]string{
		"another key":           caller(teamAKey, "Bearer alice"),
		"another user":          caller(masterKey, "Bearer bob"),
		"no user":               caller(masterKey, ""),
		"user in per-server hd": {"x-litellm-key": masterKey, "x-mcp-demo-authorization": "Bearer alice"},
	} {
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			resp := g.do(t, method, "/v1/calls/"+id, h, "")
			if resp.Status != http.StatusNotFound || resp.ErrorCode(t) != "not_found" {
				t.Errorf("%s %s: %d %s", name, method, resp.Status, resp.Body)
			}
		}
		list := g.do(t, http.MethodGet, "/v1/calls", h, "")
		if strings.Contains(string(list.Body), id) {
			t.Errorf("%s lists the job: %s", name, list.Body)
		}
	}
}

func TestJobs_ProgressVisibleWhileRunning(t *testing.T) {
	g := startGateway(t)
	me := caller(masterKey, "")
	id := g.submit(t, me, `{"name":"demo-slow","arguments":{"ms":3000}}`)
	j := g.waitJob(t, me, id, func(j *job) bool { return j.Progress != nil })
	if j.Status != "running" || j.Progress.Total == nil || *j.Progress.Total <= 0 {
		t.Fatalf("progress %+v while %s", j.Progress, j.Status)
	}
}

func TestJobs_PerKeyCap(t *testing.T) {
	g := startGateway(t, func(c *config.File) { c.Jobs.MaxQueuedPerKey = 2 })
	me := caller(masterKey, "")
	for range 2 {
		g.submit(t, me, `{"name":"ghost-echo","arguments":{}}`) // stays queued: no worker
	}
	resp := g.do(t, http.MethodPost, "/v1/calls", me, `{"name":"ghost-echo","arguments":{}}`)
	if resp.Status != http.StatusTooManyRequests || resp.ErrorCode(t) != "too_many_jobs" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s (Retry-After %q)", resp.Status, resp.Body, resp.Header.Get("Retry-After"))
	}
	// Another key is not affected.
	if resp := g.do(t, http.MethodPost, "/v1/calls", caller(teamAKey, ""), `{"name":"demo-echo","arguments":{"text":"x"}}`); resp.Status != 202 {
		t.Fatalf("other key: %d %s", resp.Status, resp.Body)
	}
}

func TestJobs_FullStreamRefusesNewJobs(t *testing.T) {
	g := startGateway(t, func(c *config.File) { c.Jobs.MaxStreamMessages = 2 })
	me := caller(masterKey, "")
	ids := []string{
		g.submit(t, me, `{"name":"ghost-echo","arguments":{}}`),
		g.submit(t, me, `{"name":"ghost-echo","arguments":{}}`),
	}
	resp := g.do(t, http.MethodPost, "/v1/calls", me, `{"name":"ghost-echo","arguments":{}}`)
	if resp.Status != http.StatusServiceUnavailable || resp.ErrorCode(t) != "overloaded" {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	// Nothing accepted was dropped, and the refused one left no record.
	for _, id := range ids {
		if j, resp := g.getJob(t, me, id, ""); j == nil || j.Status != "queued" {
			t.Fatalf("accepted job %s: %d %s", id, resp.Status, resp.Body)
		}
	}
	g.wantJobCount(t, me, 2, "after a refused submit")
}

func TestJobs_AnyReplicaAnswers(t *testing.T) {
	g := startGateway(t)
	me := caller(masterKey, "Bearer replica")
	id := g.submit(t, me, `{"name":"demo-echo","arguments":{"text":"anywhere"}}`)
	otherURL := g.NewIngress(t).URL
	resp := doURL(t, otherURL, http.MethodGet, "/v1/calls/"+id+"?wait=10s", me, "")
	var j job
	_ = json.Unmarshal(resp.Body, &j)
	if resp.Status != 200 || j.Status != "succeeded" || j.Text(t) != "anywhere" {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
}

func TestJobs_ResultsExpire(t *testing.T) {
	g := startGateway(t, func(c *config.File) { c.Jobs.Retention = config.Duration(time.Second) })
	me := caller(masterKey, "")
	id := g.submit(t, me, `{"name":"demo-echo","arguments":{"text":"short-lived"}}`)
	g.waitJob(t, me, id, func(j *job) bool { return j.Status == "succeeded" })
	contractstest.Eventually(t, "the job to expire with its retention", func() bool {
		_, resp := g.getJob(t, me, id, "")
		return resp.Status == http.StatusNotFound
	})
}

func TestJobs_ResultSizeLimit(t *testing.T) {
	g := startGateway(t)
	me := caller(masterKey, "")
	near := 7 << 20
	id := g.submit(t, me, fmt.Sprintf(`{"name":"demo-big","arguments":{"bytes":%d}}`, near))
	j := g.waitJob(t, me, id, func(j *job) bool { return j.Status != "queued" && j.Status != "running" })
	if j.Status != "succeeded" || len(j.Text(t)) != near {
		t.Fatalf("near the limit: %s, %d bytes, error %+v", j.Status, len(j.Result), j.Error)
	}
	id = g.submit(t, me, fmt.Sprintf(`{"name":"demo-big","arguments":{"bytes":%d}}`, 9<<20))
	j = g.waitJob(t, me, id, func(j *job) bool { return j.Status != "queued" && j.Status != "running" })
	if j.Status != "failed" || j.Error == nil || j.Error.Code != contracts.CodeResultTooLarge {
		t.Fatalf("over the limit: %+v", j)
	}
}

func TestJobs_ListNewestFirstWithCursor(t *testing.T) {
	g := startGateway(t)
	me := caller(masterKey, "Bearer lister")
	var ids []string
	for i := range 3 {
		id := g.submit(t, me, fmt.Sprintf(`{"name":"demo-echo","arguments":{"text":"%d"}}`, i))
		g.waitJob(t, me, id, func(j *job) bool { return j.Status == "succeeded" })
		ids = append(ids, id)
	}
	var got []string
	cursor := ""
	for range 5 {
		resp := g.do(t, http.MethodGet, "/v1/calls?status=succeeded&limit=2&cursor="+cursor, me, "")
		var page struct {
			Calls      []job  `json:"calls"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(resp.Body, &page); err != nil || resp.Status != 200 {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
		for _, c := range page.Calls {
			got = append(got, c.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join([]string{ids[2], ids[1], ids[0]}, ",") {
		t.Fatalf("listed %v, want newest first %v", got, ids)
	}
}

func TestJobs_BadInputs(t *testing.T) {
	g := startGateway(t)
	me := caller(masterKey, "")
	longIdem := caller(masterKey, "")
	longIdem["Idempotency-Key"] = strings.Repeat("i", 300)
	tests := []badInput{
		{"wait not a duration", http.MethodGet, "/v1/calls/0194f0a1b2c3d4e5f60718293a4b?wait=soon", me, "", 400, "invalid_request"},
		{"wait negative", http.MethodGet, "/v1/calls/0194f0a1b2c3d4e5f60718293a4b?wait=-1s", me, "", 400, "invalid_request"},
		{"unknown job", http.MethodGet, "/v1/calls/0194f0a1b2c3d4e5f60718293a4b", me, "", 404, "not_found"},
		{"malformed job id", http.MethodGet, "/v1/calls/..%2f..%2fetc", me, "", 404, "not_found"},
		{"cancel unknown job", http.MethodDelete, "/v1/calls/0194f0a1b2c3d4e5f60718293a4b", me, "", 404, "not_found"},
		{"list bad status", http.MethodGet, "/v1/calls?status=done", me, "", 400, "invalid_request"},
		{"list bad limit", http.MethodGet, "/v1/calls?limit=1000", me, "", 400, "invalid_request"},
		{"list bad cursor", http.MethodGet, "/v1/calls?cursor=zzz", me, "", 400, "invalid_request"},
		{"submit without key", http.MethodPost, "/v1/calls", nil, `{"name":"demo-echo"}`, 401, "unauthorized"},
		{"submit unknown tool", http.MethodPost, "/v1/calls", me, `{"name":"nope-nope"}`, 404, "unknown_tool"},
		{"submit bad arguments", http.MethodPost, "/v1/calls", me, `{"name":"demo-echo","arguments":1}`, 400, "invalid_request"},
		{"idempotency key over-long", http.MethodPost, "/v1/calls", longIdem, `{"name":"demo-echo"}`, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := g.do(t, tt.method, tt.path, tt.headers, tt.body)
			if resp.Status != tt.status || resp.ErrorCode(t) != tt.code {
				t.Fatalf("%d %s, want %d %s", resp.Status, resp.Body, tt.status, tt.code)
			}
		})
	}
}

// A key over its stored-bytes quota is refused 507 while another key still
// submits: the key "quota" may keep 1 MiB, and its two 600 KiB results put
// it over.
func TestJobs_StoredBytesQuota(t *testing.T) {
	g := startGateway(t, func(c *config.File) {
		c.Jobs.KeyQuotas = map[string]config.KeyQuota{"quota": {MaxRetainedBytes: 1 << 20}}
		c.Keys = append(c.Keys,
			config.Key{Name: "quota", Key: "sk-quota", Servers: []string{"demo"}},
			config.Key{Name: "free", Key: "sk-free", Servers: []string{"demo"}})
	})
	limited, free := caller("sk-quota", ""), caller("sk-free", "")
	const big = `{"name":"demo-big","arguments":{"bytes":614400}}`
	for range 2 {
		id := g.submit(t, limited, big)
		g.waitJob(t, limited, id, func(j *job) bool { return j.Status == "succeeded" })
	}
	resp := g.do(t, http.MethodPost, "/v1/calls", limited, big)
	if resp.Status != http.StatusInsufficientStorage || resp.ErrorCode(t) != "storage_quota_exceeded" {
		t.Fatalf("over its quota: %d %s, want 507 storage_quota_exceeded", resp.Status, resp.Body)
	}
	id := g.submit(t, free, big)
	g.waitJob(t, free, id, func(j *job) bool { return j.Status == "succeeded" })
}

// A full job store (jobs.max_records_bytes) refuses new jobs 503
// storage_full, retryable.
func TestJobs_StoreFull(t *testing.T) {
	g := startGateway(t, func(c *config.File) { c.Jobs.MaxRecordsBytes = 8 << 10 })
	me := caller(masterKey, "")
	for i := range 100 {
		// ghost has no worker: its jobs stay queued, their records stay.
		resp := g.do(t, http.MethodPost, "/v1/calls", me, fmt.Sprintf(`{"name":"ghost-echo","arguments":{"text":"%d"}}`, i))
		if resp.Status == http.StatusAccepted {
			continue
		}
		if resp.Status != http.StatusServiceUnavailable || resp.ErrorCode(t) != "storage_full" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("a full store: %d %s, want 503 storage_full", resp.Status, resp.Body)
		}
		return
	}
	t.Fatal("100 jobs fit in 8 KiB of records")
}
