package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
	"unicode/utf8"
)

// MaxEntityBytes is the longest entity id every sink can store: the
// feature table's partition key is the entity verbatim, and DynamoDB
// allows 2,048 bytes. SNS FIFO group ids and CloudWatch dimensions do not
// limit it: the alert sink hashes an id SNS cannot take as a group id, and
// entities are never CloudWatch dimensions.
const MaxEntityBytes = MaxPartitionKeyBytes

// Errors CheckEntity returns (wrapped, with the sizes).
var (
	ErrEntityEmpty   = errors.New("entity is empty")
	ErrEntityTooLong = errors.New("entity is too long")
	ErrEntityNotUTF8 = errors.New("entity is not valid UTF-8")
)

// CheckEntity reports whether every sink can store a row keyed by entity:
// not empty (a DynamoDB key cannot be), at most MaxEntityBytes bytes (the
// feature table's partition key), and valid UTF-8 (DynamoDB strings, SQS
// and SNS attributes and JSON messages are UTF-8). The decoder calls it so
// that such a record is dead-lettered at decode time, naming the limit,
// rather than refused by a sink. It allocates nothing when entity is fine.
func CheckEntity(entity []byte) error {
	switch {
	case len(entity) == 0:
		return ErrEntityEmpty
	case len(entity) > MaxEntityBytes:
		return fmt.Errorf("%w: %d bytes, over the %d-byte limit of the feature table's DynamoDB partition key", ErrEntityTooLong, len(entity), MaxEntityBytes)
	case !utf8.Valid(entity):
		return ErrEntityNotUTF8
	}
	return nil
}

// checkEntity is CheckEntity for a string, without converting it.
func checkEntity(entity string) error {
	switch {
	case len(entity) == 0:
		return ErrEntityEmpty
	case len(entity) > MaxEntityBytes:
		return fmt.Errorf("%w: %d bytes, over the %d-byte limit of the feature table's DynamoDB partition key", ErrEntityTooLong, len(entity), MaxEntityBytes)
	case !utf8.ValidString(entity):
		return ErrEntityNotUTF8
	}
	return nil
}

// refuser sends the rows a sink's service refuses on their own to the
// dead-letter sink, so the rest of the batch proceeds and is acked nil.
type refuser struct {
	sink string
	dl   DeadLetters
	m    *sinkMetrics
	log  *slog.Logger
}

// refuse dead-letters row i of b, refused with err. It returns nil once
// the row is durable in the dead-letter sink; without one (or if sending
// fails) it returns an error for the batch's ack, as before dead letters
// existed.
func (r *refuser) refuse(ctx context.Context, b *Batch, v *view, i int, err error) error {
	if r.dl == nil {
		return r.permanent(err)
	}
	id := ResultID(b.Stream, v.entity.Value(i), v.ws.time(i), v.we.time(i), v.modelVersion(i))
	r.log.Debug("refused row's entity", "sink", r.sink, "result_id", id, "entity", v.entity.Value(i))
	return r.refuseData(ctx, b, id, v.rowJSON(b.Stream, r.sink, i, id), err)
}

func (r *refuser) permanent(err error) error {
	if !IsPermanent(err) {
		err = &PermanentError{Sink: r.sink, Err: err}
	}
	return err
}

// refuseData dead-letters data (what the sink would have stored) of the
// result with id resultID.
func (r *refuser) refuseData(ctx context.Context, b *Batch, resultID string, data []byte, err error) error {
	if r.dl == nil {
		return r.permanent(err)
	}
	p := Poison{
		Reason: ReasonRefused, Detail: r.sink + ": " + err.Error(),
		Stream: b.Stream, Shard: b.Shard, Position: b.Range.Last,
		Data: data, ResultID: resultID,
	}
	if serr := r.dl.Send(ctx, p); serr != nil {
		return fmt.Errorf("%s: dead-lettering a refused row (%v): %w", r.sink, err, serr)
	}
	r.m.refused.Inc()
	// No entity at info level or above: ids are personal data in some
	// pipelines; the dead letter has the row, and result_id finds it.
	r.log.Warn("sink refused a row; dead-lettered", "sink", r.sink, "stream", b.Stream, "shard", b.Shard, "result_id", resultID, "err", err)
	return nil
}

// rowJSON renders row i as the body of its dead letter: everything the
// sink would have stored, so it can be written again by hand.
func (v *view) rowJSON(stream, sink string, i int, resultID string) []byte {
	doc := map[string]any{
		"sink": sink, "stream": stream, ColEntity: v.entity.Value(i),
		ColWindowStart: v.ws.time(i).Format(time.RFC3339Nano), ColWindowEnd: v.we.time(i).Format(time.RFC3339Nano),
		ColUpdate: v.isUpdate(i), ColModelVersion: v.modelVersion(i), ColFallback: v.isFallback(i), ColResultID: resultID,
	}
	put := func(cols []floatCol) map[string]any {
		m := make(map[string]any, len(cols))
		for _, c := range cols {
			if x, ok := c.value(i); ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
				m[c.name] = x
			}
		}
		return m
	}
	doc["scores"], doc["features"] = put(v.scores), put(v.features)
	b, err := json.Marshal(doc)
	if err != nil { // only invalid UTF-8 in a string could, and json replaces it
		return []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	return b
}
