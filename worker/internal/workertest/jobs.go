package workertest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/contractstest"
)

// Job describes an async job as an ingress submits it.
type Job struct {
	Server, Tool string
	Args         string // JSON object, or empty
	Token        string // the user's credential; empty for none
	KeyID        string // default "team-a"
	// Owner defaults to contracts.Owner(KeyID, the token's fingerprint).
	Owner   string
	Timeout time.Duration // default 5s
	// Expires defaults to now + a minute of queue time + Timeout.
	Expires time.Time
}

// JobRequest returns the job's request, with its token sealed to the job
// exactly as an ingress seals it, and the job's queued record.
func (k Keys) JobRequest(t testing.TB, j Job) (*contracts.JobRequest, *contracts.JobRecord) {
	t.Helper()
	if j.KeyID == "" {
		j.KeyID = "team-a"
	}
	if j.Timeout == 0 {
		j.Timeout = 5 * time.Second
	}
	now := time.Now()
	if j.Expires.IsZero() {
		j.Expires = now.Add(time.Minute + j.Timeout)
	}
	fp := contracts.Fingerprint(j.Token)
	if j.Owner == "" {
		j.Owner = contracts.Owner(j.KeyID, fp)
	}
	req := &contracts.JobRequest{
		RequestHeader: contracts.RequestHeader{
			Type:          contracts.TypeJobRequest,
			RequestID:     contracts.NewJobID(now),
			Server:        j.Server,
			KeyID:         j.KeyID,
			TimeoutMS:     j.Timeout.Milliseconds(),
			ExpiresUnixMS: j.Expires.UnixMilli(),
			TokenFP:       fp,
		},
		Owner: j.Owner,
		Tool:  j.Tool,
	}
	if j.Args != "" {
		req.Arguments = json.RawMessage(j.Args)
	}
	k.seal(t, &req.RequestHeader, j.Token, req.Binding())
	return req, RecordOf(req, now)
}

// RecordOf is the queued record an ingress writes for req.
func RecordOf(req *contracts.JobRequest, created time.Time) *contracts.JobRecord {
	return &contracts.JobRecord{
		Type: contracts.TypeJobRecord, ID: req.JobID(), Owner: req.Owner, KeyID: req.KeyID,
		Server: req.Server, Tool: req.Tool, Status: contracts.JobQueued, CreatedAt: created.UTC(),
	}
}

// CreateRecord writes rec with kv.Create at its key and returns the revision.
func CreateRecord(t testing.TB, kv jetstream.KeyValue, rec *contracts.JobRecord) uint64 {
	t.Helper()
	rev, err := kv.Create(contractstest.Ctx(t), contracts.JobKey(rec.Owner, rec.ID), Encode(t, rec))
	if err != nil {
		t.Fatalf("create job record: %v", err)
	}
	return rev
}

// PublishJob publishes req on subject (default: its server's job subject
// for its key) with the job id as Nats-Msg-Id, as an ingress does.
func PublishJob(t testing.TB, js jetstream.JetStream, req *contracts.JobRequest, subject string) {
	t.Helper()
	if subject == "" {
		subject = contracts.JobSubject(req.Server, contracts.KeyTag(req.KeyID))
	}
	ack, err := js.Publish(contractstest.Ctx(t), subject, Encode(t, req), jetstream.WithMsgID(req.JobID()))
	if err != nil {
		t.Fatalf("publish job: %v", err)
	}
	if ack.Duplicate {
		t.Fatalf("job %s published twice", req.JobID())
	}
}

// SubmitJob does what an ingress does on submit: it creates the job's
// queued record, then publishes the job. It returns the record key.
func (k Keys) SubmitJob(t testing.TB, js jetstream.JetStream, kv jetstream.KeyValue, j Job) (*contracts.JobRequest, string) {
	t.Helper()
	req, rec := k.JobRequest(t, j)
	CreateRecord(t, kv, rec)
	PublishJob(t, js, req, "")
	return req, req.RecordKey()
}

// Record reads a job record (nil when there is none) and its revision.
func Record(t testing.TB, kv jetstream.KeyValue, key string) (*contracts.JobRecord, uint64) {
	t.Helper()
	e, err := kv.Get(contractstest.Ctx(t), key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	rec, err := contracts.DecodeJobRecord(e.Value())
	if err != nil {
		t.Fatalf("record %s: %v", e.Value(), err)
	}
	return rec, e.Revision()
}

// WaitRecord polls the record at key until cond holds, failing the test
// after contractstest.WaitTimeout, and returns it.
func WaitRecord(t testing.TB, kv jetstream.KeyValue, key, what string, cond func(*contracts.JobRecord) bool) *contracts.JobRecord {
	t.Helper()
	var rec *contracts.JobRecord
	contractstest.Eventually(t, what, func() bool {
		rec, _ = Record(t, kv, key)
		return rec != nil && cond(rec)
	})
	return rec
}

// Terminal waits for the record at key to reach a terminal state.
func Terminal(t testing.TB, kv jetstream.KeyValue, key string) *contracts.JobRecord {
	t.Helper()
	return WaitRecord(t, kv, key, "job "+key+" to end", func(r *contracts.JobRecord) bool { return r.Status.Terminal() })
}

// UpdateRecord applies change to the record at key with compare-and-set,
// again on a conflict, and returns the record written.
func UpdateRecord(t testing.TB, kv jetstream.KeyValue, key string, change func(*contracts.JobRecord)) *contracts.JobRecord {
	t.Helper()
	for {
		rec, rev := Record(t, kv, key)
		if rec == nil {
			t.Fatalf("update %s: no record", key)
		}
		change(rec)
		_, err := kv.Update(contractstest.Ctx(t), key, Encode(t, rec), rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			t.Fatalf("update %s: %v", key, err)
		}
		return rec
	}
}

// CancelJob does what an ingress does on DELETE: it moves a queued or
// running record to cancelled (compare-and-set), then, if announce, says so
// on the job's cancel subject.
func CancelJob(t testing.TB, js jetstream.JetStream, kv jetstream.KeyValue, key string, announce bool) {
	t.Helper()
	rec := UpdateRecord(t, kv, key, func(rec *contracts.JobRecord) {
		if rec.Status.Terminal() {
			t.Fatalf("cancel %s: record %+v", key, rec)
		}
		now := time.Now().UTC()
		rec.Status, rec.FinishedAt = contracts.JobCancelled, &now
		rec.Error = contracts.NewError(contracts.CodeCancelled, "cancelled by the caller")
	})
	if announce {
		if err := js.Conn().Publish(contracts.CancelSubject(rec.ID), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// Drained waits until the consumer of server has no job delivered and
// unacknowledged, and the stream holds none of server's jobs (every one
// was acked or terminated).
func Drained(t testing.TB, js jetstream.JetStream, server string) {
	t.Helper()
	contractstest.Eventually(t, "the jobs of "+server+" to be settled", func() bool {
		c, err := js.Consumer(contractstest.Ctx(t), contracts.JobsStream, contracts.JobsConsumer(server))
		if err != nil {
			return false
		}
		info, err := c.Info(contractstest.Ctx(t))
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	})
}
