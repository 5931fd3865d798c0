// Package deploy holds deployment files; this test checks the NATS
// least-privilege configuration in nats/toolbus.conf against a real
// nats-server, with the real ingress and worker components on top.
package deploy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/auth"
	"github.com/toolbus/toolbus/ingress/dispatch"
	"github.com/toolbus/toolbus/ingress/jobs"
	"github.com/toolbus/toolbus/ingress/limits"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/pool"
)

// startPermissionedNATS runs nats/toolbus.conf on a random loopback port.
func startPermissionedNATS(t *testing.T) *server.Server {
	t.Helper()
	t.Setenv("TOOLBUS_INGRESS_NATS_PASSWORD", "ingress-pw")
	t.Setenv("TOOLBUS_WORKER_NATS_PASSWORD", "worker-pw")
	t.Setenv("TOOLBUS_ADMIN_NATS_PASSWORD", "admin-pw")
	opts, err := server.ProcessConfigFile("nats/toolbus.conf")
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, opts)
}

// startNode runs a parsed configuration on a random loopback client port,
// without its monitoring port, storing in a temporary directory; it is shut
// down when the test ends.
func startNode(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPPort = 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server %s did not start", opts.ServerName)
	}
	return ns
}

// startWorkers runs a worker pool for cfg on conn, stopped when the test
// ends, and returns it with the key pair it opens sealed fields with.
func startWorkers(ctx context.Context, t *testing.T, cfg *config.File, conn *nats.Conn, opts ...pool.Option) (*pool.Pool, *contracts.PrivateKey) {
	t.Helper()
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	key, err := contracts.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	workers, err := pool.New(cfg, conn, contracts.NewOpener(key), zerolog.Nop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := workers.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { workers.Stop(context.Background()) })
	return workers, key
}

// permErrors collects the permission violations the server reports to a connection.
type permErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *permErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = append(p.errs, err.Error())
}

// waitFor waits (bounded) until an error mentioning subject arrives.
func (p *permErrors) waitFor(t *testing.T, subject string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, e := range p.errs {
			if strings.Contains(e, "Permissions Violation") && strings.Contains(e, subject) {
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no permission violation for %s; got %v", subject, p.errs)
}

func connectAs(t *testing.T, ns *server.Server, user, password string) (*nats.Conn, *permErrors) {
	t.Helper()
	u, _ := url.Parse(ns.ClientURL())
	u.User = url.UserPassword(user, password)
	perms := &permErrors{}
	nc, err := nats.Connect(u.String(), nats.ErrorHandler(perms.handler), nats.Name("toolbus-"+user))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, perms
}

func TestNATSPermissions_RolesCannotCrossOver(t *testing.T) {
	ns := startPermissionedNATS(t)
	ingress, ingressPerms := connectAs(t, ns, "ingress", "ingress-pw")
	worker, workerPerms := connectAs(t, ns, "worker", "worker-pw")

	// An ingress credential cannot take work: no subscription to calls or
	// jobs, nor to the answers meant for workers.
	for _, subject := range []string{contracts.CallSubject("jira"), contracts.AllCallsSubject, contracts.ListSubject("jira"), contracts.AllJobsSubject, contracts.RPCSubject("jira"),
		contracts.AllAnswersSubject, contracts.UnsubscribeSubject("jira")} {
		if _, err := ingress.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		_ = ingress.Flush()
		ingressPerms.waitFor(t, subject)
	}
	// A worker credential cannot send work: no publishing calls, jobs or
	// cancels, nor forge a client's answer or an unsubscription.
	for _, subject := range []string{contracts.CallSubject("jira"), contracts.ListSubject("jira"), contracts.JobSubject("jira", "0011223344556677"), contracts.CancelSubject("abc"), contracts.RPCSubject("jira"),
		contracts.AnswerSubject("abc", "n1"), contracts.UnsubscribeSubject("jira")} {
		if err := worker.Publish(subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
		_ = worker.Flush()
		workerPerms.waitFor(t, subject)
	}
	// And neither can do the other's job by a wildcard.
	if _, err := worker.SubscribeSync(">"); err != nil {
		t.Fatal(err)
	}
	_ = worker.Flush()
	workerPerms.waitFor(t, `">"`)
}

// The permissions are enough for everything toolbus does: sync calls, tool
// lists, pings, async jobs with results and cancellation.
func TestNATSPermissions_EnoughForToolbus(t *testing.T) {
	ns := startPermissionedNATS(t)
	ingressConn, ingressPerms := connectAs(t, ns, "ingress", "ingress-pw")
	workerConn, workerPerms := connectAs(t, ns, "worker", "worker-pw")
	var presences []*limits.Presence
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	up, err := demoserver.Start(ctx, demoserver.Options{}, demoserver.TransportHTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close(context.Background())
	cfg := &config.File{MCPServers: map[string]*config.Server{"demo": {URL: up.URL}}}
	workers, key := startWorkers(ctx, t, cfg, workerConn)
	log := zerolog.Nop()
	select {
	case <-workers.JobsReady():
	case <-ctx.Done():
		t.Fatalf("the worker could not set up jobs: %v", workerPerms.errs)
	}

	sealer := contracts.NewSealer(key.Public(), 0)
	d, err := dispatch.New(ingressConn, sealer, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	token := contracts.NewToken("Bearer permitted")
	res, cerr := d.Call(ctx, dispatch.NewRequestID(), dispatch.Call{KeyID: "k", Server: "demo", Tool: "whoami", Token: token, Timeout: 5 * time.Second})
	if cerr != nil || !strings.Contains(string(res), "Bearer permitted") {
		t.Fatalf("sync call: %s %v", res, cerr)
	}
	if _, cerr := d.List(ctx, dispatch.NewRequestID(), dispatch.List{KeyID: "k", Server: "demo", Token: token, Timeout: 5 * time.Second}); cerr != nil {
		t.Fatalf("list: %v", cerr)
	}
	if ws, err := d.Workers(ctx, 250*time.Millisecond); err != nil || len(ws) != 1 {
		t.Fatalf("ping: %v %v", ws, err)
	}
	if ws, err := d.WorkerStats(ctx, 250*time.Millisecond); err != nil || len(ws) != 1 {
		t.Fatalf("worker service stats (/admin/workers): %v %v", ws, err)
	}

	store, err := jobs.New(ingressConn, sealer, cfg.Jobs, log)
	if err != nil {
		t.Fatal(err)
	}
	owner := contracts.Owner("k", token.Fingerprint())
	rec, _, cerr := store.Submit(ctx, jobs.Submission{KeyID: "k", Server: "demo", Tool: "big", Arguments: []byte(`{"bytes":600000}`), Owner: owner, Token: token, Timeout: 10 * time.Second})
	if cerr != nil {
		t.Fatalf("submit: %v (ingress: %v)", cerr, ingressPerms.errs)
	}
	done, cerr := store.Wait(ctx, owner, rec.ID, 20*time.Second)
	if cerr != nil || done.Status != contracts.JobSucceeded {
		t.Fatalf("job: %+v %v (worker: %v)", done, cerr, workerPerms.errs)
	}
	if result, cerr := store.Result(ctx, done); cerr != nil || len(result) < 600000 {
		t.Fatalf("result from the object store: %d bytes, %v", len(result), cerr)
	}
	slow, _, cerr := store.Submit(ctx, jobs.Submission{KeyID: "k", Server: "demo", Tool: "slow", Arguments: []byte(`{"ms":20000}`), Owner: owner, Timeout: 30 * time.Second})
	if cerr != nil {
		t.Fatal(cerr)
	}
	if _, cerr := store.Cancel(ctx, owner, slow.ID); cerr != nil {
		t.Fatalf("cancel: %v", cerr)
	}
	if list, _, cerr := store.List(ctx, owner, "", 10, ""); cerr != nil || len(list) != 2 {
		t.Fatalf("list jobs: %d %v", len(list), cerr)
	}
	// Ingress replicas count each other (the keys' fair shares).
	otherIngress, _ := connectAs(t, ns, "ingress", "ingress-pw")
	for _, nc := range []*nats.Conn{ingressConn, otherIngress} {
		p, err := limits.StartPresence(nc, 50*time.Millisecond, log)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		presences = append(presences, p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for presences[0].Replicas() != 2 || presences[1].Replicas() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the ingress replicas never counted each other (ingress: %v)", ingressPerms.errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Managed keys: the admin creates one, the ingress picks it up.
	adminConn, adminPerms := connectAs(t, ns, "admin", "admin-pw")
	adminJS, err := jetstream.New(adminConn)
	if err != nil {
		t.Fatal(err)
	}
	ingressJS, err := jetstream.New(ingressConn)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.New(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); keys.Watch(watchCtx, ingressJS, log) }()
	defer func() { stopWatch(); <-watchDone }()
	managed, err := auth.CreateKey(ctx, adminJS, 1, "team-m", nil, nil)
	if err != nil {
		t.Fatalf("create key: %v (admin: %v)", err, adminPerms.errs)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := keys.Authenticate(http.Header{"X-Litellm-Key": {managed}}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ingress never saw the managed key (ingress: %v)", ingressPerms.errs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	for name, p := range map[string]*permErrors{"ingress": ingressPerms, "worker": workerPerms, "admin": adminPerms} {
		p.mu.Lock()
		errs := p.errs
		p.mu.Unlock()
		if len(errs) > 0 {
			t.Errorf("%s hit permission errors: %v", name, errs)
		}
	}
}
