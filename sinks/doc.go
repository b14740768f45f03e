// Package sinks is where scored results land and where at-least-once is won
// or lost: S3 Parquet files for the data lake, CloudWatch metrics, SNS
// alerts, the online feature table in DynamoDB, and the dead-letter queue.
//
// # Contract with the pipeline
//
// The pipeline hands a sink a [Batch]: the scored rows of one shard as an
// Arrow record, the [Range] of Kinesis positions the batch covers, and an
// Ack function. [Sink.Write] blocks while the sink's bounded buffer is
// full, so a slow or unreachable service slows the shard's reads down
// instead of growing memory. Ack is called exactly once per accepted batch,
// with nil once the batch is durable in the sink, or with a
// [*PermanentError] the sink cannot fix by retrying. Throttling, 5xx answers
// and connection failures are retried with jittered exponential backoff
// until they succeed or the sink is closed: an outage stops acks (and so
// checkpoints), it never drops rows. [Tee] fans one batch out to several
// sinks and acks it when all of them have.
//
// Ranges must be the real Kinesis positions (sequence and sub-sequence
// number), never process-local offsets, because S3 object keys derive from
// them and must be the same after a failover. For one shard, batches are
// written in order and their ranges are the consecutive, non-overlapping
// spans of input the pipeline consumed between two emissions: every result
// in a batch was emitted while processing a record inside its Range. A
// batch may have no rows (it is acked at once).
//
// # Result rows
//
// The record's columns, by name: entity (string), window_start and
// window_end (timestamps, any unit), update (bool, optional: the row
// revises a window emitted before), score or score_0..score_k (float64 or
// float32), model_version (string), fallback (bool), event_time
// (timestamp, optional), and every other column is a feature. Columns whose
// names start with "_" and offset_first/offset_last are process-local
// bookkeeping and are never written out. Every row's idempotency key is
// [ResultID]; each sink uses it, or what it is made of, so that a replay
// after a failover overwrites or is deduplicated instead of doubling.
//
// docs/sinks.md in the repository describes each sink's keys, schemas and
// failure behaviour, and the measured encode throughput.
package sinks
