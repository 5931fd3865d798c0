package natsconn

import (
	"context"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// kvRetries bounds UpdateKV's compare-and-set loop.
const kvRetries = 16

// UpdateKV sets key in kv to change(the current value), compare-and-set:
// a write that raced another is read and changed again, up to a bound.
// change gets nil when the key does not exist.
func UpdateKV(ctx context.Context, kv jetstream.KeyValue, key string, change func(old []byte) []byte) error {
	var err error
	for range kvRetries {
		var entry jetstream.KeyValueEntry
		entry, err = kv.Get(ctx, key)
		var value []byte
		var rev uint64
		switch {
		case err == nil:
			value, rev = entry.Value(), entry.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return err
		}
		data := change(value)
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil || !CASConflict(err) {
			return err
		}
	}
	return err
}

// CASConflict reports whether err is a lost compare-and-set race on a key.
func CASConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// StoreFull reports whether err is JetStream refusing a write because the
// stream (a bucket, an object store) or the server's storage is full.
func StoreFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == 10077 || apiErr.ErrorCode == 10023) { // stream store failed, insufficient resources
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "maximum bytes exceeded") || strings.Contains(msg, "insufficient resources")
}
