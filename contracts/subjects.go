package contracts

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Subject layout. All toolbus traffic lives below SubjectRoot so that one
// permission (or one raw subscriber, in tests) covers it.
const (
	// SubjectRoot is the prefix of every toolbus subject but the jobs'.
	// It is toolbus.v2 since wire format v2 (docs/architecture.md): a
	// process of an older release neither receives nor answers a newer
	// one's messages — an older worker would read a v2 call's body, the
	// caller's arguments, as a whole v1 request.
	SubjectRoot = "toolbus.v2"
	// JobsSubjectRoot is the prefix of the async jobs' subjects, which
	// stay where the JetStream stream holds them across upgrades (job
	// messages are still v1).
	JobsSubjectRoot = "toolbus.v1"

	callPrefix   = SubjectRoot + ".call."
	rpcPrefix    = SubjectRoot + ".rpc."
	listPrefix   = SubjectRoot + ".list."
	jobsPrefix   = JobsSubjectRoot + ".jobs."
	cancelPrefix = SubjectRoot + ".cancel."

	answerPrefix      = SubjectRoot + ".answer."
	notifyPrefix      = SubjectRoot + ".notify."
	unsubscribePrefix = SubjectRoot + ".unsubscribe."

	// AllCallsSubject matches the synchronous tools/call subject of every server.
	AllCallsSubject = callPrefix + "*"
	// AllListsSubject matches the tools/list subject of every server.
	AllListsSubject = listPrefix + "*"
	// PingSubject is answered by every worker (no queue group): readiness
	// checks and pool views gather the replies.
	PingSubject = SubjectRoot + ".ping"

	// AllJobsSubject matches every async job subject (the JetStream stream's filter).
	AllJobsSubject = jobsPrefix + ">"
	// AllCancelsSubject matches every job cancellation; every worker listens
	// (no queue group) and cancels the job if it runs it.
	AllCancelsSubject = cancelPrefix + "*"

	// AllAnswersSubject matches every answer subject (see AnswerSubject).
	AllAnswersSubject = answerPrefix + ">"
	// AllNotifySubject matches every notification subject (see
	// NotifySubject).
	AllNotifySubject = notifyPrefix + ">"
	// AllUnsubscribesSubject matches every server's unsubscribe subject;
	// every worker listens, without a queue group.
	AllUnsubscribesSubject = unsubscribePrefix + "*"

	// IngressPresenceSubject is where every ingress replica announces itself
	// at intervals (an IngressPresence), so that each replica knows how many
	// share the gateway keys' fair-share limits (ingress/limits).
	IngressPresenceSubject = SubjectRoot + ".ingress.presence"

	// WorkerService is the NATS micro service name every worker registers
	// under (`nats micro ls toolbus-worker`); its endpoints are the call,
	// list and RPC subjects of each server it serves, and the ping subject.
	WorkerService = "toolbus-worker"

	// WorkerQueueGroup is the queue group every worker joins on every call and
	// list subject, so that each request reaches exactly one worker.
	WorkerQueueGroup = "toolbus-workers"

	// JobsStream is the JetStream work-queue stream that holds async jobs.
	JobsStream = "TOOLBUS_JOBS"
	// JobsBucket is the JetStream KV bucket that holds job records and
	// idempotency keys.
	JobsBucket = "toolbus_jobs"
	// ResultsBucket is the JetStream object store for job results too large
	// for a KV value.
	ResultsBucket = "toolbus_results"
	// KeysBucket is the JetStream KV bucket of gateway keys managed at run
	// time (`ingress keys create|list|revoke`): key = hex SHA-256 of the
	// gateway key, value = a ManagedKey.
	KeysBucket = "toolbus_keys"
	// OAuthBucket is the JetStream KV bucket of the OAuth proxy
	// (ingress/oauthproxy): OAuthStateKey holds the random key every
	// ingress replica seals its OAuth registrations, states and codes with
	// when the server has no client_secret to derive one from.
	OAuthBucket   = "toolbus_oauth"
	OAuthStateKey = "state_key"
	// IdentityBucket is the JetStream KV bucket that holds the deployment's
	// identity secret (key IdentitySecretKey) when ingress.identity_secret
	// is not set: generated once, created only if absent, so every ingress
	// replica keys callers' identities alike.
	IdentityBucket    = "toolbus_identity"
	IdentitySecretKey = "secret"
)

// maxServerNameLen bounds server names so that subjects stay short.
const maxServerNameLen = 64

// Every builder below that takes a server takes its configured name and
// puts ServerToken(name) in the subject, so that a name LiteLLM allows
// (deepwiki.mcp, "my server") is still one subject token; ParseSubject
// gives the name back.

// CallSubject is the subject a synchronous tools/call for server is sent on.
func CallSubject(server string) string { return callPrefix + ServerToken(server) }

// RPCSubject is the subject other MCP requests for server (resources,
// prompts, completion, ping; see RPCMethods) are relayed on.
func RPCSubject(server string) string { return rpcPrefix + ServerToken(server) }

// ListSubject is the subject a tools/list for server is sent on.
func ListSubject(server string) string { return listPrefix + ServerToken(server) }

// JobSubject is the subject an async job for server is published on; keyTag
// (see KeyTag) names the gateway key, so that the jobs one key has queued
// can be counted by subject.
func JobSubject(server, keyTag string) string {
	return jobsPrefix + ServerToken(server) + "." + keyTag
}

// ServerJobsSubject matches every job for server: the filter of the server's
// durable consumer.
func ServerJobsSubject(server string) string { return jobsPrefix + ServerToken(server) + ".*" }

// KeyJobsSubject matches every job of one gateway key, on any server.
func KeyJobsSubject(keyTag string) string { return jobsPrefix + "*." + keyTag }

// JobsConsumer is the durable pull consumer of server's jobs, shared by
// every worker that serves server.
func JobsConsumer(server string) string { return "toolbus-jobs-" + ServerToken(server) }

// CancelSubject is where the cancellation of job id is announced.
func CancelSubject(jobID string) string { return cancelPrefix + jobID }

// validToken reports whether s is 1 to 128 of [A-Za-z0-9_-]: a request or
// job id usable as one subject token.
func validToken(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// JobKey is the KV key of a job record. The owner is part of the key, so a
// caller can only ever address its own jobs.
func JobKey(owner, jobID string) string { return "job." + owner + "." + jobID }

// OwnerJobsKeys matches the KV keys of every job of owner.
func OwnerJobsKeys(owner string) string { return "job." + owner + ".*" }

// IdempotencyKey is the KV key that maps an owner's Idempotency-Key header
// (hashed) to a job id.
func IdempotencyKey(owner, idemHash string) string { return "idem." + owner + "." + idemHash }

// UsageKey is the KV key of the Usage of the gateway key whose KeyTag is
// keyTag.
func UsageKey(keyTag string) string { return "usage." + keyTag }

// ResultObject is the object store name of a job's result.
func ResultObject(owner, jobID string) string { return owner + "." + jobID }

// ValidServerName reports whether name is a plain server name: 1 to 64
// characters from [A-Za-z0-9_-]. Such a name is its own subject token
// (ServerToken), URL path segment and HTTP header name part
// (x-mcp-<server>-authorization). Other names LiteLLM allows are accepted
// too (ServerNameAllowed) and escaped in subjects.
func ValidServerName(name string) bool {
	if name == "" || len(name) > maxServerNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !plainNameByte(name[i]) {
			return false
		}
	}
	return true
}

func plainNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// ServerNameAllowed reports whether name can name a server: 1 to 64 bytes
// of UTF-8 with no control character, no comma (it separates the servers of
// a selection, /mcp/a,b), no slash (a name is one URL path segment) and no
// space at either end. That admits every name LiteLLM's config takes in
// practice (deepwiki.mcp, "My Server"; LiteLLM itself refuses only the tool
// separator, litellm/proxy/_experimental/mcp_server/utils.py
// validate_mcp_server_name), and toolbus also takes the separator.
func ServerNameAllowed(name string) bool {
	if name == "" || len(name) > maxServerNameLen || !utf8.ValidString(name) {
		return false
	}
	if strings.TrimSpace(name) != name || strings.ContainsAny(name, ",/") {
		return false
	}
	return !strings.ContainsFunc(name, unicode.IsControl)
}

// serverTokenEscape starts every escaped server token (ServerToken).
const serverTokenEscape = "__"

// ServerToken is the subject token of server name: the name itself when it
// is a plain name (ValidServerName) that does not begin with "__", else
// "__" followed by the name with each byte outside [A-Za-z0-9-] written as
// _ and two lowercase hex digits ("deepwiki.mcp" -> "__deepwiki_2emcp",
// "my server" -> "__my_20server"). The mapping is injective (a plain token
// never begins with "__", and an escaped one decodes one way:
// ServerFromToken), and its output is always 1 to 194 characters from
// [A-Za-z0-9_-]: one subject token, a valid JetStream consumer name and a
// valid NATS micro endpoint name.
func ServerToken(name string) string {
	if ValidServerName(name) && !strings.HasPrefix(name, serverTokenEscape) {
		return name
	}
	const hexDigits = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(serverTokenEscape) + 3*len(name))
	b.WriteString(serverTokenEscape)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if plainNameByte(c) && c != '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// ServerFromToken is the inverse of ServerToken: the server name of a
// subject token, and false when token is not one ServerToken makes of an
// allowed name (ServerNameAllowed).
func ServerFromToken(token string) (string, bool) {
	rest, escaped := strings.CutPrefix(token, serverTokenEscape)
	if !escaped {
		return token, ValidServerName(token)
	}
	// Only the canonical token of an allowed name decodes: no second
	// spelling of a name reaches a worker. The name is decoded into a
	// stack buffer (an allowed name is at most maxServerNameLen bytes);
	// each byte must be written as ServerToken writes it.
	var buf [maxServerNameLen]byte
	n := 0
	for i := 0; i < len(rest); i++ {
		if n == len(buf) {
			return "", false
		}
		c := rest[i]
		switch {
		case c == '_':
			if i+2 >= len(rest) {
				return "", false
			}
			hi, lo := unhex(rest[i+1]), unhex(rest[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			if c = byte(hi<<4 | lo); plainNameByte(c) && c != '_' {
				return "", false // ServerToken writes it as itself
			}
			i += 2
		case !plainNameByte(c):
			return "", false
		}
		buf[n] = c
		n++
	}
	name := string(buf[:n])
	// A plain name that does not begin with the escape is its own token,
	// never an escaped one.
	if !ServerNameAllowed(name) || ValidServerName(name) && !strings.HasPrefix(name, serverTokenEscape) {
		return "", false
	}
	return name, true
}

// unhex is the value of a lowercase hex digit, or -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// AnswerSubject is the subject an MCP client's answer to the upstream's
// request id, made during the call requestID, is published on (see
// ClientAnswer).
func AnswerSubject(requestID, id string) string { return answerPrefix + requestID + "." + id }

// NotifySubject is where server's notifications for subscriber go (see
// ServerNotification).
func NotifySubject(server, subscriber string) string {
	return notifyPrefix + ServerToken(server) + "." + subscriber
}

// UnsubscribeSubject is where unsubscriptions from server's resources are
// announced (see Unsubscribe).
func UnsubscribeSubject(server string) string { return unsubscribePrefix + ServerToken(server) }

// SubjectKind is what a toolbus subject carries: the subject's first token
// after SubjectRoot, so it doubles as a short label ("call", "list", ...).
type SubjectKind string

// The kinds of subject ParseSubject knows.
const (
	SubjectCall        SubjectKind = "call"        // CallSubject
	SubjectList        SubjectKind = "list"        // ListSubject
	SubjectRPC         SubjectKind = "rpc"         // RPCSubject
	SubjectJob         SubjectKind = "jobs"        // JobSubject
	SubjectCancel      SubjectKind = "cancel"      // CancelSubject
	SubjectUnsubscribe SubjectKind = "unsubscribe" // UnsubscribeSubject
)

// Subject is a parsed toolbus subject.
type Subject struct {
	Kind SubjectKind
	// Server is the server a call, list, rpc, job or unsubscribe subject
	// addresses.
	Server string
	// KeyTag is a job subject's gateway key tag (see KeyTag).
	KeyTag string
	// ID is the job or call request id a cancel subject names (a subject
	// token; whether it is a job id is ValidJobID's to say).
	ID string
}

// ParseSubject is the inverse of the subject builders above for the
// subjects a worker receives requests on: it returns the kind and the
// server (or id) of subject, and false for anything else - another prefix,
// an invalid server name or id, a wildcard. It does not allocate for a
// plain server name (ValidServerName), and allocates only the name for an
// escaped one.
func ParseSubject(subject string) (Subject, bool) {
	if rest, ok := strings.CutPrefix(subject, jobsPrefix); ok {
		s := Subject{Kind: SubjectJob}
		var token string
		token, s.KeyTag, ok = strings.Cut(rest, ".")
		if !ok || !validToken(s.KeyTag) {
			return Subject{}, false
		}
		s.Server, ok = ServerFromToken(token)
		return s, ok
	}
	rest, ok := strings.CutPrefix(subject, SubjectRoot+".")
	if !ok {
		return Subject{}, false
	}
	kind, rest, _ := strings.Cut(rest, ".")
	s := Subject{Kind: SubjectKind(kind)}
	switch s.Kind {
	case SubjectCall, SubjectList, SubjectRPC, SubjectUnsubscribe:
		s.Server, ok = ServerFromToken(rest)
		return s, ok
	case SubjectCancel:
		s.ID = rest
		return s, validToken(rest)
	}
	return Subject{}, false
}
