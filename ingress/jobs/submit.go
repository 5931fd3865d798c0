package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/natsconn"
	"github.com/toolbus/toolbus/contracts/telemetry"
)

// Submission is one async tools/call.
type Submission struct {
	KeyID     string
	Server    string
	Tool      string
	Arguments json.RawMessage
	// Owner is the caller's identity (frontdoor.Caller.Owner).
	Owner string
	// Token is the credential for the server (sealed into the job).
	Token   contracts.Token
	Timeout time.Duration
	// IdempotencyKey, if set, makes a resubmission return the first job.
	IdempotencyKey string
}

// Submit records the job as queued and publishes it. It returns the record
// and whether it already existed (same Idempotency-Key).
func (s *Store) Submit(ctx context.Context, in Submission) (*contracts.JobRecord, bool, *contracts.Error) {
	if len(in.IdempotencyKey) > maxIdempotencyKey {
		return nil, false, contracts.NewError(contracts.CodeInvalidRequest, "Idempotency-Key is longer than %d bytes", maxIdempotencyKey)
	}
	kv, _, stream, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, false, cerr
	}
	now := s.now().UTC()
	rec := &contracts.JobRecord{
		Type: contracts.TypeJobRecord, ID: contracts.NewJobID(now), Owner: in.Owner, KeyID: in.KeyID,
		Server: in.Server, Tool: in.Tool, Status: contracts.JobQueued, CreatedAt: now,
	}

	var idemKey string
	if in.IdempotencyKey != "" {
		rec.IdempotencyKey = contracts.HashIdempotencyKey(in.IdempotencyKey)
		idemKey = contracts.IdempotencyKey(in.Owner, rec.IdempotencyKey)
		digest := in.digest()
		if _, err := kv.Create(ctx, idemKey, []byte(rec.ID+"\n"+digest)); err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return nil, false, s.busError(err)
			}
			existing, cerr := s.existing(ctx, kv, in.Owner, idemKey, digest)
			return existing, existing != nil, cerr
		}
	}
	undo := func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = kv.Delete(cleanup, contracts.JobKey(in.Owner, rec.ID))
		if idemKey != "" {
			_ = kv.Delete(cleanup, idemKey)
		}
	}

	if cerr := s.checkQuota(ctx, kv, in.KeyID); cerr != nil { // a replay above is not refused
		undo()
		return nil, false, cerr
	}
	if cerr := s.checkCap(ctx, stream, in.KeyID); cerr != nil {
		undo()
		return nil, false, cerr
	}
	data, _ := json.Marshal(rec)
	if _, err := kv.Create(ctx, contracts.JobKey(in.Owner, rec.ID), data); err != nil {
		undo()
		if natsconn.StoreFull(err) {
			return nil, false, contracts.NewError(contracts.CodeStorageFull, "the job store is full")
		}
		return nil, false, s.busError(err)
	}

	req := &contracts.JobRequest{
		RequestHeader: contracts.RequestHeader{
			Type: contracts.TypeJobRequest, RequestID: rec.ID, Server: in.Server, KeyID: in.KeyID,
			TimeoutMS: in.Timeout.Milliseconds(), ExpiresUnixMS: now.Add(s.tokenLifetime(in.Timeout)).UnixMilli(),
		},
		Owner: in.Owner, Tool: in.Tool, Arguments: in.Arguments,
	}
	if !in.Token.IsZero() {
		// The seal binds the arguments as the message carries them.
		args, err := contracts.WirePayload(req.Arguments)
		if err != nil {
			undo()
			return nil, false, contracts.NewError(contracts.CodeInvalidRequest, "the arguments are not valid JSON")
		}
		req.Arguments = args
		sealed, err := s.sealer.Seal(in.Token, req.Binding())
		if err != nil {
			undo()
			s.log.Error().Err(err).Msg("sealing failed")
			return nil, false, contracts.NewError(contracts.CodeInternal, "sealing the credential failed")
		}
		req.Token, req.TokenFP = sealed, in.Token.Fingerprint()
	}
	msg, _ := json.Marshal(req)
	subject := contracts.JobSubject(in.Server, contracts.KeyTag(in.KeyID))
	// The caller's trace context goes with the job (worker/telemetry).
	out := &nats.Msg{Subject: subject, Data: msg, Header: telemetry.InjectNATS(ctx, nil)}
	if _, err := s.js.PublishMsg(ctx, out, jetstream.WithMsgID(rec.ID)); err != nil {
		undo()
		return nil, false, s.publishError(err)
	}
	s.addUsage(ctx, kv, in.KeyID, int64(len(data)))
	return rec, false, nil
}

// tokenLifetime covers the queue time and every attempt with its backoff.
func (s *Store) tokenLifetime(timeout time.Duration) time.Duration {
	lastBackoff := time.Duration(0)
	if n := len(s.cfg.Backoff); n > 0 {
		lastBackoff = s.cfg.Backoff[n-1].D()
	}
	return s.cfg.MaxQueueTime.D() + time.Duration(s.cfg.MaxAttempts)*(timeout+lastBackoff+s.cfg.AckWait.D()) + clockSkew
}

// digest is the hex SHA-256 of what the submission asks for (server, tool,
// arguments and budget), kept with its idempotency key: a replay must ask
// for the same.
func (in Submission) digest() string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(in.Server), []byte(in.Tool), in.Arguments, []byte(strconv.FormatInt(int64(in.Timeout), 10))} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// existing returns the job an idempotency key points to, or
// idempotency_conflict when the key was used for another request (digest).
// The entry holds "<job id>\n<digest>" (an older ingress wrote the id only).
func (s *Store) existing(ctx context.Context, kv jetstream.KeyValue, owner, idemKey, digest string) (*contracts.JobRecord, *contracts.Error) {
	entry, err := kv.Get(ctx, idemKey)
	if err != nil {
		return nil, s.busError(err)
	}
	id, stored, _ := strings.Cut(string(entry.Value()), "\n")
	if stored != "" && stored != digest {
		return nil, contracts.NewError(contracts.CodeIdempotencyConflict, "this Idempotency-Key was used for another request")
	}
	rec, cerr := s.Get(ctx, owner, id)
	if cerr != nil {
		// The first submission is still being recorded, or failed and is
		// being undone: the caller may retry.
		return nil, contracts.NewError(contracts.CodeOverloaded, "a submission with this Idempotency-Key is in progress")
	}
	return rec, nil
}

// checkCap refuses a submit when the key already has its maximum of jobs in
// the stream (queued or running: the work queue holds a job until it is
// acked). Counting them is a stream info request, which costs the NATS
// server more than the submit itself; so a key's count is read again only
// when it is older than capRecount or the key is past half its cap, and
// otherwise the jobs this Store accepted since are added to it. A key far
// from its cap costs one count per capRecount; near it, every submit counts
// exactly. (Other ingress replicas' submits are seen at the next count:
// they can overshoot the cap only by what they accept within capRecount
// while this replica sees the key under half full.)
func (s *Store) checkCap(ctx context.Context, stream jetstream.Stream, keyID string) *contracts.Error {
	limit := uint64(s.cfg.MaxQueuedPerKey)
	tag := contracts.KeyTag(keyID)
	now := s.now()
	s.countsMu.Lock()
	if c := s.counts[tag]; c != nil && now.Sub(c.at) < capRecount && 2*(c.n+c.added) < limit {
		c.added++
		s.countsMu.Unlock()
		return nil
	}
	s.countsMu.Unlock()

	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(contracts.KeyJobsSubject(tag)))
	if err != nil {
		return s.busError(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	s.countsMu.Lock()
	defer s.countsMu.Unlock()
	if _, ok := s.counts[tag]; !ok && len(s.counts) >= maxCapCounts {
		clear(s.counts) // counts are cheap to take again
	}
	c := &keyCount{n: n, at: now}
	s.counts[tag] = c
	if n >= limit {
		return contracts.NewError(contracts.CodeTooManyJobs, "this key has %d jobs queued or running, the most it may", n)
	}
	c.added = 1
	return nil
}

func (s *Store) publishError(err error) *contracts.Error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.ErrorCode(10077) { // JSStreamStoreFailedF: stream limits reached
		return contracts.NewError(contracts.CodeOverloaded, "the job queue is full")
	}
	return s.busError(err)
}
