package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/toolbus/toolbus/contracts"
)

// File is the whole configuration file.
type File struct {
	// Strict turns every warning of the loader (an unknown key, a LiteLLM
	// key toolbus does not implement) into an error, as --strict does.
	Strict          bool               `yaml:"strict"`
	GeneralSettings GeneralSettings    `yaml:"general_settings"`
	LiteLLMSettings LiteLLMSettings    `yaml:"litellm_settings"`
	MCPServers      map[string]*Server `yaml:"mcp_servers"`
	Keys            []Key              `yaml:"keys"`
	// OIDC lists the issuers whose JWT access tokens are accepted as
	// callers besides gateway keys (oidc.go).
	OIDC    []OIDCIssuer `yaml:"oidc"`
	NATS    NATS         `yaml:"nats"`
	Seal    Seal         `yaml:"seal"`
	Ingress Ingress      `yaml:"ingress"`
	Worker  Worker       `yaml:"worker"`
	Jobs    Jobs         `yaml:"jobs"`
	Tracing Tracing      `yaml:"tracing"`
}

// GeneralSettings is LiteLLM's section; toolbus reads master_key only.
type GeneralSettings struct {
	// MasterKey, when set, is a gateway key that may use every server and
	// tool (LiteLLM's meaning). It is hashed at load like every other key.
	MasterKey string `yaml:"master_key" secret:"true"`
	// MCPClientSideAuthHeaderName renames LiteLLM's legacy x-mcp-auth
	// header, the caller's credential for every server (forwarding.go).
	// Default x-mcp-auth (DefaultClientSideAuthHeader).
	MCPClientSideAuthHeaderName string `yaml:"mcp_client_side_auth_header_name"`
}

// Transports.
const (
	TransportHTTP  = "http"  // streamable HTTP
	TransportSSE   = "sse"   // legacy HTTP+SSE
	TransportStdio = "stdio" // a local process
)

// Auth modes: what the server receives of the user's credential.
const (
	AuthPassthrough = "passthrough" // the caller's Authorization (or x-mcp-<server>-authorization)
	AuthNone        = "none"        // nothing, ever
)

// Server is one upstream MCP server (an entry of LiteLLM's mcp_servers map).
type Server struct {
	Name        string `yaml:"-"`
	Description string `yaml:"description"`
	// Alias, if set, prefixes the server's tools in place of its name and
	// names it in selections and server_id (LiteLLM's alias; names.go).
	// Normalize sets it from litellm_settings.mcp_aliases when unset.
	Alias string `yaml:"alias"`
	// AccessGroups are the access groups the server belongs to: a key's
	// access_groups, a selection (/mcp/<group>, x-mcp-access-groups) name
	// every server of a group.
	AccessGroups []string `yaml:"access_groups"`
	// MCPInfo is free-form information about the server (logo, cost
	// info...), reported as it is in the REST list's mcp_info and by
	// /v1/mcp/server.
	MCPInfo   map[string]any `yaml:"mcp_info"`
	liteLLMID string         // LiteLLM's stable server id (names.go)
	// LiteLLM fields.
	URL string `yaml:"url" secret:"url"`
	// Transport is http (streamable HTTP; LiteLLM's streamable_http and
	// its spellings mean the same), sse or stdio. Default http, or stdio
	// when Command is set and URL is not.
	Transport string            `yaml:"transport"`
	Command   string            `yaml:"command"`
	Args      []string          `yaml:"args"`
	Env       map[string]string `yaml:"env" secret:"true"`
	// AllowedTools, if set, are the only tools the server exposes;
	// DisallowedTools are never exposed, and win over AllowedTools. Each
	// entry names a tool with or without its <server><separator> prefix
	// (filters.go).
	AllowedTools    []string `yaml:"allowed_tools"`
	DisallowedTools []string `yaml:"disallowed_tools"`
	// AllowedParams maps a tool (with or without its prefix) to the only
	// argument names a call of it may carry; a call with any other is
	// refused forbidden_param. A tool it does not name takes any argument.
	AllowedParams map[string][]string `yaml:"allowed_params"`
	filters       *toolFilters
	forwarding    *forwarding // computed by Normalize (forwarding.go)
	// Auth is passthrough or none, the older spelling of auth_type (none).
	// Default passthrough, or none with auth_type none.
	Auth string `yaml:"auth"`
	// Credentials: auth_type and what it needs (credentials.go).
	Credentials `yaml:",inline"`
	// AuthEnv names the environment variable a stdio server receives the
	// user's credential in. Without it a stdio server receives none.
	AuthEnv string `yaml:"auth_env"`
	// PassthroughOnFanout sends the caller's generic Authorization to this
	// passthrough server also on requests that reach every server (the
	// aggregated tools/list, a REST list without server_id, a bare tool
	// name looked up in every list). Default false: on those it receives
	// only x-mcp-<server>-authorization.
	PassthroughOnFanout bool `yaml:"passthrough_on_fanout"`
	// ExtraHeaders are client headers forwarded to this server as they
	// came (LiteLLM's extra_headers; forwarding.go).
	ExtraHeaders []string `yaml:"extra_headers"`
	// Timeout is the default budget of one call. Default 30s
	// (DefaultCallTimeout).
	Timeout Duration `yaml:"timeout"`
	// MaxTimeout bounds what a request may ask for. Default 5m
	// (DefaultMaxCallTimeout), or Timeout when that is longer.
	MaxTimeout Duration `yaml:"max_timeout"`
	// MaxConcurrency bounds the calls one worker process runs on this
	// server at once. Default 64 (DefaultServerConc).
	MaxConcurrency int `yaml:"max_concurrency"`
	// MaxResultBytes bounds what a worker reads of one answer of the
	// server (an HTTP body, an event of an SSE stream, a line of a stdio
	// server's output): a call whose answer is larger fails
	// result_too_large as soon as the limit is reached, and the rest is
	// never read. Default 8 MiB (DefaultMaxResultBytes),
	// the largest result an async job records.
	MaxResultBytes int64 `yaml:"max_result_bytes"`
	// ProtocolVersion is the MCP revision the workers speak to the server:
	// a revision, or "latest" to negotiate the newest one mcp-go knows
	// (2026-07-28). Default "2025-11-25" (DefaultUpstreamProtocol), as
	// LiteLLM negotiates.
	ProtocolVersion string `yaml:"protocol_version"`
}

// Upstream protocol versions.
const (
	// DefaultUpstreamProtocol is what workers speak to an MCP server unless
	// its protocol_version says otherwise: the revision every current
	// server speaks, which also carries the server's requests to the client
	// during a call (sampling, elicitation). The 2026-07-28 revision costs
	// mcp-go's client extra JSON passes on every call.
	DefaultUpstreamProtocol = "2025-11-25"
	// ProtocolLatest asks for the newest revision the client knows.
	ProtocolLatest = "latest"
)

// Key is a gateway key (toolbus's keys section).
type Key struct {
	Name string `yaml:"name"`
	// KeySHA256 is the hex SHA-256 of the key. Key, the plaintext, is
	// accepted for convenience and hashed at load; it is then cleared.
	KeySHA256 string `yaml:"key_sha256" secret:"true"`
	Key       string `yaml:"key" secret:"true"`
	// Servers the key may use (a name, alias or LiteLLM server id); empty
	// means all, unless AccessGroups is set. Normalize rewrites them to
	// names, with the servers of AccessGroups added (names.go).
	Servers []string `yaml:"servers"`
	// AccessGroups grant the key every server of each group.
	AccessGroups []string `yaml:"access_groups"`
	rawServers   []string // Servers as written, before Normalize
	// Tools the key may use, as <server><separator><tool>, or a bare tool
	// name for that tool on every server the key may use; empty means
	// every tool of the allowed servers. Normalize rewrites the bare names
	// to prefixed ones (filters.go).
	Tools         []string `yaml:"tools"`
	rawTools      []string // Tools as written, before Normalize
	toolRefs      []contracts.ToolRef
	toolsResolved bool // toolRefs is Tools resolved (filters.go)
	// Resources and Prompts are the MCP resources (by URI) and prompts
	// (by name) the key may use, named like Tools: <server><separator><uri
	// or name>, or bare for every server the key may use; an entry ending
	// in * matches every URI or name it starts with, and * alone every one
	// (the opt-in of a key with a tool list). Without the field a key may
	// use every resource (prompt) of its servers - unless it has a tools
	// list: a key limited to some tools reads no resource and gets no
	// prompt, completion or subscription until these lists grant them
	// (policy.go in ingress/frontdoor checks them).
	Resources    []string `yaml:"resources"`
	Prompts      []string `yaml:"prompts"`
	resourceRefs []contracts.ToolRef
	promptRefs   []contracts.ToolRef
	// Limits are the key's fair share; a field left 0 takes the default of
	// ingress.key_limits.
	Limits KeyLimits `yaml:"limits"`
	// IdentityLimits are the share of each caller identity within the key
	// (one end user's, docs/security.md#fair-shares); a field left 0 takes
	// the default of ingress.identity_limits.
	IdentityLimits KeyLimits `yaml:"identity_limits"`
}

// KeyLimits is a gateway key's fair share (contracts.KeyLimits, the shape a
// managed key's record has too). Defaults: MaxRequests 512
// (DefaultKeyMaxRequests), MaxStreams 64 (DefaultKeyMaxStreams), no limit on
// MaxServerCalls and RequestsPerSecond.
type KeyLimits = contracts.KeyLimits

// NATS is how both processes reach the bus. User and password, if any, go
// in the URL (nats://user:password@host:4222).
type NATS struct {
	// URL is the server, or a comma-separated list of a cluster's servers.
	// Default nats://127.0.0.1:4222 (DefaultNATSURL).
	URL string `yaml:"url" secret:"url"`
	// Name is the connection name the server shows. Default
	// toolbus-ingress or toolbus-worker (contracts/natsconn).
	Name string `yaml:"name"`
	// CredsFile is a NATS credentials file (JWT + nkey seed), for
	// deployments with decentralised auth.
	CredsFile string  `yaml:"creds_file"`
	TLS       NATSTLS `yaml:"tls"`
}

// NATSTLS configures TLS to the NATS server: the CA that signed the server's
// certificate, and a client certificate when the server verifies clients.
// Without any of them the connection uses TLS only when the URL says tls://
// or the server requires it, trusting the system's CAs.
type NATSTLS struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// Enabled reports whether any TLS setting is present.
func (t NATSTLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// Config builds the client TLS configuration (TLS 1.2 at least).
func (t NATSTLS) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("nats.tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats.tls.ca_file: no PEM certificate in %s", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.tls.cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Seal holds the sealing keys in text form (see contracts.ParsePublicKey).
type Seal struct {
	// PublicKeys are the recipients' keys (ingress); the first seals.
	PublicKeys []string `yaml:"public_keys"`
	// PrivateKeys are the keys a worker opens with.
	PrivateKeys []string `yaml:"private_keys" secret:"true"`
	// PrivateKeysFile is a file with one private key per line.
	PrivateKeysFile string `yaml:"private_keys_file"`
	// EpochTTL is how long an ingress uses one encapsulated epoch key
	// before making the next. Default 10m (contracts.DefaultEpochTTL).
	EpochTTL Duration `yaml:"epoch_ttl"`
}

// Ingress settings.
type Ingress struct {
	// Listen is the HTTP address. Default 127.0.0.1:4000 (DefaultListen).
	Listen string `yaml:"listen"`
	// MaxBodyBytes bounds a request body. Default 1 MiB
	// (DefaultMaxBodyBytes).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// DefaultTimeout is a call's budget when neither the request nor the
	// server sets one. Default 30s (DefaultCallTimeout).
	DefaultTimeout Duration `yaml:"default_timeout"`
	// MaxTimeout bounds the budget a request may ask for, and with 30s
	// more the HTTP server's write timeout. Default 5m
	// (DefaultMaxCallTimeout).
	MaxTimeout Duration `yaml:"max_timeout"`
	// ListTimeout bounds a tools/list round trip. Default 15s
	// (DefaultListTimeout).
	ListTimeout Duration `yaml:"list_timeout"`
	// ListCacheTTL is how long a server's tool list (per user token) is
	// reused. Default 30s (DefaultListCacheTTL).
	ListCacheTTL Duration `yaml:"list_cache_ttl"`
	// TrustedProxies are the IP addresses or CIDRs whose X-Forwarded-For
	// (and X-Real-IP) is believed for the client address the request log
	// records (client_ip). Default none: the client address is the peer's.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ShutdownTimeout bounds the drain of in-flight requests. Default 30s
	// (DefaultShutdownTimeout).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MaxInFlight bounds the API requests one ingress serves at once; more
	// are answered 503 overloaded at once. A negative value means no
	// bound. Default 1024 (DefaultMaxInFlight).
	MaxInFlight int `yaml:"max_in_flight"`
	// BodyTimeout bounds the read of a request's body, which happens
	// before the request takes a slot (its key's or the ingress's): a
	// client that sends headers and then stalls holds none, and is answered
	// 408 after this. Default 10s (DefaultBodyTimeout).
	BodyTimeout Duration `yaml:"body_timeout"`
	// KeyLimits are every gateway key's fair share unless the key sets its
	// own (keys[].limits).
	KeyLimits KeyLimits `yaml:"key_limits"`
	// IdentityLimits are the share of each caller identity (a key's end
	// user: the key and the credentials it presented) within its key,
	// unless the key sets its own (keys[].identity_limits). Default: no
	// limit (a key with one identity keeps its whole share).
	IdentityLimits KeyLimits `yaml:"identity_limits"`
	// ToolSeparator joins a server and a tool name where tools of several
	// servers meet: the aggregated /mcp endpoint, <server><sep><tool> names
	// on the REST API and in keys' tool lists. Default "-"
	// (DefaultToolSeparator), as LiteLLM's (whose MCP_TOOL_PREFIX_SEPARATOR
	// variable also sets it).
	ToolSeparator string `yaml:"tool_separator"`
	// PerServerToolNames is how /<server>/mcp names the server's tools:
	// prefixed (<prefix><separator><tool>, LiteLLM's form, the default;
	// calls take both forms) or bare (the server's own names).
	PerServerToolNames string `yaml:"per_server_tool_names"`
	// PublicURL is the gateway's own origin as clients reach it
	// (scheme://host[:port], no path), used in the OAuth documents it publishes
	// (docs/oauth.md). Default: taken from each request's Host (https when
	// the request came over TLS).
	PublicURL string `yaml:"public_url"`
	// IdentitySecret keys the hash that tells callers apart (the owner of
	// jobs, tasks and subscriptions: docs/security.md). Unset, the ingress
	// uses one generated once and kept in NATS KV, shared by every replica.
	IdentitySecret string `yaml:"identity_secret" secret:"true"`
}

// Worker settings.
type Worker struct {
	// Name is the worker's name in its micro service and logs. Default
	// <hostname>-<pid>.
	Name string `yaml:"name"`
	// Servers limits this worker to some servers. Default all (empty).
	Servers []string `yaml:"servers"`
	// MaxConcurrency bounds the calls one worker process runs at once.
	// Default 256 (DefaultWorkerConc).
	MaxConcurrency int `yaml:"max_concurrency"`
	// DrainTimeout bounds how long a stopping worker finishes in-flight
	// calls. Default 30s (DefaultDrainTimeout).
	DrainTimeout Duration `yaml:"drain_timeout"`
	// MaxClients bounds the pooled upstream clients per server (one per
	// user credential set where sessions exist). Default 8192
	// (DefaultMaxClients): an idle client costs the worker about 3 KB, and
	// a bound below the users active within ClientIdleTTL makes every call
	// of a round-robin of users open a session.
	MaxClients int `yaml:"max_clients"`
	// MaxStdioProcesses bounds the processes of one stdio server (one per
	// credential set when the server takes the caller's credential in its
	// env); it applies within MaxClients. Default 64
	// (DefaultMaxStdioProcesses).
	MaxStdioProcesses int `yaml:"max_stdio_processes"`
	// ClientIdleTTL evicts pooled upstream clients unused for this long.
	// Default 5m (DefaultClientIdleTTL).
	ClientIdleTTL Duration `yaml:"client_idle_ttl"`
	// MetricsListen is the address of the worker's /metrics, /healthz and
	// /readyz server. Default none (empty): no server.
	MetricsListen string `yaml:"metrics_listen"`
	// Breaker is each server's circuit breaker in this worker.
	Breaker Breaker `yaml:"breaker"`
}

// Breaker configures the workers' per-server circuit breakers: a circuit
// opens after Failures calls failed upstream (upstream_error, or
// upstream_timeout of a call that had at least the server's own timeout)
// with no success in between, all within Window, from at least MinCallers
// distinct gateway keys, and refuses calls for Cooldown.
type Breaker struct {
	// Failures opens the circuit. Default 5 (DefaultBreakerFailures); a
	// negative value turns the breakers off.
	Failures int `yaml:"failures"`
	// Cooldown is how long an open circuit refuses calls before one probe
	// call goes through. Default 10s (DefaultBreakerCooldown).
	Cooldown Duration `yaml:"cooldown"`
	// Window is how far back failures count. Default 60s
	// (DefaultBreakerWindow).
	Window Duration `yaml:"window"`
	// MinCallers is how many distinct gateway keys must be among the
	// failures, so that one key cannot open a circuit every key shares.
	// Default 2 (DefaultBreakerMinCallers); 1 lets any single key open it
	// (a deployment with one key).
	MinCallers int `yaml:"min_callers"`
}

// Tracing configures OpenTelemetry tracing, exported over OTLP/HTTP. It is
// off unless an endpoint is set (here, in TOOLBUS_TRACING_ENDPOINT or in the
// standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT).
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP traces URL
	// (http://collector:4318/v1/traces; /v1/traces is added to a URL
	// without a path).
	Endpoint string `yaml:"endpoint" secret:"url"`
	// SampleRatio is the share of new traces recorded, in (0, 1]; a
	// caller's traceparent decides for its own trace. Default 1 (every
	// trace).
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans. Default toolbus-ingress
	// or toolbus-worker (contracts/telemetry).
	ServiceName string `yaml:"service_name"`
}

// Jobs configures async jobs: the JetStream stream, KV bucket and object
// store, and the retry policy.
type Jobs struct {
	// Retention is how long job records and results are kept after their
	// last change (the KV bucket's and object store's TTL). Default 24h
	// (DefaultJobRetention).
	Retention Duration `yaml:"retention"`
	// Replicas of the stream, bucket and object store: 1, 3 or 5 (3 in a
	// cluster). Default 1.
	Replicas int `yaml:"replicas"`
	// MaxQueuedPerKey caps the jobs one gateway key has queued or running.
	// Default 1000 (DefaultMaxQueuedPerKey).
	MaxQueuedPerKey int `yaml:"max_queued_per_key"`
	// MaxRunningPerKey bounds the jobs of one gateway key that one worker
	// runs at once on one server, so that one key's queued jobs cannot
	// delay every other key's by all of them: a job over it is put back for
	// a moment (not an attempt) and the next job goes. Default 0: half the
	// server's max_concurrency, at least 1; a negative value: no bound.
	MaxRunningPerKey int `yaml:"max_running_per_key"`
	// MaxStreamMessages and MaxStreamBytes cap the stream; a full stream
	// refuses new jobs (503 overloaded) and drops none it holds.
	// MaxStreamMessages defaults to 1,000,000 (DefaultMaxStreamMsgs);
	// MaxStreamBytes to no limit (0).
	MaxStreamMessages int64 `yaml:"max_stream_messages"`
	MaxStreamBytes    int64 `yaml:"max_stream_bytes"`
	// MaxAttempts bounds how often a job runs (retryable failures and lost
	// workers count). Default 3 (DefaultMaxAttempts).
	MaxAttempts int `yaml:"max_attempts"`
	// AckWait is how long a worker may go silent before its job is
	// redelivered; running jobs report progress well within it. Default
	// 30s (DefaultJobAckWait).
	AckWait Duration `yaml:"ack_wait"`
	// Backoff is the delay before each retry (the last repeats). Default
	// 1s, 5s, 30s (DefaultJobBackoff).
	Backoff []Duration `yaml:"backoff"`
	// MaxQueueTime is how long a job may wait to start; after it, it
	// expires. Default 1h (DefaultMaxQueueTime).
	MaxQueueTime Duration `yaml:"max_queue_time"`
	// MaxWait bounds a long poll (GET /v1/calls/{id}?wait=). Default 60s
	// (DefaultMaxWait).
	MaxWait Duration `yaml:"max_wait"`
	// MaxRetainedBytesPerKey bounds the bytes one gateway key's jobs keep
	// in the job store over a retention period (their results, and their
	// records at their size when submitted); a submit over it is refused
	// 507 storage_quota_exceeded until enough has expired. Default 1 GiB
	// (DefaultMaxRetainedBytes).
	MaxRetainedBytesPerKey int64 `yaml:"max_retained_bytes_per_key"`
	// MaxRetainedJobsPerKey bounds the jobs one gateway key submits over a
	// retention period (their records live that long). Default 100,000
	// (DefaultMaxRetainedJobs).
	MaxRetainedJobsPerKey int64 `yaml:"max_retained_jobs_per_key"`
	// KeyQuotas overrides the two for some gateway keys, by key name.
	KeyQuotas map[string]KeyQuota `yaml:"key_quotas"`
	// MaxRecordsBytes and MaxResultsBytes cap the records bucket and the
	// results object store (JetStream MaxBytes); a full store refuses new
	// jobs (503 storage_full) and fails results that do not fit
	// (storage_full, retried within max_attempts). Default no cap (0)
	// beyond the NATS server's own storage limits.
	MaxRecordsBytes int64 `yaml:"max_records_bytes"`
	MaxResultsBytes int64 `yaml:"max_results_bytes"`
	// InlineResultBytes is the largest result kept inside the job record;
	// larger ones go to the object store. Default 256 KiB
	// (DefaultInlineResultSize), at most 512 KiB.
	InlineResultBytes int `yaml:"inline_result_bytes"`
}

// KeyQuota is a gateway key's own bound on what its jobs keep (see
// Jobs.MaxRetainedBytesPerKey); 0 keeps the default.
type KeyQuota struct {
	MaxRetainedBytes int64 `yaml:"max_retained_bytes"`
	MaxRetainedJobs  int64 `yaml:"max_retained_jobs"`
}

// Quota returns the retained bytes and jobs gateway key keyID may have.
func (j *Jobs) Quota(keyID string) (bytes, jobs int64) {
	bytes, jobs = j.MaxRetainedBytesPerKey, j.MaxRetainedJobsPerKey
	if q, ok := j.KeyQuotas[keyID]; ok {
		if q.MaxRetainedBytes > 0 {
			bytes = q.MaxRetainedBytes
		}
		if q.MaxRetainedJobs > 0 {
			jobs = q.MaxRetainedJobs
		}
	}
	return bytes, jobs
}

// Defaults, applied by Normalize (each is documented at its field).
const (
	DefaultListen            = "127.0.0.1:4000"
	DefaultNATSURL           = "nats://127.0.0.1:4222"
	DefaultMaxBodyBytes      = 1 << 20
	DefaultCallTimeout       = 30 * time.Second
	DefaultMaxCallTimeout    = 5 * time.Minute
	DefaultListTimeout       = 15 * time.Second
	DefaultListCacheTTL      = 30 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultMaxInFlight       = 1024
	DefaultBodyTimeout       = 10 * time.Second
	DefaultKeyMaxRequests    = 512
	DefaultKeyMaxStreams     = 64
	DefaultToolSeparator     = "-"
	DefaultWorkerConc        = 256
	DefaultServerConc        = 64
	DefaultMaxResultBytes    = int64(contracts.MaxJobResultBytes)
	DefaultDrainTimeout      = 30 * time.Second
	DefaultMaxClients        = 8192
	DefaultMaxStdioProcesses = 64
	DefaultClientIdleTTL     = 5 * time.Minute

	DefaultBreakerFailures   = 5
	DefaultBreakerCooldown   = 10 * time.Second
	DefaultBreakerWindow     = 60 * time.Second
	DefaultBreakerMinCallers = 2

	DefaultJobRetention     = 24 * time.Hour
	DefaultMaxQueuedPerKey  = 1000
	DefaultMaxStreamMsgs    = 1_000_000
	DefaultMaxAttempts      = 3
	DefaultJobAckWait       = 30 * time.Second
	DefaultMaxQueueTime     = time.Hour
	DefaultMaxWait          = 60 * time.Second
	DefaultInlineResultSize = 256 << 10
	DefaultMaxRetainedBytes = 1 << 30
	DefaultMaxRetainedJobs  = 100_000
)

// DefaultJobBackoff is the retry delay sequence.
var DefaultJobBackoff = []Duration{Duration(time.Second), Duration(5 * time.Second), Duration(30 * time.Second)}

// Normalize applies defaults, hashes plaintext keys and validates. Call it
// again after changing the File by hand (tests, dev mode).
func (f *File) Normalize() error {
	f.resolveNames()
	f.applyDefaults()
	f.hashKeys()
	f.resolveKeyServers()
	sep := f.Ingress.Separator()
	for _, s := range f.MCPServers {
		s.resolveToolFilters(sep)
	}
	var errs []error
	collect := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	f.resolveKeyTools(sep, collect)
	f.resolveKeyGrants(sep, collect)
	f.normalizeOIDC(sep, collect)
	return errors.Join(append(errs, f.validate())...)
}

func (f *File) applyDefaults() {
	if f.MCPServers == nil {
		f.MCPServers = map[string]*Server{}
	}
	for name, s := range f.MCPServers {
		if s == nil {
			s = &Server{}
			f.MCPServers[name] = s
		}
		s.Name = name
		s.Transport = strings.ToLower(strings.TrimSpace(s.Transport))
		switch s.Transport {
		case "", "streamable_http", "streamable-http", "streamablehttp", "http":
			if s.Command != "" && s.URL == "" {
				s.Transport = TransportStdio
			} else {
				s.Transport = TransportHTTP
			}
		}
		s.normalizeCredentials()
		s.normalizeForwarding()
		setDefault(&s.Timeout, DefaultCallTimeout)
		setDefault(&s.MaxTimeout, max(DefaultMaxCallTimeout, s.Timeout.D()))
		if s.MaxConcurrency <= 0 {
			s.MaxConcurrency = DefaultServerConc
		}
		if s.ProtocolVersion == "" {
			s.ProtocolVersion = DefaultUpstreamProtocol
		}
		if s.MaxResultBytes <= 0 {
			s.MaxResultBytes = DefaultMaxResultBytes
		}
	}
	if f.NATS.URL == "" {
		f.NATS.URL = DefaultNATSURL
	}
	in := &f.Ingress
	if in.Listen == "" {
		in.Listen = DefaultListen
	}
	if in.MaxBodyBytes <= 0 {
		in.MaxBodyBytes = DefaultMaxBodyBytes
	}
	setDefault(&in.DefaultTimeout, DefaultCallTimeout)
	setDefault(&in.MaxTimeout, DefaultMaxCallTimeout)
	setDefault(&in.ListTimeout, DefaultListTimeout)
	setDefault(&in.ListCacheTTL, DefaultListCacheTTL)
	setDefault(&in.ShutdownTimeout, DefaultShutdownTimeout)
	if in.MaxInFlight == 0 {
		in.MaxInFlight = DefaultMaxInFlight
	}
	setDefault(&in.BodyTimeout, DefaultBodyTimeout)
	in.KeyLimits = in.KeyLimits.Or(KeyLimits{MaxRequests: DefaultKeyMaxRequests, MaxServerCalls: -1, MaxStreams: DefaultKeyMaxStreams, RequestsPerSecond: -1})
	in.IdentityLimits = in.IdentityLimits.Or(KeyLimits{MaxRequests: -1, MaxServerCalls: -1, MaxStreams: -1, RequestsPerSecond: -1})
	if in.ToolSeparator == "" {
		in.ToolSeparator = DefaultToolSeparator
	}
	if in.PerServerToolNames == "" {
		in.PerServerToolNames = ToolNamesPrefixed
	}
	w := &f.Worker
	if w.MaxConcurrency <= 0 {
		w.MaxConcurrency = DefaultWorkerConc
	}
	setDefault(&w.DrainTimeout, DefaultDrainTimeout)
	if w.MaxClients <= 0 {
		w.MaxClients = DefaultMaxClients
	}
	if w.MaxStdioProcesses <= 0 {
		w.MaxStdioProcesses = DefaultMaxStdioProcesses
	}
	setDefault(&w.ClientIdleTTL, DefaultClientIdleTTL)
	if w.Breaker.Failures == 0 {
		w.Breaker.Failures = DefaultBreakerFailures
	}
	setDefault(&w.Breaker.Cooldown, DefaultBreakerCooldown)
	setDefault(&w.Breaker.Window, DefaultBreakerWindow)
	if w.Breaker.MinCallers <= 0 {
		w.Breaker.MinCallers = DefaultBreakerMinCallers
	}
	setDefault(&f.Seal.EpochTTL, contracts.DefaultEpochTTL)
	if f.Tracing.SampleRatio == 0 {
		f.Tracing.SampleRatio = 1
	}
	j := &f.Jobs
	setDefault(&j.Retention, DefaultJobRetention)
	if j.Replicas <= 0 {
		j.Replicas = 1
	}
	if j.MaxQueuedPerKey <= 0 {
		j.MaxQueuedPerKey = DefaultMaxQueuedPerKey
	}
	if j.MaxStreamMessages <= 0 {
		j.MaxStreamMessages = DefaultMaxStreamMsgs
	}
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = DefaultMaxAttempts
	}
	setDefault(&j.AckWait, DefaultJobAckWait)
	if len(j.Backoff) == 0 {
		j.Backoff = DefaultJobBackoff
	}
	setDefault(&j.MaxQueueTime, DefaultMaxQueueTime)
	setDefault(&j.MaxWait, DefaultMaxWait)
	if j.InlineResultBytes <= 0 {
		j.InlineResultBytes = DefaultInlineResultSize
	}
	if j.MaxRetainedBytesPerKey <= 0 {
		j.MaxRetainedBytesPerKey = DefaultMaxRetainedBytes
	}
	if j.MaxRetainedJobsPerKey <= 0 {
		j.MaxRetainedJobsPerKey = DefaultMaxRetainedJobs
	}
}

func setDefault(d *Duration, v time.Duration) {
	if *d <= 0 {
		*d = Duration(v)
	}
}

// hashKeys replaces plaintext keys with their hash, and adds LiteLLM's
// master_key as the key "master".
func (f *File) hashKeys() {
	for i := range f.Keys {
		if k := &f.Keys[i]; k.Key != "" && k.KeySHA256 == "" {
			k.KeySHA256 = HashKey(k.Key)
			k.Key = ""
		}
	}
	if mk := f.GeneralSettings.MasterKey; mk != "" {
		f.Keys = append(f.Keys, Key{Name: "master", KeySHA256: HashKey(mk)})
		f.GeneralSettings.MasterKey = ""
	}
}

func (f *File) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if sep := f.Ingress.ToolSeparator; len(sep) > maxToolSeparator || strings.ContainsFunc(sep, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		bad("ingress.tool_separator: %q is not 1 to %d printable ASCII characters", sep, maxToolSeparator)
	}
	if p := f.Ingress.PublicURL; p != "" {
		if u, err := url.Parse(p); err != nil || !httpURL(p) || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			bad("ingress.public_url: want an http(s) origin (scheme://host[:port]) without path, query or user")
		}
	}
	f.GeneralSettings.validateClientSideAuthHeader(bad)
	for _, name := range f.ServerNames() {
		s := f.MCPServers[name]
		if !contracts.ServerNameAllowed(name) {
			bad("mcp_servers.%s: a server name is 1 to 64 characters, without a comma, a slash, a control character or a space at either end", name)
		}
		switch s.Transport {
		case TransportHTTP, TransportSSE:
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("mcp_servers.%s.url: want an http(s) URL for transport %s", name, s.Transport)
			}
			if s.AuthEnv != "" {
				bad("mcp_servers.%s.auth_env: only stdio servers take the credential from the environment", name)
			}
		case TransportStdio:
			if s.Command == "" {
				bad("mcp_servers.%s.command: required for transport stdio", name)
			}
		default:
			bad("mcp_servers.%s.transport: %q is not http, sse or stdio", name, s.Transport)
		}
		if v := s.ProtocolVersion; v != ProtocolLatest && !validRevision(v) {
			bad("mcp_servers.%s.protocol_version: %q is not a revision (YYYY-MM-DD) or latest", name, v)
		}
		s.validateCredentials(bad)
		s.validateForwarding(bad)
		s.validateToolFilters(bad)
		s.validateToolPrefixes(f.MCPServers, f.Ingress.Separator(), bad)
		if s.MaxTimeout < s.Timeout {
			bad("mcp_servers.%s: max_timeout is shorter than timeout", name)
		}
	}
	names := map[string]bool{}
	hashes := map[string]bool{}
	for i, k := range f.Keys {
		where := fmt.Sprintf("keys[%d]", i)
		if k.Name == "" {
			bad("%s.name: required", where)
		} else if names[k.Name] {
			bad("%s.name: %q used twice", where, k.Name)
		}
		names[k.Name] = true
		if !validHash(k.KeySHA256) {
			bad("%s: want key_sha256 (64 hex digits) or key", where)
		} else if hashes[k.KeySHA256] {
			bad("%s: the same key is configured twice", where)
		}
		hashes[k.KeySHA256] = true
		for _, s := range k.Servers {
			if _, ok := f.MCPServers[s]; !ok && s != noServer {
				bad("%s.servers: unknown server %q", where, s)
			}
		}
		// An empty list is refused rather than read as "all" (a key meant to
		// reach nothing would reach everything) or as "none" (a key that
		// can do nothing is a mistake): omit the field for every server.
		if k.Servers != nil && len(k.Servers) == 0 {
			bad("%s.servers: an empty list; omit servers to allow every server, or remove the key to allow none", where)
		}
		if k.rawTools != nil && len(k.rawTools) == 0 {
			bad("%s.tools: an empty list; omit tools to allow every tool of the key's servers", where)
		}
		if k.Resources != nil && len(k.Resources) == 0 || k.Prompts != nil && len(k.Prompts) == 0 {
			bad("%s: an empty resources or prompts list; omit it (a key with a tools list then has none), or list what the key may use", where)
		}
	}
	for i, p := range f.Ingress.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("ingress.trusted_proxies[%d]: %q is not an IP address or CIDR", i, p)
			}
		}
	}
	f.validateNames(bad)
	if l := f.Ingress.KeyLimits; l.Burst < 0 {
		bad("ingress.key_limits.burst: negative")
	}
	if l := f.Ingress.IdentityLimits; l.Burst < 0 {
		bad("ingress.identity_limits.burst: negative")
	}
	for _, k := range f.Keys {
		if k.Limits.Burst < 0 {
			bad("keys[%s].limits.burst: negative", k.Name)
		}
		if k.IdentityLimits.Burst < 0 {
			bad("keys[%s].identity_limits.burst: negative", k.Name)
		}
	}
	f.validateOIDC(bad)
	if t := f.NATS.TLS; (t.CertFile == "") != (t.KeyFile == "") {
		bad("nats.tls: cert_file and key_file go together")
	}
	if r := f.Jobs.Replicas; r != 1 && r != 3 && r != 5 {
		bad("jobs.replicas: %d (want 1, 3 or 5)", r)
	}
	if f.Jobs.Retention.D() < time.Second {
		bad("jobs.retention: at least 1s")
	}
	if f.Jobs.InlineResultBytes > 512<<10 {
		bad("jobs.inline_result_bytes: at most 512 KiB (a KV value must fit in a NATS message)")
	}
	for _, s := range f.Worker.Servers {
		if _, ok := f.MCPServers[s]; !ok {
			bad("worker.servers: unknown server %q", s)
		}
	}
	if e := f.Tracing.Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("tracing.endpoint: want an http(s) URL (OTLP over HTTP)")
		}
	}
	if r := f.Tracing.SampleRatio; r <= 0 || r > 1 {
		bad("tracing.sample_ratio: %v is not in (0, 1]", r)
	}
	return errors.Join(errs...)
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// validRevision reports whether v looks like an MCP revision, YYYY-MM-DD.
func validRevision(v string) bool {
	_, err := time.Parse(time.DateOnly, v)
	return err == nil
}

// maxToolSeparator bounds ingress.tool_separator.
const maxToolSeparator = 8

// Separator is ToolSeparator, or the default when unset (a File not
// normalized).
func (in *Ingress) Separator() string {
	if in.ToolSeparator == "" {
		return DefaultToolSeparator
	}
	return in.ToolSeparator
}

// ServerNames returns the configured server names, sorted.
func (f *File) ServerNames() []string {
	names := make([]string, 0, len(f.MCPServers))
	for n := range f.MCPServers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
