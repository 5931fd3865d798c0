package contracts

import "strings"

// Subject layout. All toolbus traffic lives below SubjectRoot so that one
// permission (or one raw subscriber, in tests) covers it.
const (
	// SubjectRoot is the prefix of every toolbus subject.
	SubjectRoot = "toolbus.v1"

	callPrefix = SubjectRoot + ".call."
	listPrefix = SubjectRoot + ".list."
	jobsPrefix = SubjectRoot + ".jobs."

	// AllCallsSubject matches the synchronous tools/call subject of every server.
	AllCallsSubject = callPrefix + "*"
	// AllListsSubject matches the tools/list subject of every server.
	AllListsSubject = listPrefix + "*"
	// PingSubject is answered by every worker (no queue group): readiness
	// checks and pool views gather the replies.
	PingSubject = SubjectRoot + ".ping"

	// AllJobsSubject matches every async job subject (the JetStream stream's filter).
	AllJobsSubject = jobsPrefix + ">"

	// WorkerQueueGroup is the queue group every worker joins on every call and
	// list subject, so that each request reaches exactly one worker.
	WorkerQueueGroup = "toolbus-workers"

	// JobsStream is the JetStream work-queue stream that holds async jobs.
	JobsStream = "TOOLBUS_JOBS"
	// JobsConsumer is the one durable pull consumer all workers share.
	JobsConsumer = "toolbus-workers"
	// JobsBucket is the JetStream KV bucket that holds job records.
	JobsBucket = "toolbus_jobs"
)

// maxServerNameLen bounds server names so that subjects stay short.
const maxServerNameLen = 64

// CallSubject is the subject a synchronous tools/call for server is sent on.
func CallSubject(server string) string { return callPrefix + server }

// ListSubject is the subject a tools/list for server is sent on.
func ListSubject(server string) string { return listPrefix + server }

// JobSubject is the subject an async job for server is published on.
func JobSubject(server string) string { return jobsPrefix + server }

// ServerFromCallSubject returns the server a call subject addresses.
func ServerFromCallSubject(subject string) (string, bool) {
	return serverFrom(subject, callPrefix)
}

// ServerFromListSubject returns the server a list subject addresses.
func ServerFromListSubject(subject string) (string, bool) {
	return serverFrom(subject, listPrefix)
}

func serverFrom(subject, prefix string) (string, bool) {
	server, ok := strings.CutPrefix(subject, prefix)
	if !ok || !ValidServerName(server) {
		return "", false
	}
	return server, true
}

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
