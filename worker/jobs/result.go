package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/natsconn"
)

// defaultChunkSize is the object store's chunk size, when the NATS maximum
// payload allows it.
const defaultChunkSize = 128 << 10

// storedResult is where a result went.
type storedResult struct {
	inline json.RawMessage // in the record
	object string          // or in the results object store
	size   int             // bytes in the object store
}

// storeResult puts a result where its size says: inline in the record up to
// jobs.inline_result_bytes (and half the NATS maximum payload, so that the
// record fits in a message), in the object store up to
// contracts.MaxJobResultBytes, nowhere beyond (result_too_large). An error
// means the object store failed.
//
// The object of each attempt has a name of its own (ResultObject and the
// attempt), so that an attempt that lost its record to another can never
// overwrite the recorded attempt's result; readers take the name from the
// record's result_object.
func (r *Runner) storeResult(ctx context.Context, infra *Infra, req *contracts.JobRequest, attempt int, result json.RawMessage) (storedResult, *contracts.Error, error) {
	size := len(result)
	maxPayload := int(r.nc.MaxPayload())
	if size <= min(r.jobs.InlineResultBytes, maxPayload/2) {
		r.addUsage(ctx, infra.Records, req.KeyID, int64(size))
		return storedResult{inline: result}, nil, nil
	}
	if size > contracts.MaxJobResultBytes {
		return storedResult{}, contracts.NewError(contracts.CodeResultTooLarge,
			"the result (%d bytes) exceeds the limit of %d bytes", size, contracts.MaxJobResultBytes), nil
	}
	name := ResultName(req.Owner, req.JobID(), attempt)
	meta := jetstream.ObjectMeta{
		Name: name,
		Opts: &jetstream.ObjectMetaOptions{ChunkSize: uint32(min(defaultChunkSize, maxPayload/2))},
	}
	if _, err := infra.Results.Put(ctx, meta, bytes.NewReader(result)); err != nil {
		if natsconn.StoreFull(err) {
			return storedResult{}, contracts.NewError(contracts.CodeStorageFull, "the results store is full"), nil
		}
		return storedResult{}, nil, err
	}
	r.addUsage(ctx, infra.Records, req.KeyID, int64(size))
	return storedResult{object: name, size: size}, nil, nil
}

// ResultName is the results object store name of the result of attempt of
// job id of owner: contracts.ResultObject(owner, id), ".", attempt.
func ResultName(owner, id string, attempt int) string {
	return contracts.ResultObject(owner, id) + "." + strconv.Itoa(attempt)
}
