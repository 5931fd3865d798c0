// Package jobs is the ingress side of async tool calls: it records a job as
// queued, publishes it to the JetStream work-queue stream, and reads, waits
// for, lists and cancels jobs. Workers run them and write every later state.
//
// All state lives in NATS (the jobs stream, the job KV bucket and the result
// object store), so any ingress replica can answer any poll. A job's KV key
// holds its owner (gateway key + user-token fingerprint): another caller's
// lookup addresses another key and finds nothing, so foreign jobs are
// indistinguishable from missing ones (404, not 403).
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/contracts/telemetry"
)

// Bounds.
const (
	// clockSkew is added to a job token's expiry for clocks that differ.
	clockSkew = 30 * time.Second
	// casRetries bounds compare-and-set loops on a job record.
	casRetries = 16
	// MaxListLimit bounds one page of List.
	MaxListLimit = 100
	// maxIdempotencyKey bounds an Idempotency-Key header.
	maxIdempotencyKey = 256
	// capRecount is how long a key's count of jobs in the stream is used
	// before it is read again (see checkCap).
	capRecount = 100 * time.Millisecond
	// maxCapCounts bounds the keys whose counts are kept.
	maxCapCounts = 4096
)

// Store reads and writes jobs. Safe for concurrent use.
type Store struct {
	js     jetstream.JetStream
	nc     *nats.Conn
	cfg    config.Jobs
	sealer *contracts.Sealer
	log    zerolog.Logger
	now    func() time.Time

	mu     sync.Mutex
	kv     jetstream.KeyValue
	obj    jetstream.ObjectStore
	stream jetstream.Stream

	countsMu sync.Mutex
	counts   map[string]*keyCount // by key tag; see checkCap
}

// keyCount is what the Store knows of one key's jobs in the stream: n at
// the count taken at, plus the jobs it has accepted since.
type keyCount struct {
	n     uint64
	at    time.Time
	added uint64
}

// New returns a Store on nc. The stream, bucket and object store are created
// by the workers; the Store binds to them on first use.
func New(nc *nats.Conn, sealer *contracts.Sealer, cfg config.Jobs, log zerolog.Logger) (*Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return &Store{js: js, nc: nc, cfg: cfg, sealer: sealer, log: log, now: time.Now, counts: make(map[string]*keyCount)}, nil
}

// bind finds the jobs stream, bucket and object store.
func (s *Store) bind(ctx context.Context) (jetstream.KeyValue, jetstream.ObjectStore, jetstream.Stream, *contracts.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, s.obj, s.stream, nil
	}
	notReady := func(err error) *contracts.Error {
		s.log.Warn().Err(err).Msg("async jobs are not set up yet")
		return contracts.NewError(contracts.CodeNoWorkers, "async jobs are not set up: no worker has started yet")
	}
	stream, err := s.js.Stream(ctx, contracts.JobsStream)
	if err != nil {
		return nil, nil, nil, notReady(err)
	}
	kv, err := s.js.KeyValue(ctx, contracts.JobsBucket)
	if err != nil {
		return nil, nil, nil, notReady(err)
	}
	obj, err := s.js.ObjectStore(ctx, contracts.ResultsBucket)
	if err != nil {
		return nil, nil, nil, notReady(err)
	}
	s.kv, s.obj, s.stream = kv, obj, stream
	return kv, obj, stream, nil
}

// Submission is one async tools/call.
type Submission struct {
	KeyID     string
	Server    string
	Tool      string
	Arguments json.RawMessage
	// Owner is the caller: contracts.Owner(key, fingerprint of the caller's
	// Authorization).
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
		if _, err := kv.Create(ctx, idemKey, []byte(rec.ID)); err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return nil, false, s.busError(err)
			}
			existing, cerr := s.existing(ctx, kv, in.Owner, idemKey)
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

	if cerr := s.checkCap(ctx, stream, in.KeyID); cerr != nil {
		undo()
		return nil, false, cerr
	}
	data, _ := json.Marshal(rec)
	if _, err := kv.Create(ctx, contracts.JobKey(in.Owner, rec.ID), data); err != nil {
		undo()
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
		sealed, err := s.sealer.Seal(in.Token.Reveal(), req.Binding())
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

// existing returns the job an idempotency key points to.
func (s *Store) existing(ctx context.Context, kv jetstream.KeyValue, owner, idemKey string) (*contracts.JobRecord, *contracts.Error) {
	entry, err := kv.Get(ctx, idemKey)
	if err != nil {
		return nil, s.busError(err)
	}
	rec, cerr := s.Get(ctx, owner, string(entry.Value()))
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

func (s *Store) busError(err error) *contracts.Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return contracts.NewError(contracts.CodeTimeout, "the request's deadline passed")
	}
	s.log.Warn().Err(err).Msg("job store error")
	return contracts.NewError(contracts.CodeNoWorkers, "the job store is unavailable")
}

// notFound is the one answer for missing, expired and foreign jobs.
func notFound(id string) *contracts.Error {
	return contracts.NewError(contracts.CodeNotFound, "no job %q", id)
}

// Get returns owner's job id.
func (s *Store) Get(ctx context.Context, owner, id string) (*contracts.JobRecord, *contracts.Error) {
	rec, _, cerr := s.get(ctx, owner, id)
	return rec, cerr
}

func (s *Store) get(ctx context.Context, owner, id string) (*contracts.JobRecord, uint64, *contracts.Error) {
	if !contracts.ValidJobID(id) {
		return nil, 0, notFound(id)
	}
	kv, _, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, 0, cerr
	}
	entry, err := kv.Get(ctx, contracts.JobKey(owner, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, notFound(id)
	}
	if err != nil {
		return nil, 0, s.busError(err)
	}
	rec, err := contracts.DecodeJobRecord(entry.Value())
	if err != nil {
		s.log.Error().Str("job_id", id).Err(err).Msg("unreadable job record")
		return nil, 0, contracts.NewError(contracts.CodeInternal, "the job record is unreadable")
	}
	return rec, entry.Revision(), nil
}

// Wait returns owner's job id as soon as it is terminal, or when wait ends
// (whichever is first), bounded by ctx.
func (s *Store) Wait(ctx context.Context, owner, id string, wait time.Duration) (*contracts.JobRecord, *contracts.Error) {
	rec, cerr := s.Get(ctx, owner, id)
	if cerr != nil || rec.Status.Terminal() || wait <= 0 {
		return rec, cerr
	}
	kv, _, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, cerr
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	w, err := kv.Watch(ctx, contracts.JobKey(owner, id))
	if err != nil {
		return rec, nil
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return rec, nil // the wait is over: the latest state
		case entry, ok := <-w.Updates():
			if !ok {
				return rec, nil
			}
			if entry == nil { // end of the initial values
				continue
			}
			if entry.Operation() != jetstream.KeyValuePut {
				return nil, notFound(id) // expired or purged meanwhile
			}
			if next, err := contracts.DecodeJobRecord(entry.Value()); err == nil {
				rec = next
				if rec.Status.Terminal() {
					return rec, nil
				}
			}
		}
	}
}

// List returns owner's jobs, newest first, optionally only those in status,
// at most limit, starting after cursor (a job id); next is the cursor of the
// following page, "" at the end.
func (s *Store) List(ctx context.Context, owner string, status contracts.JobStatus, limit int, cursor string) ([]*contracts.JobRecord, string, *contracts.Error) {
	kv, _, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, "", cerr
	}
	lister, err := kv.ListKeysFiltered(ctx, contracts.OwnerJobsKeys(owner))
	if err != nil {
		return nil, "", s.busError(err)
	}
	prefix := len(contracts.JobKey(owner, ""))
	var ids []string
	for key := range lister.Keys() {
		if id := key[prefix:]; cursor == "" || id < cursor {
			ids = append(ids, id)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	var out []*contracts.JobRecord
	for i, id := range ids {
		rec, cerr := s.Get(ctx, owner, id)
		if cerr != nil {
			if cerr.Code == contracts.CodeNotFound {
				continue // expired between listing and reading
			}
			return nil, "", cerr
		}
		if status != "" && rec.Status != status {
			continue
		}
		out = append(out, rec)
		if len(out) == limit {
			if i < len(ids)-1 {
				return out, id, nil
			}
			break
		}
	}
	return out, "", nil
}

// Cancel cancels owner's job id: a queued job never runs; a running one has
// its upstream call cancelled by its worker. A terminal job is returned as is.
func (s *Store) Cancel(ctx context.Context, owner, id string) (*contracts.JobRecord, *contracts.Error) {
	kv, _, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, cerr
	}
	for range casRetries {
		rec, rev, cerr := s.get(ctx, owner, id)
		if cerr != nil {
			return nil, cerr
		}
		if rec.Status.Terminal() {
			return rec, nil
		}
		now := s.now().UTC()
		rec.Status, rec.FinishedAt = contracts.JobCancelled, &now
		rec.Error = contracts.NewError(contracts.CodeCancelled, "cancelled by the caller")
		data, _ := json.Marshal(rec)
		if _, err := kv.Update(ctx, contracts.JobKey(owner, id), data, rev); err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
				continue // the worker moved it meanwhile: decide again
			}
			return nil, s.busError(err)
		}
		// Tell the worker running it, if any. The record is already final; a
		// lost notice is caught by the worker's periodic re-read of the record.
		_ = s.nc.Publish(contracts.CancelSubject(id), nil)
		return rec, nil
	}
	return nil, contracts.NewError(contracts.CodeOverloaded, "the job changed too often to cancel; try again")
}

// Result returns the job's result: inline, or read from the object store.
func (s *Store) Result(ctx context.Context, rec *contracts.JobRecord) (json.RawMessage, *contracts.Error) {
	if rec.ResultObject == "" {
		return rec.Result, nil
	}
	_, obj, _, cerr := s.bind(ctx)
	if cerr != nil {
		return nil, cerr
	}
	data, err := obj.GetBytes(ctx, rec.ResultObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, notFound(rec.ID)
	}
	if err != nil {
		return nil, s.busError(err)
	}
	return data, nil
}
