package jobs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
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

func (s *Store) busError(err error) *contracts.Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return contracts.NewError(contracts.CodeTimeout, "the request's deadline passed")
	}
	s.log.Warn().Err(err).Msg("job store error")
	return contracts.NewError(contracts.CodeNoWorkers, "the job store is unavailable")
}

// notFound is the one answer for missing, expired and foreign jobs.
func notFound(id string) *contracts.Error {
	return contracts.NewError(contracts.CodeNotFound, "no job %q", contracts.Clip(id))
}
