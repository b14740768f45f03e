package consumer

import (
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/internal/retry"
)

// ReplayTails reads the parents' tails of a shard that starts from its
// beginning (Lineage.Tails) and hands their user records to fn in batches
// of at most batch records, merged across parents in arrival order (a
// merge has two parents whose records interleaved in time), keeping only
// the records whose hash key lies in the shard's range (a split's children
// share a parent). A record's hash key is its explicit hash key when the
// KPL set one, else the MD5 of its partition key, as Kinesis routes it;
// Kinesis does not return the explicit hash key of a plain record, so a
// producer that routes plain records by explicit hash key sees them
// filtered by partition key.
//
// The records keep their parents' positions: they are not the shard's own,
// and must never be checkpointed on it. Read errors are retried with
// backoff until ctx ends.
func ReplayTails(ctx context.Context, api KinesisAPI, stream string, lin Lineage, batch int, fn func([]Record) error) error {
	if len(lin.Tails) == 0 {
		return nil
	}
	if batch <= 0 {
		batch = 1000
	}
	keep, err := hashFilter(lin.StartingHashKey, lin.EndingHashKey)
	if err != nil {
		return err
	}
	readers := make([]*tailReader, len(lin.Tails))
	for i, t := range lin.Tails {
		readers[i] = &tailReader{api: api, stream: stream, tail: t, keep: keep, deagg: NewDeaggregator()}
	}
	out := make([]Record, 0, batch)
	for {
		// The reader whose next record arrived first.
		var next *tailReader
		for _, r := range readers {
			if err := r.fill(ctx); err != nil {
				return err
			}
			if r.done() {
				continue
			}
			if next == nil || r.head().ApproximateArrival.Before(next.head().ApproximateArrival) {
				next = r
			}
		}
		if next == nil || len(out) == batch {
			if len(out) > 0 {
				if err := fn(out); err != nil {
					return err
				}
				out = out[:0]
			}
			if next == nil {
				return nil
			}
		}
		out = append(out, *next.head())
		next.pos++
	}
}

// tailReader pages through one parent's tail.
type tailReader struct {
	api    KinesisAPI
	stream string
	tail   Tail
	keep   func(*Record) bool
	deagg  *Deaggregator

	iter    *string
	started bool
	ended   bool
	page    []Record
	pos     int
}

func (r *tailReader) done() bool    { return r.pos >= len(r.page) && r.ended }
func (r *tailReader) head() *Record { return &r.page[r.pos] }
func (r *tailReader) pending() bool { return r.pos < len(r.page) }

// fill reads pages until it holds a record or the shard's end.
func (r *tailReader) fill(ctx context.Context) error {
	for !r.pending() && !r.ended {
		if err := r.read(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *tailReader) read(ctx context.Context) error {
	if !r.started {
		in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.stream), ShardId: aws.String(r.tail.ShardID),
			ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(r.tail.From.Sequence)}
		out, err := retryRead(ctx, func() (*kinesis.GetShardIteratorOutput, error) { return r.api.GetShardIterator(ctx, in) })
		if err != nil {
			return fmt.Errorf("consumer: replaying the tail of %s/%s from %s: %w", r.stream, r.tail.ShardID, r.tail.From.Sequence, err)
		}
		r.iter, r.started = out.ShardIterator, true
	}
	if r.iter == nil {
		r.ended = true
		return nil
	}
	out, err := retryRead(ctx, func() (*kinesis.GetRecordsOutput, error) {
		return r.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: r.iter})
	})
	if err != nil {
		return fmt.Errorf("consumer: replaying the tail of %s/%s: %w", r.stream, r.tail.ShardID, err)
	}
	r.page, r.pos = r.page[:0], 0
	for _, kr := range out.Records {
		base := Record{Stream: r.stream, ShardID: r.tail.ShardID, SequenceNumber: aws.ToString(kr.SequenceNumber),
			PartitionKey: aws.ToString(kr.PartitionKey), ApproximateArrival: aws.ToTime(kr.ApproximateArrivalTimestamp)}
		n := len(r.page)
		r.page = r.deagg.Deaggregate(r.page, kr.Data, base)
		// Keep the records at or after the tail's start that hash into
		// the shard's range.
		kept := r.page[:n]
		for i := n; i < len(r.page); i++ {
			u := &r.page[i]
			if u.Position().Compare(r.tail.From) < 0 || !r.keep(u) {
				continue
			}
			kept = append(kept, *u)
		}
		r.page = kept
	}
	r.iter = out.NextShardIterator
	if r.iter == nil {
		r.ended = true
	}
	return nil
}

// hashFilter keeps records whose hash key lies in [start, end]; with no
// range known it keeps everything.
func hashFilter(start, end string) (func(*Record) bool, error) {
	if start == "" || end == "" {
		return func(*Record) bool { return true }, nil
	}
	lo, ok1 := new(big.Int).SetString(start, 10)
	hi, ok2 := new(big.Int).SetString(end, 10)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("consumer: hash key range %q..%q is not decimal", start, end)
	}
	var h big.Int
	return func(r *Record) bool {
		if r.ExplicitHashKey != "" {
			if _, ok := h.SetString(r.ExplicitHashKey, 10); !ok {
				return true // unparsable: keep it rather than lose it
			}
		} else {
			sum := md5.Sum([]byte(r.PartitionKey))
			h.SetBytes(sum[:])
		}
		return h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0
	}, nil
}

// retryRead retries a read a few times with backoff; the tail is read once
// at a child's start, so a brief throttle or reset must not fail it. An
// error retrying the same request cannot fix (a permanent refusal, an
// expired iterator) is returned at once.
func retryRead[T any](ctx context.Context, f func() (T, error)) (T, error) {
	b := retry.NewBackoff(retry.Policy{Base: 100 * time.Millisecond, Cap: 5 * time.Second})
	for {
		v, err := f()
		if err == nil || b.Attempt() == 8 || ctx.Err() != nil {
			return v, err
		}
		if c := retry.Classify(err); c.Permanent() || c == retry.Expired {
			return v, err
		}
		if !b.Wait(ctx) {
			return v, ctx.Err()
		}
	}
}
