package consumer

import (
	"time"

	"github.com/streamscore/streamscore/shardpos"
)

// Checkpoint sentinels stored in the lease table's checkpoint attribute in
// place of a sequence number, as Java KCL writes them.
const (
	// TrimHorizon means "start at the oldest record still in the shard".
	TrimHorizon = "TRIM_HORIZON"
	// Latest means "start after the newest record at the time of the first read".
	Latest = "LATEST"
	// AtTimestamp means "start at the configured timestamp".
	AtTimestamp = "AT_TIMESTAMP"
	// ShardEnd marks a closed shard whose records have all been processed:
	// its children may start.
	ShardEnd = "SHARD_END"
)

// Record is one user record: a plain Kinesis record, or one record out of a
// KPL aggregate.
//
// Data aliases the buffer the Kinesis client returned. The consumer never
// reuses or modifies that buffer, so Data (and every string field) may be
// retained after the processor returns; the processor must not modify Data in
// place if it shares it with other goroutines.
type Record struct {
	// Stream is the name of the stream the record was read from.
	Stream string
	// ShardID is the shard the record was read from.
	ShardID string
	// SequenceNumber is the Kinesis sequence number of the (possibly
	// aggregated) Kinesis record.
	SequenceNumber string
	// SubSequenceNumber is the index of the user record inside its KPL
	// aggregate; 0 when the record was not aggregated.
	SubSequenceNumber uint64
	// Aggregated reports whether the record came out of a KPL aggregate.
	Aggregated bool
	// PartitionKey is the user record's partition key (from the aggregate's
	// key table for aggregated records).
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key, when the KPL
	// producer set one. Plain records never carry it (GetRecords does not
	// return it).
	ExplicitHashKey string
	// ApproximateArrival is when Kinesis accepted the enclosing record.
	ApproximateArrival time.Time
	// Data is the user record's payload.
	Data []byte
	// Err is non-nil when the record started with the KPL magic bytes but
	// could not be deaggregated (bad checksum, malformed protobuf, key index
	// out of range). The record is then delivered whole, with Data holding the
	// complete Kinesis record, so the pipeline can dead-letter it; it is
	// never dropped. errors.Is(r.Err, ErrDeaggregation) holds.
	Err error
}

// Position returns the record's position, suitable for Checkpointer.
func (r *Record) Position() shardpos.Position {
	return shardpos.Position{Sequence: r.SequenceNumber, SubSequence: r.SubSequenceNumber}
}

// Batch is the set of user records from one read of one shard, in shard
// order.
//
// The Batch value and its Records slice are reused by the consumer once the
// processor returns: copy out the Record values (cheap; they hold no owned
// buffers) if they must outlive the call. The Data slices and strings inside
// the records are never reused.
type Batch struct {
	// Stream is the stream's name.
	Stream string
	// ShardID identifies the shard.
	ShardID string
	// Records holds the user records in order. It may be empty when ShardEnd
	// is set.
	Records []Record
	// MillisBehindLatest is how far the read was behind the tip of the shard,
	// as Kinesis reported it.
	MillisBehindLatest int64
	// ShardEnd is set on the last batch of a closed shard. The processor's
	// ShardEnded follows; then the consumer waits until everything delivered
	// for the shard is marked durable with the Checkpointer and checkpoints
	// SHARD_END so that the shard's children can start. A processor that
	// holds records back (open windows) emits or hands them over when it
	// sees ShardEnd.
	ShardEnd bool
	// Checkpointer records how far this shard's records are durable: the
	// one the processor got at Initialize.
	Checkpointer *Checkpointer
}

// Last returns the position of the last record in the batch, or the zero
// Position when the batch is empty.
func (b *Batch) Last() shardpos.Position {
	if len(b.Records) == 0 {
		return shardpos.Position{}
	}
	return b.Records[len(b.Records)-1].Position()
}
