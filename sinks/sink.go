package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/streamscore/streamscore/shardpos"
)

// Range is the span of source positions a batch covers, both ends included:
// every user record whose result is in the batch lies in [First, Last].
type Range struct {
	First, Last shardpos.Position
}

// Covers reports whether q lies within r.
func (r Range) Covers(q shardpos.Position) bool {
	return r.First.Compare(q) <= 0 && q.Compare(r.Last) <= 0
}

// Batch is one unit of scored results handed to a sink.
//
// Rec holds one row per (entity, window) in the column layout described in
// the package documentation. A sink that accepts the batch (Write returns
// nil) retains Rec for as long as it needs it and releases it itself; the
// caller keeps its own reference and may release it as soon as Write returns.
//
// Ack is called exactly once for an accepted batch: with nil once the
// batch's results are durable in the sink, or with an error the sink will
// not recover from on its own (a permanent error). The pipeline checkpoints
// the shard only up to batches acked with nil. Ack may be called from any
// goroutine and must not block for long.
type Batch struct {
	// Stream is the Kinesis stream name.
	Stream string
	// Shard is the Kinesis shard id.
	Shard string
	// Range is the span of source positions whose results are in Rec. It
	// must be the real Kinesis positions, not process-local offsets: object
	// keys derive from it and must be the same after a failover.
	Range Range
	// Rec is the scored results.
	Rec arrow.RecordBatch
	// Ack reports the outcome; nil means durable.
	Ack func(error)
}

// Sink is what the pipeline calls. Every implementation in this package is
// safe for concurrent use.
type Sink interface {
	// Write hands a batch to the sink. It blocks while the sink's bounded
	// buffer is full, which is how a slow sink slows the shard down. It
	// returns an error only if the batch was not accepted (ctx ended, the
	// sink is closed, the batch is malformed); then Ack is never called.
	Write(ctx context.Context, b Batch) error
	// Flush returns once every batch accepted before the call has been
	// acked, forcing out partially filled files and buffers of every shard:
	// what a worker does before it stops.
	Flush(ctx context.Context) error
	// FlushShard returns once every batch of stream/shard accepted before
	// the call has been acked, forcing out only what that shard holds
	// (its partially filled S3 files): what a worker does before it hands
	// one shard's lease over. Other shards' files stay open, so one
	// hand-over does not cut every shard's files short. A sink whose
	// buffer is shared by all shards (CloudWatch's interval) may flush
	// more than the shard.
	FlushShard(ctx context.Context, stream, shard string) error
	// Close flushes and stops the sink. If ctx ends first, Close returns
	// an error matching ctx's, and batches still unacked are acked with the
	// error of the sink's shutdown (it matches context.Canceled), never nil.
	Close(ctx context.Context) error
	// Healthy reports an outage (HealthChecker).
	HealthChecker
}

// HealthChecker is part of every Sink and implemented by *DeadLetter.
// Healthy returns nil unless the sink is in an outage: its
// service refuses it as a whole (access denied, a missing table, topic,
// queue or bucket; reported at once) or its calls have failed transiently
// for OutageAfter. Only then may its batches stay unacked; a row the
// service refuses on its own is dead-lettered and never holds a batch.
// The pipeline's /readyz calls it.
type HealthChecker interface {
	Healthy() error
}

var (
	_ Sink = (*S3)(nil)
	_ Sink = (*FeatureTable)(nil)
	_ Sink = (*Alerts)(nil)
	_ Sink = (*CloudWatch)(nil)
	_ Sink = tee(nil)

	_ handler = (*s3Handler)(nil)
	_ handler = (*featureHandler)(nil)
	_ handler = (*alertHandler)(nil)
	_ handler = (*cwHandler)(nil)

	_ HealthChecker = (*DeadLetter)(nil)
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("sinks: sink is closed")

// PermanentError marks a failure that retrying will not fix: a missing
// bucket, a denied permission, a malformed batch. Sinks ack batches with it
// instead of retrying.
type PermanentError struct {
	Sink string
	Err  error
}

func (e *PermanentError) Error() string { return e.Sink + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is (or wraps) a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// SchemaError names a column of a batch that is missing or has a type the
// sink cannot use.
type SchemaError struct {
	Column string
	Reason string
}

func (e *SchemaError) Error() string { return fmt.Sprintf("column %q: %s", e.Column, e.Reason) }

// ResultID is the idempotency key of one result row: the first 16 bytes of
// SHA-256 over the UTF-8 text
//
//	stream 0x1F entity 0x1F windowStartUnixMillis 0x1F windowEndUnixMillis 0x1F modelVersion
//
// (decimal integers, 0x1F the ASCII unit separator), as 32 lowercase hex
// digits. It is the same wherever and whenever the row is produced, so a
// replayed window gets the same id, and it can be recomputed in SQL from
// the Parquet row itself, whose timestamps are milliseconds (docs/sinks.md
// has the Athena and DuckDB expressions). Milliseconds also keep the input
// of a typical row within one 64-byte SHA-256 block, half the hashing of
// nanoseconds.
func ResultID(stream, entity string, windowStart, windowEnd time.Time, modelVersion string) string {
	var buf [256]byte
	var out [32]byte
	id := appendResultID(out[:0], buf[:0], stream, entity, windowStart.UnixMilli(), windowEnd.UnixMilli(), modelVersion)
	return string(id)
}

// appendResultID appends the hex id to dst, using scratch for the hash input
// so the per-row path allocates nothing when both have capacity.
func appendResultID(dst, scratch []byte, stream, entity string, wsMillis, weMillis int64, model string) []byte {
	var sum [resultIDBytes]byte
	appendResultIDSum(sum[:0], scratch, stream, entity, wsMillis, weMillis, model)
	n := len(dst)
	dst = append(dst, make([]byte, 2*resultIDBytes)...)
	hex.Encode(dst[n:], sum[:])
	return dst
}

// resultIDBytes is the length of a result id before hex encoding.
const resultIDBytes = 16

// appendResultIDSum appends the id's 16 bytes to dst.
func appendResultIDSum(dst, scratch []byte, stream, entity string, wsMillis, weMillis int64, model string) []byte {
	scratch = append(scratch, stream...)
	scratch = append(scratch, 0x1f)
	scratch = append(scratch, entity...)
	scratch = append(scratch, 0x1f)
	scratch = strconv.AppendInt(scratch, wsMillis, 10)
	scratch = append(scratch, 0x1f)
	scratch = strconv.AppendInt(scratch, weMillis, 10)
	scratch = append(scratch, 0x1f)
	scratch = append(scratch, model...)
	sum := sha256.Sum256(scratch)
	return append(dst, sum[:resultIDBytes]...)
}

// Tee writes every batch to all of sinks and acks it once all of them have:
// with nil if every sink made it durable, otherwise with the first error.
// If a sink refuses the batch, the sinks that accepted it still ack, and the
// batch is acked with the refusal.
func Tee(sinks ...Sink) Sink { return tee(sinks) }

type tee []Sink

func (t tee) Write(ctx context.Context, b Batch) error {
	// The tee hands every sink its own Ack, so the sinks cannot see a
	// missing one: refuse it here rather than panic when the acks come in.
	if b.Ack == nil {
		return fmt.Errorf("sinks: tee: batch for %s/%s has no Ack function", b.Stream, b.Shard)
	}
	if len(t) == 0 {
		b.Ack(nil) // accepted means acked exactly once, even with no sinks
		return nil
	}
	var (
		left     atomic.Int32
		firstErr error
		mu       sync.Mutex
	)
	left.Store(int32(len(t)))
	done := func(err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
		if left.Add(-1) == 0 {
			mu.Lock()
			e := firstErr
			mu.Unlock()
			b.Ack(e)
		}
	}
	for i, s := range t {
		sb := b
		sb.Ack = done
		if err := s.Write(ctx, sb); err != nil {
			if i == 0 {
				return err // nobody has the batch yet: refuse it whole
			}
			for range len(t) - i {
				done(err)
			}
			return nil
		}
	}
	return nil
}

// Healthy joins the outages of the teed sinks.
func (t tee) Healthy() error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.Healthy())
	}
	return errors.Join(errs...)
}

func (t tee) Flush(ctx context.Context) error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.Flush(ctx))
	}
	return errors.Join(errs...)
}

func (t tee) FlushShard(ctx context.Context, stream, shard string) error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.FlushShard(ctx, stream, shard))
	}
	return errors.Join(errs...)
}

func (t tee) Close(ctx context.Context) error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}
