package httpapi_test

import (
	"net/http"
	"testing"
)

// perServerUser is a caller of the master key who sends its credential
// only as x-mcp-demo-authorization (LiteLLM's per-server header).
func perServerUser(token string) map[string]string {
	return map[string]string{"x-litellm-key": masterKey, "x-mcp-demo-authorization": token}
}

// Two users of one key who send their credential per server are two
// owners: neither reads, replays (Idempotency-Key) nor cancels the other's
// async calls.
func TestIdentity_PerServerUsersOwnTheirJobs(t *testing.T) {
	g := startGateway(t)
	alice, bob := perServerUser("Bearer alice-7f3a"), perServerUser("Bearer bob-9c1e")
	withKey := func(h map[string]string, key string) map[string]string {
		out := map[string]string{"Idempotency-Key": key}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	const body = `{"name":"demo-whoami","arguments":{}}`
	id := g.submit(t, withKey(alice, "same-key"), body)
	if j := g.waitJob(t, alice, id, func(j *job) bool { return j.Status == "succeeded" }); j.Text(t) != "Bearer alice-7f3a" {
		t.Fatalf("alice's job: %s", j.Result)
	}
	if _, resp := g.getJob(t, bob, id, ""); resp.Status != http.StatusNotFound {
		t.Errorf("bob read alice's job: %d %s", resp.Status, resp.Body)
	}
	g.wantJobCount(t, bob, 0, "to bob")
	// The same Idempotency-Key from bob is bob's own: a new job, his result.
	bobs := g.submit(t, withKey(bob, "same-key"), body)
	if bobs == id {
		t.Fatal("bob's Idempotency-Key replayed alice's job")
	}
	if j := g.waitJob(t, bob, bobs, func(j *job) bool { return j.Status == "succeeded" }); j.Text(t) != "Bearer bob-9c1e" {
		t.Fatalf("bob's job: %s", j.Result)
	}
	if resp := g.do(t, http.MethodDelete, "/v1/calls/"+id, bob, ""); resp.Status != http.StatusNotFound {
		t.Errorf("bob cancelled alice's job: %d %s", resp.Status, resp.Body)
	}
	// A slow job of alice's, which bob tries to cancel while it runs.
	slow := g.submit(t, alice, `{"name":"demo-slow","arguments":{"ms":300}}`)
	if resp := g.do(t, http.MethodDelete, "/v1/calls/"+slow, bob, ""); resp.Status != http.StatusNotFound {
		t.Errorf("bob cancelled alice's running job: %d %s", resp.Status, resp.Body)
	}
	if j := g.waitJob(t, alice, slow, func(j *job) bool { return j.Status != "queued" && j.Status != "running" }); j.Status != "succeeded" {
		t.Errorf("alice's slow job ended %s", j.Status)
	}
	// Alice's replay of her own key still returns her first job.
	if again := g.do(t, http.MethodPost, "/v1/calls", withKey(alice, "same-key"), body); again.JSON(t)["id"] != id {
		t.Errorf("alice's replay: %d %s, want job %s", again.Status, again.Body, id)
	}
}
