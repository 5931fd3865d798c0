package contracts

import "strings"

// Subject layout. All toolbus traffic lives below SubjectRoot so that one
// permission (or one raw subscriber, in tests) covers it.
const (
	// SubjectRoot is the prefix of every toolbus subject.
	SubjectRoot = "toolbus.v1"

	callPrefix   = SubjectRoot + ".call."
	rpcPrefix    = SubjectRoot + ".rpc."
	listPrefix   = SubjectRoot + ".list."
	jobsPrefix   = SubjectRoot + ".jobs."
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
)

// maxServerNameLen bounds server names so that subjects stay short.
const maxServerNameLen = 64

// CallSubject is the subject a synchronous tools/call for server is sent on.
func CallSubject(server string) string { return callPrefix + server }

// RPCSubject is the subject other MCP requests for server (resources,
// prompts, completion, ping; see RPCMethods) are relayed on.
func RPCSubject(server string) string { return rpcPrefix + server }

// ListSubject is the subject a tools/list for server is sent on.
func ListSubject(server string) string { return listPrefix + server }

// JobSubject is the subject an async job for server is published on; keyTag
// (see KeyTag) names the gateway key, so that the jobs one key has queued
// can be counted by subject.
func JobSubject(server, keyTag string) string { return jobsPrefix + server + "." + keyTag }

// ServerJobsSubject matches every job for server: the filter of the server's
// durable consumer.
func ServerJobsSubject(server string) string { return jobsPrefix + server + ".*" }

// KeyJobsSubject matches every job of one gateway key, on any server.
func KeyJobsSubject(keyTag string) string { return jobsPrefix + "*." + keyTag }

// JobsConsumer is the durable pull consumer of server's jobs, shared by
// every worker that serves server.
func JobsConsumer(server string) string { return "toolbus-jobs-" + server }

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

// ResultObject is the object store name of a job's result.
func ResultObject(owner, jobID string) string { return owner + "." + jobID }

// ValidServerName reports whether name can name a server: 1 to 64 characters
// from [A-Za-z0-9_-]. The set keeps a name usable as one NATS subject token,
// a URL path segment and an HTTP header name part (x-mcp-<server>-authorization).
func ValidServerName(name string) bool {
	if name == "" || len(name) > maxServerNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// AnswerSubject is the subject an MCP client's answer to the upstream's
// request id, made during the call requestID, is published on (see
// ClientAnswer).
func AnswerSubject(requestID, id string) string { return answerPrefix + requestID + "." + id }

// NotifySubject is where server's notifications for subscriber go (see
// ServerNotification).
func NotifySubject(server, subscriber string) string {
	return notifyPrefix + server + "." + subscriber
}

// UnsubscribeSubject is where unsubscriptions from server's resources are
// announced (see Unsubscribe).
func UnsubscribeSubject(server string) string { return unsubscribePrefix + server }

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
// an invalid server name or id, a wildcard. It does not allocate.
func ParseSubject(subject string) (Subject, bool) {
	rest, ok := strings.CutPrefix(subject, SubjectRoot+".")
	if !ok {
		return Subject{}, false
	}
	kind, rest, _ := strings.Cut(rest, ".")
	s := Subject{Kind: SubjectKind(kind)}
	switch s.Kind {
	case SubjectCall, SubjectList, SubjectRPC, SubjectUnsubscribe:
		s.Server = rest
		return s, ValidServerName(rest)
	case SubjectJob:
		s.Server, s.KeyTag, ok = strings.Cut(rest, ".")
		return s, ok && ValidServerName(s.Server) && validToken(s.KeyTag)
	case SubjectCancel:
		s.ID = rest
		return s, validToken(rest)
	}
	return Subject{}, false
}
