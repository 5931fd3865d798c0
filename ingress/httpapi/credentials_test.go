package httpapi_test

import (
	"context"
	"encoding/base64"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/contracts/telemetry"
	"github.com/toolbus/toolbus/ingress/devmode"
	"github.com/toolbus/toolbus/ingress/internal/gatewaytest"
	"github.com/toolbus/toolbus/worker/demoserver"
)

// Service credentials of the servers below: each must reach its server
// and nothing else.
const (
	svcAPIKey       = "svc-api-key-5e1f"
	svcBearer       = "svc-bearer-9c2d"
	svcBasicPass    = "svc-basic-pass-77aa"
	svcAuthz        = "Custom svc-authz-31b0"
	svcStatic       = "svc-static-0d4e"
	svcClientSecret = "svc-client-secret-6f3a"
	svcAWSSecret    = "svc-aws-secret-8b7c"
	svcAWSSession   = "svc-aws-session-2a9e"
	credCaller      = "Bearer caller-token-c0ffee"
	// Values a caller forwards (forwarding_test.go): they reach their
	// server and cross the bus only sealed.
	fwdAPIKey = "fwd-user-api-key-4d2b"
	fwdTenant = "fwd-tenant-acme-91e0"
	fwdLegacy = "Bearer fwd-legacy-5a77"
	fwdTrace  = "fwd-trace-e3c8"
)

// credGateway is a started gateway with one server per auth_type, each a
// real demo MCP server that records every request's headers.
type credGateway struct {
	*gateway
	tokens    *contractstest.TokenEndpoint
	down      *contractstest.TokenEndpoint
	sts       *contractstest.STS // the token exchange endpoint of svc_exchange
	demos     map[string]*devmode.Demo
	workerURL string
}

func startCredGateway(t *testing.T) *credGateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cg := &credGateway{
		tokens: contractstest.StartTokenEndpoint(t, "toolbus", svcClientSecret, time.Hour),
		down:   contractstest.StartTokenEndpoint(t, "toolbus", svcClientSecret, time.Hour),
		demos:  map[string]*devmode.Demo{},
	}
	cg.down.Fail(http.StatusServiceUnavailable)
	// The STS accepts the caller's token as a subject token (as an STS
	// trusting the caller's identity provider does).
	cg.sts = contractstest.StartSTS(t, func(tok string) (string, bool) { return "cred-caller", "Bearer "+tok == credCaller })
	servers := map[string]config.Credentials{
		"svc_key":    {AuthType: "api_key", AuthValue: svcAPIKey},
		"svc_bearer": {AuthType: "bearer_token", AuthValue: svcBearer},
		"svc_basic":  {AuthType: "basic", AuthValue: "svc-user:" + svcBasicPass},
		"svc_authz":  {AuthType: "authorization", AuthenticationToken: svcAuthz},
		"svc_static": {AuthType: "none", StaticHeaders: map[string]string{"X-Custom-Auth": svcStatic}},
		"svc_m2m": {AuthType: "oauth2", OAuth2Flow: "client_credentials", ClientID: "toolbus",
			ClientSecret: svcClientSecret, TokenURL: cg.tokens.URL, Scopes: []string{"mcp:read"}},
		"svc_m2m_down": {AuthType: "oauth2", OAuth2Flow: "client_credentials", ClientID: "toolbus",
			ClientSecret: svcClientSecret, TokenURL: cg.down.URL},
		"svc_sigv4": {AuthType: "aws_sigv4", AWSRegionName: "us-east-1", AWSAccessKeyID: "AKIDTOOLBUS",
			AWSSecretAccessKey: svcAWSSecret, AWSSessionToken: svcAWSSession},
		"svc_exchange": {AuthType: config.AuthTypeOAuth2TokenExchange, TokenExchangeEndpoint: cg.sts.TokenURL,
			ClientID: contractstest.STSClientID, ClientSecret: contractstest.STSClientSecret, Audience: "api://svc-exchange"},
		"pass": {},
		// Forwarded headers (forwarding_test.go): extra_headers on a
		// passthrough server and on one with its own credential.
		"fwd":     {},
		"fwd_ent": {},
		"svc_fwd": {AuthType: "api_key", AuthValue: svcAPIKey},
	}
	extraHeaders := map[string][]string{"fwd": {"X-Tenant"}, "svc_fwd": {"X-Tenant"}}
	for name := range servers {
		d, err := devmode.StartDemo(ctx, devmode.DemoOptions{}, devmode.DemoHTTP)
		if err != nil {
			t.Fatal(err)
		}
		gatewaytest.StopAtEnd(t, d.Close)
		cg.demos[name] = d
	}
	// An upstream that echoes the credential it received in its error
	// responses to tool calls.
	echo := startEchoingUpstream(t)
	servers["svc_echo"] = config.Credentials{AuthType: "bearer_token", AuthValue: svcBearer}

	tracing, err := telemetry.NewTracing(t.Context(), config.Tracing{}, telemetry.ServiceIngress)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.StopAtEnd(t, tracing.Shutdown)
	g := gatewaytest.Start(t, gatewaytest.WithTelemetry(tracing), gatewaytest.WithConfig(func(c *config.File) {
		for name, creds := range servers {
			url := echo
			if d := cg.demos[name]; d != nil {
				url = d.URL
			}
			c.MCPServers[name] = &config.Server{URL: url, Credentials: creds, ExtraHeaders: extraHeaders[name]}
		}
		// A stdio server (this test binary) whose process gets the
		// caller's X-Tenant in DEMO_TOKEN, which its whoami returns.
		c.MCPServers["tenant_local"] = &config.Server{
			Transport: "stdio", Command: os.Args[0],
			Env: map[string]string{stdioEnv: "1", stdioTokenEnv: "tenant=${X-Tenant}"},
		}
	}))
	ms, err := telemetry.Serve("127.0.0.1:0", g.WorkerRegistry, nil)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.StopAtEnd(t, ms.Shutdown)
	cg.gateway, cg.workerURL = &gateway{g}, "http://"+ms.Addr()
	return cg
}

// startEchoingUpstream serves a demo MCP server whose tools/call requests
// fail with HTTP 500 and a body quoting the request's Authorization.
func startEchoingUpstream(t *testing.T) string {
	t.Helper()
	quoteCredential := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if demoserver.PeekRPCMethod(r) == "tools/call" {
				http.Error(w, "bad credential: "+r.Header.Get("Authorization"), http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	up, err := demoserver.Start(context.Background(), demoserver.Options{Wrap: quoteCredential}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.StopAtEnd(t, up.Close)
	return up.URL
}

func (cg *credGateway) echo(t *testing.T, server string) *response {
	t.Helper()
	return cg.do(t, http.MethodPost, "/mcp-rest/tools/call", map[string]string{"x-litellm-key": masterKey, "Authorization": credCaller},
		`{"name":"echo","server_id":"`+server+`","arguments":{"text":"hi"}}`)
}

// Through the whole gateway (REST call with a caller Authorization,
// ingress, NATS, worker), each server received exactly its own credential
// on every request, and the caller's token only the passthrough server.
func TestCredentials_EachServerReceivesItsOwn(t *testing.T) {
	cg := startCredGateway(t)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc-user:"+svcBasicPass))
	for _, tc := range []struct {
		server, authorization, apiKey, static string
	}{
		{server: "svc_key", apiKey: svcAPIKey},
		{server: "svc_bearer", authorization: "Bearer " + svcBearer},
		{server: "svc_basic", authorization: basic},
		{server: "svc_authz", authorization: svcAuthz},
		{server: "svc_static", static: svcStatic},
		{server: "svc_m2m", authorization: "token"},
		{server: "svc_sigv4", authorization: "AWS4-HMAC-SHA256 Credential=AKIDTOOLBUS/"},
		{server: "svc_exchange", authorization: "exchanged"},
		{server: "pass", authorization: credCaller},
	} {
		t.Run(tc.server, func(t *testing.T) {
			if resp := cg.echo(t, tc.server); resp.Status != http.StatusOK || resp.Text(t) != "hi" {
				t.Fatalf("%d %s", resp.Status, resp.Body)
			}
			want := tc.authorization
			if want == "token" {
				want = "Bearer " + cg.tokens.Issued()[0]
			}
			reqs := cg.demos[tc.server].Recorder.Requests()
			if len(reqs) < 2 {
				t.Fatalf("%d requests recorded", len(reqs))
			}
			if want == "exchanged" {
				// The token the STS issued for the server's audience,
				// obtained once (the caller's token never goes there).
				want = reqs[0].Get("Authorization")
				ex := cg.sts.Exchanges()
				if !strings.HasPrefix(want, "Bearer ") || len(ex) != 1 || ex[0].Subject != "cred-caller" || len(ex[0].Audience) != 1 || ex[0].Audience[0] != "api://svc-exchange" {
					t.Fatalf("exchanged token %q; exchanges %+v", want, ex)
				}
			}
			for _, h := range reqs {
				got := h.Get("Authorization")
				if tc.server == "svc_sigv4" {
					if !strings.HasPrefix(got, want) || h.Get("X-Amz-Date") == "" || h.Get("X-Amz-Content-Sha256") == "" || h.Get("X-Amz-Security-Token") != svcAWSSession {
						t.Errorf("not SigV4-signed: %v", h)
					}
				} else if got != want {
					t.Errorf("Authorization %q, want %q", got, want)
				}
				if got := h.Get("X-API-Key"); got != tc.apiKey {
					t.Errorf("X-API-Key %q, want %q", got, tc.apiKey)
				}
				if got := h.Get("X-Custom-Auth"); got != tc.static {
					t.Errorf("X-Custom-Auth %q, want %q", got, tc.static)
				}
				if tc.server != "pass" {
					for name, values := range h {
						if strings.Contains(strings.Join(values, " "), "c0ffee") {
							t.Errorf("the caller's token reached %s in %s", tc.server, name)
						}
					}
				}
				for _, name := range []string{"x-litellm-key", "x-litellm-api-key"} {
					if h.Get(name) != "" {
						t.Errorf("the gateway key reached %s", tc.server)
					}
				}
			}
		})
	}
}

// 100 concurrent REST calls to an oauth2 client_credentials server make one
// token request; a failing token endpoint is a clear 502
// upstream_auth_failed, not a hang.
func TestCredentials_OAuth2ThroughTheGateway(t *testing.T) {
	cg := startCredGateway(t)
	var wg sync.WaitGroup
	resps := make(chan *response, 100)
	for range 100 {
		wg.Go(func() { resps <- cg.echo(t, "svc_m2m") })
	}
	wg.Wait()
	close(resps)
	for resp := range resps {
		if resp.Status != http.StatusOK {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
	}
	if n := cg.tokens.Requests(); n != 1 {
		t.Fatalf("%d token requests for 100 concurrent calls, want 1", n)
	}
	resp := cg.echo(t, "svc_m2m_down")
	if resp.Status != http.StatusBadGateway || resp.ErrorCode(t) != "upstream_auth_failed" || resp.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("token endpoint down: %d %s", resp.Status, resp.Body)
	}
	if strings.Contains(string(resp.Body), svcClientSecret) {
		t.Fatal("the error body holds the client secret")
	}
	if len(cg.demos["svc_m2m_down"].Recorder.Requests()) != 0 {
		t.Fatal("the MCP server was called without its credential")
	}
}

// Service credentials, client secrets and issued tokens are absent from NATS
// bytes, JetStream's files, logs, metrics, job records and error bodies - also
// when an upstream echoes its credential in an error.
func TestCredentials_ServiceCredentialsNeverLeak(t *testing.T) {
	cg := startCredGateway(t)
	cg.RecordBus(t)
	for _, server := range []string{"svc_key", "svc_bearer", "svc_basic", "svc_authz", "svc_static", "svc_m2m", "svc_sigv4", "svc_exchange"} {
		if resp := cg.echo(t, server); resp.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", server, resp.Status, resp.Body)
		}
		// And as an async job.
		id := cg.submit(t, caller(masterKey, credCaller), `{"name":"echo","server_id":"`+server+`","arguments":{"text":"job"}}`)
		j := cg.waitJob(t, caller(masterKey, credCaller), id, func(j *job) bool { return j.Status == "succeeded" || j.Status == "failed" })
		if j.Status != "succeeded" {
			t.Fatalf("%s job: %+v", server, j)
		}
	}
	// Forwarded header values, by every form, sync and async.
	for _, server := range []string{"fwd", "svc_fwd", "tenant_local"} {
		call := `{"name":"echo","server_id":"` + server + `","arguments":{"text":"fwd"}}`
		if resp := cg.do(t, http.MethodPost, "/mcp-rest/tools/call", forwarding(server), call); resp.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", server, resp.Status, resp.Body)
		}
		id := cg.submit(t, forwarding(server), call)
		if j := cg.waitJob(t, forwarding(server), id, func(j *job) bool { return j.Status == "succeeded" || j.Status == "failed" }); j.Status != "succeeded" {
			t.Fatalf("%s job: %+v", server, j)
		}
	}
	var bodies []string
	for _, server := range []string{"svc_echo", "svc_m2m_down"} {
		resp := cg.echo(t, server)
		if resp.Status < 500 {
			t.Fatalf("%s: %d %s", server, resp.Status, resp.Body)
		}
		bodies = append(bodies, string(resp.Body))
		id := cg.submit(t, caller(masterKey, credCaller), `{"name":"echo","server_id":"`+server+`","arguments":{"text":"job"}}`)
		j := cg.waitJob(t, caller(masterKey, credCaller), id, func(j *job) bool { return j.Status == "failed" })
		_, raw := cg.getJob(t, caller(masterKey, credCaller), id, "")
		if raw != nil {
			bodies = append(bodies, string(raw.Body))
		}
		if j.Error == nil {
			t.Fatalf("%s job: %+v", server, j)
		}
		bodies = append(bodies, j.Error.Message)
	}
	issued := cg.tokens.Issued()
	if len(issued) == 0 {
		t.Fatal("no token was issued")
	}
	metrics := scrape(t, cg.URL) + scrape(t, cg.workerURL)
	var files strings.Builder
	err := filepath.WalkDir(cg.Env.StoreDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files.Write(b)
		return err
	})
	if err != nil || files.Len() == 0 {
		t.Fatalf("reading JetStream's files: %v (%d bytes)", err, files.Len())
	}
	if !strings.Contains(files.String(), `"server":"svc_bearer"`) {
		t.Fatal("the job records are not in JetStream's files: the check would be vacuous")
	}
	exchanged := cg.demos["svc_exchange"].Recorder.Authorizations()
	if len(exchanged) == 0 || !strings.HasPrefix(exchanged[0], "Bearer ") {
		t.Fatalf("svc_exchange saw %q", exchanged)
	}
	for _, secret := range []string{svcAPIKey, svcBearer, svcBasicPass, "svc-authz-31b0", svcStatic, svcClientSecret,
		svcAWSSecret, svcAWSSession, issued[0], base64.StdEncoding.EncodeToString([]byte("svc-user:" + svcBasicPass)),
		fwdAPIKey, fwdTenant, "fwd-legacy-5a77", fwdTrace,
		contractstest.STSClientSecret, strings.TrimPrefix(exchanged[0], "Bearer "), strings.TrimPrefix(credCaller, "Bearer ")} {
		cg.AssertNoSecret(t, secret) // NATS bytes and logs
		for _, l := range strings.Split(cg.Logs.String(), "\n") {
			if strings.Contains(l, secret) {
				t.Log(l)
			}
		}
		if strings.Contains(metrics, secret) {
			t.Errorf("%q is in the metrics", secret)
		}
		if strings.Contains(files.String(), secret) {
			t.Errorf("%q is in JetStream's files", secret)
		}
		for _, b := range bodies {
			if strings.Contains(b, secret) {
				t.Errorf("%q is in an error body: %s", secret, b)
			}
		}
	}
}
