package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts/config"
)

// awsRoleEarlyRefresh is how long before their expiry assumed-role
// credentials are replaced (the credentials cache's expiry window).
const awsRoleEarlyRefresh = 60 * time.Second

// Wire errors of AWS role assumption: fixed phrases, never STS's own text.
var (
	errSTSFailed  = authFailed("AWS STS could not assume the MCP server's role")
	errSTSTimeout = authFailed("AWS STS did not answer in time")
	errSTSRefused = authFailed("AWS STS refused to let the gateway's credentials assume the MCP server's role")
)

// awsCredentials returns the credentials that sign srv's requests: its
// static keys, or with aws_role_name the temporary credentials of that role,
// obtained with STS AssumeRole (the static keys are then the STS client's;
// the ambient AWS credential chain is never read). Both are held in an
// aws.CredentialsCache: assumed credentials are reused until
// awsRoleEarlyRefresh before they expire, and concurrent callers share one
// AssumeRole.
func (p *Pool) awsCredentials(srv *config.Server) (*aws.CredentialsCache, *assumeRole) {
	static := credentials.NewStaticCredentialsProvider(srv.AWSAccessKeyID, srv.AWSSecretAccessKey, srv.AWSSessionToken)
	if srv.AWSRoleName == "" {
		return aws.NewCredentialsCache(static), nil
	}
	client := sts.New(sts.Options{
		Region:      srv.AWSRegionName,
		Credentials: aws.NewCredentialsCache(static),
		HTTPClient:  &http.Client{Transport: p.opts.Transport},
		// One request per refresh, bounded by the timeout below; the next
		// call tries again.
		Retryer: aws.NopRetryer{},
	}, func(o *sts.Options) {
		if srv.AWSSTSEndpoint != "" {
			o.BaseEndpoint = aws.String(srv.AWSSTSEndpoint)
		}
	})
	r := &assumeRole{
		server: srv.Name,
		inner: stscreds.NewAssumeRoleProvider(client, srv.AWSRoleName, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = srv.AWSSessionName
		}),
		timeout: p.opts.TokenTimeout,
		life:    p.ctx,
		bg:      &p.background,
		log:     p.log,
	}
	return aws.NewCredentialsCache(r, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = awsRoleEarlyRefresh }), r
}

// assumeRole is the credentials provider of an aws_sigv4 server with
// aws_role_name: one bounded AssumeRole per Retrieve, its failure classified
// as upstream_auth_failed. The credentials cache runs Retrieve detached from
// the callers' contexts (each caller waits only as long as its own allows),
// so the request is bounded here, by timeout and the pool's lifetime.
type assumeRole struct {
	server  string
	inner   aws.CredentialsProvider
	timeout time.Duration
	life    context.Context
	bg      *backgroundWork
	log     zerolog.Logger

	calls atomic.Uint64

	mu      sync.Mutex
	current aws.Credentials // the latest assumed credentials, for redaction
}

func (r *assumeRole) Retrieve(context.Context) (aws.Credentials, error) {
	if !r.bg.enter() {
		return aws.Credentials{}, errBackgroundClosed()
	}
	defer r.bg.leave()
	r.calls.Add(1)
	ctx, cancel := context.WithTimeout(r.life, r.timeout)
	defer cancel()
	creds, err := r.inner.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, r.failure(ctx, err)
	}
	r.mu.Lock()
	r.current = creds
	r.mu.Unlock()
	return creds, nil
}

// failure classifies a failed AssumeRole, and logs its status and class
// only (STS's error text is not repeated).
func (r *assumeRole) failure(ctx context.Context, err error) *Error {
	wire, status := errSTSFailed(), 0
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden:
		wire = errSTSRefused()
	case ctx.Err() != nil:
		wire = errSTSTimeout()
	}
	r.log.Warn().Str("server", r.server).Str("class", string(wire.Code)).Int("status", status).
		Str("error", wire.Message).Msg("aws sts assume role failed")
	return &Error{Wire: wire, Detail: fmt.Sprintf("aws sts: HTTP %d", status)}
}

// secrets are the latest assumed credentials' secret key and session token.
func (r *assumeRole) secrets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return []string{r.current.SecretAccessKey, r.current.SessionToken}
}
