package upstream_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/contractstest"
	"github.com/toolbus/toolbus/worker/demoserver"
	"github.com/toolbus/toolbus/worker/upstream"
)

// The STS client's keys and the role of the tests below.
const (
	stsKeyID     = "AKIDSTSCLIENT"
	stsSecretKey = "sts-client-secret-must-not-leak"
	roleARN      = "arn:aws:iam::123456789012:role/agentcore"
)

// fakeSTS is a stand-in for AWS STS on loopback (AWS STS cannot run in a
// test): it answers the Query API's AssumeRole (a signed POST form,
// Action=AssumeRole&RoleArn=…&RoleSessionName=…&Version=2011-06-15) with
// AssumeRoleResponse XML, new temporary credentials each time, expiring
// after life. status, when set, is answered instead; hang makes it wait
// for the client to give up.
type fakeSTS struct {
	URL    string
	life   time.Duration
	status int
	hang   bool

	calls atomic.Int64
	mu    sync.Mutex
	reqs  []received
}

func startSTS(t *testing.T, f *fakeSTS) *fakeSTS {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := f.calls.Add(1)
		f.mu.Lock()
		f.reqs = append(f.reqs, received{Method: r.Method, Host: r.Host, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		f.mu.Unlock()
		if f.hang {
			<-r.Context().Done()
			return
		}
		if f.status != 0 {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(f.status)
			fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>echo %s</Message></Error><RequestId>r</RequestId></ErrorResponse>`, stsSecretKey)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIATEMP%d</AccessKeyId>
      <SecretAccessKey>assumed-secret-%d</SecretAccessKey>
      <SessionToken>assumed-session-token-%d</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROATEST:toolbus</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/agentcore/toolbus</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>req-%d</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, n, n, n, time.Now().Add(f.life).UTC().Format(time.RFC3339), n)
	}))
	t.Cleanup(ts.Close)
	f.URL = ts.URL
	return f
}

func (f *fakeSTS) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.reqs...)
}

// roleServer is an aws_sigv4 server at url that assumes roleARN through sts.
func roleServer(t *testing.T, url string, sts *fakeSTS, session string) *config.Server {
	return normalized(t, &config.Server{Name: "agentcore", URL: url, Credentials: config.Credentials{
		AuthType: "aws_sigv4", AWSRegionName: "us-east-1", AWSAccessKeyID: stsKeyID, AWSSecretAccessKey: stsSecretKey,
		AWSRoleName: roleARN, AWSSessionName: session, AWSSTSEndpoint: sts.URL,
	}})
}

// With aws_role_name the worker assumes the role with a SigV4-signed STS
// AssumeRole (the configured keys, role and session), signs the MCP
// server's requests with the assumed credentials, and 20 concurrent calls
// share one AssumeRole.
func TestPool_SigV4_AssumesRole(t *testing.T) {
	t.Parallel()
	up := startRecorded(t, demoserver.Options{})
	sts := startSTS(t, &fakeSTS{life: time.Hour})
	srv := roleServer(t, up.URL, sts, "litellm-session")
	logs := &contractstest.LogBuffer{}
	p := newPool(t, upstream.Options{}, logs)
	ctx := contractstest.Ctx(t)

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			got, err := whoami(ctx, p, srv, callerToken)
			if err == nil && !strings.HasPrefix(got, "AWS4-HMAC-SHA256 Credential=ASIATEMP1/") {
				err = fmt.Errorf("whoami = %q", got)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := sts.calls.Load(); n != 1 || p.TokenRequests(srv) != 1 {
		t.Fatalf("%d AssumeRole requests (pool counts %d), want 1", n, p.TokenRequests(srv))
	}

	// The AssumeRole request: the Query API form, signed by the STS
	// client's keys for service sts.
	r := sts.requests()[0]
	form, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": roleARN, "RoleSessionName": "litellm-session"} {
		if got := form.Get(key); got != want {
			t.Errorf("STS form %s = %q, want %q", key, got, want)
		}
	}
	auth := r.Header.Get("Authorization")
	if r.Method != http.MethodPost || !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+stsKeyID+"/") || !strings.Contains(auth, "/us-east-1/sts/aws4_request") {
		t.Fatalf("STS request %s, Authorization %q", r.Method, auth)
	}
	_, signedList, _ := strings.Cut(auth, "SignedHeaders=")
	signedList, _, _ = strings.Cut(signedList, ",")
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.Path, bytes.NewReader(r.Body))
	for _, name := range strings.Split(signedList, ";") {
		if name != "host" {
			again.Header[http.CanonicalHeaderKey(name)] = r.Header.Values(name)
		}
	}
	sum := sha256.Sum256(r.Body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: stsKeyID, SecretAccessKey: stsSecretKey},
		again, hex.EncodeToString(sum[:]), "sts", "us-east-1", when); err != nil {
		t.Fatal(err)
	}
	if again.Header.Get("Authorization") != auth {
		t.Errorf("the STS request's signature does not verify\n got %s\nwant %s", auth, again.Header.Get("Authorization"))
	}

	// The MCP server's requests: signed with the assumed credentials.
	reqs := up.requests()
	for _, r := range reqs {
		if got := r.Header.Get("X-Amz-Security-Token"); got != "assumed-session-token-1" {
			t.Fatalf("%s: X-Amz-Security-Token %q", r.Method, got)
		}
	}
	verifySigV4(t, reqs, aws.Credentials{AccessKeyID: "ASIATEMP1", SecretAccessKey: "assumed-secret-1", SessionToken: "assumed-session-token-1"})
	for _, secret := range []string{stsSecretKey, "assumed-secret-1", "assumed-session-token-1"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("%q is in the logs", secret)
		}
	}
}

// The session name defaults to toolbus; credentials about to expire (here
// within the refresh window as soon as they arrive) are assumed again.
func TestPool_SigV4_AssumedRoleIsRefreshed(t *testing.T) {
	t.Parallel()
	up := startRecorded(t, demoserver.Options{})
	sts := startSTS(t, &fakeSTS{life: 5 * time.Second})
	srv := roleServer(t, up.URL, sts, "")
	p := newPool(t, upstream.Options{}, nil)
	ctx := contractstest.Ctx(t)

	if _, err := whoami(ctx, p, srv, callerToken); err != nil {
		t.Fatal(err)
	}
	first := sts.calls.Load()
	got, err := whoami(ctx, p, srv, callerToken)
	if err != nil {
		t.Fatal(err)
	}
	n := sts.calls.Load()
	if first < 1 || n <= first {
		t.Fatalf("AssumeRole requests: %d after the first call, %d after the second", first, n)
	}
	if want := fmt.Sprintf("AWS4-HMAC-SHA256 Credential=ASIATEMP%d/", n); !strings.HasPrefix(got, want) {
		t.Errorf("whoami = %q, want the latest credentials %q", got, want)
	}
	form, _ := url.ParseQuery(string(sts.requests()[0].Body))
	if got := form.Get("RoleSessionName"); got != config.DefaultAWSSessionName {
		t.Errorf("RoleSessionName %q, want %q", got, config.DefaultAWSSessionName)
	}
}

// An STS that fails, refuses or does not answer fails the call with
// upstream_auth_failed (bounded by TokenTimeout), with a fixed message and
// no secret in the error or the logs; nothing reaches the MCP server.
func TestPool_SigV4_AssumeRoleFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sts  *fakeSTS
		want string
	}{
		{"STS down", &fakeSTS{status: http.StatusInternalServerError}, "AWS STS could not assume"},
		{"STS refuses", &fakeSTS{status: http.StatusForbidden}, "AWS STS refused"},
		{"STS does not answer", &fakeSTS{hang: true}, "AWS STS did not answer in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := startRecorded(t, demoserver.Options{})
			sts := startSTS(t, tc.sts)
			srv := roleServer(t, up.URL, sts, "")
			logs := &contractstest.LogBuffer{}
			p := newPool(t, upstream.Options{TokenTimeout: 300 * time.Millisecond}, logs)
			_, err := whoami(contractstest.Ctx(t), p, srv, callerToken)
			var ue *upstream.Error
			if wireCode(err) != contracts.CodeUpstreamAuthFailed || !errors.As(err, &ue) || !strings.Contains(ue.Wire.Message, tc.want) {
				t.Fatalf("got %v, want upstream_auth_failed %q", err, tc.want)
			}
			if strings.Contains(err.Error(), stsSecretKey) || strings.Contains(logs.String(), stsSecretKey) {
				t.Error("the STS client's secret key is in the error or the logs")
			}
			if !strings.Contains(logs.String(), "aws sts assume role failed") {
				t.Errorf("no log line: %s", logs.String())
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("the MCP server got %d requests", n)
			}
		})
	}
}

// A server that refuses the assumed credentials (401) fails the call with
// upstream_auth_failed, and the next call assumes the role again.
func TestPool_SigV4_RefusedRoleIsAssumedAgain(t *testing.T) {
	t.Parallel()
	up := startRecorded(t, demoserver.Options{RequireToken: "Bearer something-else"})
	sts := startSTS(t, &fakeSTS{life: time.Hour})
	srv := roleServer(t, up.URL, sts, "")
	p := newPool(t, upstream.Options{}, nil)
	for i := range 2 {
		if _, err := whoami(contractstest.Ctx(t), p, srv, callerToken); wireCode(err) != contracts.CodeUpstreamAuthFailed {
			t.Fatalf("call %d: got %v, want upstream_auth_failed", i, err)
		}
		if n := sts.calls.Load(); n != int64(i+1) {
			t.Fatalf("after call %d: %d AssumeRole requests", i, n)
		}
	}
}
