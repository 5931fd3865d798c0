package contracts

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"time"
)

// Async jobs.
//
// An ingress writes a job's record (queued) to the JobsBucket KV bucket, then
// publishes a JobRequest on JobSubject(server, KeyTag(key)) to the JobsStream
// work-queue stream, with the job id as Nats-Msg-Id. A worker serving the
// server takes it from JobsConsumer(server), moves the record through the
// state machine below with compare-and-set updates, writes the result, and
// only then acknowledges the message. The record, never the message, is the
// truth: a redelivered message whose record is already terminal is acked
// without running again, so the recorded result is written once.
//
//	queued ──► running ──► succeeded
//	  │  ▲        │ └─────► failed
//	  │  └────────┤         (retryable failure with attempts left: back to queued)
//	  │           └───────► cancelled   (DELETE while running)
//	  ├──────────────────► cancelled   (DELETE while queued: never runs)
//	  └──────────────────► expired     (not started before its token expired)

// Message and record types.
const (
	TypeJobRequest = "toolbus.job.request.v1"
	TypeJobRecord  = "toolbus.job.record.v1"
)

// OpJob is the operation a job's sealed token is bound to.
const OpJob = "jobs/call"

// JobStatus is a job's state.
type JobStatus string

// The job states.
const (
	JobQueued    JobStatus = "queued"
	JobRunning   JobStatus = "running"
	JobSucceeded JobStatus = "succeeded"
	JobFailed    JobStatus = "failed"
	JobCancelled JobStatus = "cancelled"
	JobExpired   JobStatus = "expired"
)

// Terminal reports whether s is final.
func (s JobStatus) Terminal() bool {
	switch s {
	case JobSucceeded, JobFailed, JobCancelled, JobExpired:
		return true
	}
	return false
}

// Valid reports whether s is one of the job states.
func (s JobStatus) Valid() bool { return s == JobQueued || s == JobRunning || s.Terminal() }

// CanBecome reports whether the state machine allows s → next.
func (s JobStatus) CanBecome(next JobStatus) bool {
	switch s {
	case JobQueued:
		return next == JobRunning || next == JobCancelled || next == JobExpired
	case JobRunning:
		return next == JobSucceeded || next == JobFailed || next == JobCancelled || next == JobQueued
	}
	return false
}

// CodeResultTooLarge fails a job whose result exceeds the result size limit.
const CodeResultTooLarge ErrorCode = "result_too_large"

// MaxJobResultBytes is the largest result a job records.
const MaxJobResultBytes = 8 << 20

// JobRequest is the message in the jobs stream. It carries everything a
// worker needs; the sealed token in it is bound to the job's record key.
//
// Its header's RequestID is the job id, which travels as "job_id" (there is
// no "request_id" member): MarshalJSON and UnmarshalJSON rename it, so the
// header stays one struct for every request and the wire stays as it was.
type JobRequest struct {
	RequestHeader
	Owner     string          `json:"owner"`
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
}

// jobRequestFields is JobRequest without its JSON methods.
type jobRequestFields JobRequest

// jobRequestWire is a JobRequest's encoding: the header's request id is
// job_id. Its own RequestID, shallower than the header's, hides that one
// from encoding/json; it is always empty, so it is never encoded, and a
// request_id member in a message is ignored as before.
type jobRequestWire struct {
	JobID     string `json:"job_id"`
	RequestID string `json:"request_id,omitempty"`
	jobRequestFields
}

// MarshalJSON encodes the request with its id as job_id.
func (r JobRequest) MarshalJSON() ([]byte, error) {
	w := jobRequestWire{JobID: r.RequestID, jobRequestFields: jobRequestFields(r)}
	return json.Marshal(&w)
}

// UnmarshalJSON decodes a request whose id is job_id.
func (r *JobRequest) UnmarshalJSON(data []byte) error {
	var w jobRequestWire
	err := json.Unmarshal(data, &w)
	*r = JobRequest(w.jobRequestFields)
	r.RequestID = w.JobID
	return err
}

// JobID returns the job's id (the header's RequestID).
func (r *JobRequest) JobID() string { return r.RequestID }

// RecordKey is the KV key of the job's record.
func (r *JobRequest) RecordKey() string { return JobKey(r.Owner, r.RequestID) }

// Binding is what the job's sealed token is bound to: the job, its server
// and tool, its gateway key, and its record (where the answer goes).
func (r *JobRequest) Binding() Binding {
	return r.binding(OpJob, r.Tool, r.RecordKey(), "", r.Arguments)
}

// DecodeJobRequest decodes and validates a JobRequest.
func DecodeJobRequest(data []byte) (*JobRequest, error) { return decodeValid[JobRequest](data) }

// Validate checks the fields a worker relies on.
func (r *JobRequest) Validate() error {
	if err := r.RequestHeader.Validate(TypeJobRequest); err != nil {
		return err
	}
	switch {
	case !ValidJobID(r.RequestID):
		return badMessage("invalid job_id")
	case !validOwner(r.Owner):
		return badMessage("invalid owner")
	case r.ExpiresUnixMS <= 0:
		return badMessage("expires_unix_ms must be positive")
	}
	return validateTool(r.Tool, r.Arguments)
}

// JobProgress is the latest MCP progress notification of a running job.
type JobProgress struct {
	Progress float64  `json:"progress"`
	Total    *float64 `json:"total,omitempty"`
	Message  string   `json:"message,omitempty"`
}

// JobRecord is a job's state in the JobsBucket. It never holds a token.
type JobRecord struct {
	Type       string       `json:"type"`
	ID         string       `json:"id"`
	Owner      string       `json:"owner"`
	KeyID      string       `json:"key_id"`
	Server     string       `json:"server"`
	Tool       string       `json:"tool"`
	Status     JobStatus    `json:"status"`
	CreatedAt  time.Time    `json:"created_at"`
	StartedAt  *time.Time   `json:"started_at,omitempty"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
	Attempts   int          `json:"attempts"`
	Progress   *JobProgress `json:"progress,omitempty"`
	// Result is the MCP CallToolResult, inline when small; ResultObject
	// names it in the ResultsBucket object store when it is not.
	Result       json.RawMessage `json:"result,omitempty"`
	ResultObject string          `json:"result_object,omitempty"`
	ResultBytes  int             `json:"result_bytes,omitempty"`
	// Error is the failure of a failed, cancelled or expired job, or of the
	// last attempt of a job queued again for a retry.
	Error *Error `json:"error,omitempty"`
	// IdempotencyKey is the hash of the submit's Idempotency-Key header.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// DecodeJobRecord decodes a JobRecord.
func DecodeJobRecord(data []byte) (*JobRecord, error) {
	var r JobRecord
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if r.Type != TypeJobRecord || !ValidJobID(r.ID) || !r.Status.Valid() {
		return nil, badMessage("not a valid job record")
	}
	return &r, nil
}

// Job ids are 28 lowercase hex digits: 12 of the Unix time in ms, then 16
// random. They sort by creation time, which lists use (newest first).
const jobIDLen = 28

// NewJobID returns a new job id created at now.
func NewJobID(now time.Time) string {
	var b [14]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(b[:6], ms[2:])
	_, _ = rand.Read(b[6:])
	return hexString(b[:])
}

// ValidJobID reports whether id has the form of a job id.
func ValidJobID(id string) bool { return len(id) == jobIDLen && isLowerHex(id) }

// Owner returns the owner tag of jobs submitted with gateway key keyID and
// a user token with fingerprint tokenFP ("" for none): a job is readable
// only by the same key and the same user.
func Owner(keyID, tokenFP string) string {
	var buf [256]byte
	in := binary.AppendUvarint(append(buf[:0], "toolbus.owner.v1\x00"...), uint64(len(keyID)))
	in = append(append(in, keyID...), tokenFP...)
	sum := sha256.Sum256(in)
	return hexString(sum[:16])
}

// KeyTag returns the subject token that names gateway key keyID in job subjects.
func KeyTag(keyID string) string {
	var buf [256]byte
	sum := sha256.Sum256(append(append(buf[:0], "toolbus.keytag.v1\x00"...), keyID...))
	return hexString(sum[:8])
}

// HashIdempotencyKey returns the form an Idempotency-Key is stored in.
func HashIdempotencyKey(key string) string {
	var buf [256]byte
	sum := sha256.Sum256(append(append(buf[:0], "toolbus.idempotency.v1\x00"...), key...))
	return hexString(sum[:16])
}

func validOwner(o string) bool { return len(o) == 32 && isLowerHex(o) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
