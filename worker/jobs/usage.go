package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
)

// addUsage counts bytes of stored result against the quota of gateway key
// keyID (contracts.Usage, under contracts.UsageKey in the records bucket):
// ingresses refuse the key's submits once it is over. A failure is logged,
// not the job's: the result is stored.
func (r *Runner) addUsage(ctx context.Context, kv jetstream.KeyValue, keyID string, bytes int64) {
	key := contracts.UsageKey(contracts.KeyTag(keyID))
	for range casRetries {
		entry, err := kv.Get(ctx, key)
		var value []byte
		var rev uint64
		switch {
		case err == nil:
			value, rev = entry.Value(), entry.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			r.log.Warn().Str("key", keyID).Str("error", err.Error()).Msg("usage not counted")
			return
		}
		u, err := contracts.DecodeUsage(value)
		if err != nil {
			u = &contracts.Usage{} // unreadable: start again
		}
		u.Add(r.now(), r.jobs.Retention.D(), bytes, 0)
		data, _ := json.Marshal(u)
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil || !casConflict(err) {
			if err != nil {
				r.log.Warn().Str("key", keyID).Str("error", err.Error()).Msg("usage not counted")
			}
			return
		}
	}
}

// casRetries bounds the compare-and-set loop of addUsage.
const casRetries = 16

// casConflict reports whether err is a lost compare-and-set race.
func casConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// storeFull reports whether err is JetStream refusing a write because the
// stream (a bucket, the object store) or the server's storage is full.
func storeFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == 10077 || apiErr.ErrorCode == 10023 /* stream store failed, insufficient resources */) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "maximum bytes exceeded") || strings.Contains(msg, "insufficient resources")
}
