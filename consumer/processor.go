package consumer

import (
	"context"

	"github.com/streamscore/streamscore/shardpos"
)

// ShardProcessor is one shard's life on this worker, as Java KCL's
// ShardRecordProcessor has it: the consumer makes a new one (through the
// ProcessorFactory given to Run) each time it starts processing a shard, and
// calls it from the shard's goroutine only, so a processor needs no locks
// for the state it keeps (open windows, decoders).
//
// Its life is Initialize, any number of ProcessRecords, then exactly one
// ending:
//   - ShardEnded: the shard is closed and its last batch was processed;
//   - ShutdownRequested: the worker stops gracefully and hands the lease
//     over;
//   - LeaseLost: another worker holds the lease now;
//   - an error returned by Initialize, ProcessRecords or ShardEnded: the
//     shard is marked failed (Consumer.Unhealthy), and after a backoff
//     (Config.FailureBackoff doubling to MaxFailureBackoff) a new processor
//     starts from the durable checkpoint, while the lease stays held and
//     renewed. Other shards go on. The failed processor gets no further
//     call: it frees its state before it returns the error.
//
// The shard may come back to this worker later, with a new processor.
type ShardProcessor interface {
	// Initialize prepares the processor for the shard, before its first
	// read. It may do I/O (replaying the parents' tails,
	// Checkpointer.Lineage). ctx is cancelled when the lease is lost or the
	// worker stops.
	Initialize(ctx context.Context, s ShardInfo) error
	// ProcessRecords handles one batch of the shard, in order: records,
	// or an idle heartbeat (no records, Config.IdleHeartbeat), or the last
	// batch of a closed shard (Batch.ShardEnd). A processor that can retry
	// (a sink briefly down) retries inside ProcessRecords, which slows the
	// shard's reads: that is the back-pressure. ctx is cancelled when the
	// worker loses the lease, not by a graceful stop, so the batch in hand
	// can finish.
	ProcessRecords(ctx context.Context, b *Batch) error
	// ShardEnded is called once the shard's last batch was processed,
	// before the consumer checkpoints SHARD_END: the processor makes
	// durable (Checkpointer.MarkDurable) everything it delivered, and the
	// consumer waits for that durable position to reach the last record.
	// ctx is cancelled only when the lease is lost.
	ShardEnded(ctx context.Context) error
	// ShutdownRequested is called on a graceful stop, after the batch in
	// hand: the processor pushes out what it holds in flight (sink
	// buffers) and marks it durable, so the checkpoint the consumer writes
	// as it releases the lease covers it. State that can be rebuilt by
	// replaying from that checkpoint (open windows) is dropped. An error
	// is logged; the checkpoint then stays where it is.
	ShutdownRequested(ctx context.Context) error
	// LeaseLost tells the processor that another worker owns the shard:
	// it must write nothing more, and frees its state.
	LeaseLost()
}

// ShardInfo is what a processor learns at Initialize.
type ShardInfo struct {
	// Stream is the stream's name.
	Stream string
	// ShardID identifies the shard.
	ShardID string
	// Checkpointer records how far the shard's records are durable; every
	// Batch of this processor carries the same one.
	Checkpointer *Checkpointer
	// Start is where reading resumes: the last durable position (the
	// records after it are delivered), or a sentinel (TrimHorizon, Latest,
	// AtTimestamp) when nothing was checkpointed.
	Start shardpos.Position
	// StartingHashKey is the lowest hash key the shard serves, as its
	// lease records it (empty when the lease does not say). At any time
	// one open shard of a stream starts at "0": holding it is a cheap,
	// lease-backed way to pick one worker of the fleet for a stream-wide
	// chore.
	StartingHashKey string
}

// ProcessorFactory makes a processor for a shard the worker starts on.
type ProcessorFactory func() ShardProcessor

// ProcessFunc adapts a function to a ProcessorFactory whose processors keep
// no state of their own: each batch goes to the function, and the endings
// have nothing to flush. The function is called for many shards at once.
func ProcessFunc(f func(ctx context.Context, b *Batch) error) ProcessorFactory {
	return func() ShardProcessor { return funcProcessor(f) }
}

type funcProcessor func(ctx context.Context, b *Batch) error

var _ ShardProcessor = funcProcessor(nil)

func (funcProcessor) Initialize(context.Context, ShardInfo) error { return nil }

func (f funcProcessor) ProcessRecords(ctx context.Context, b *Batch) error { return f(ctx, b) }

func (funcProcessor) ShardEnded(context.Context) error { return nil }

func (funcProcessor) ShutdownRequested(context.Context) error { return nil }

func (funcProcessor) LeaseLost() {}
