// Package consumer reads Kinesis data streams the way the Java Kinesis
// Client Library (KCL) does, on aws-sdk-go-v2, with its lease table in
// DynamoDB in Java KCL 2.x's item format.
//
// A Consumer balances the shards of one or more streams across workers
// with leases: every worker renews the leases it holds by bumping their
// counters, takes unowned leases and leases whose counter it has seen
// unchanged for the failover time on its own clock, and steals from the
// most loaded worker until every worker holds ceil(shards/workers). Every
// lease write is conditional on the owner and counter the writer last saw,
// so a worker that lost a lease can neither checkpoint nor take it back.
//
// Each held shard is read by its own goroutine, by polling (GetRecords) or
// enhanced fan-out (SubscribeToShard), from its checkpoint. KPL aggregates
// are split into user records with sub-sequence numbers; an aggregate that
// cannot be decoded is delivered whole with Record.Err set. Children of a
// split or merge start only after every parent is checkpointed at
// SHARD_END.
//
// Each shard run on a worker has its own ShardProcessor, made by the
// ProcessorFactory given to Run, as Java KCL's ShardRecordProcessor: it is
// initialized, receives the shard's batches in order, and ends when the
// shard ends, the worker stops, or the lease is lost. Checkpoints are
// separate from delivery: the processor calls Checkpointer.MarkDurable with
// the position up to which everything is durable (its low-water mark), and
// the consumer writes that with the next lease renewal, on graceful
// shutdown and before SHARD_END:
//
//	c, err := consumer.New(consumer.Config{
//		ApplicationName: "scoring",
//		Streams:         []consumer.StreamConfig{{Name: "sensors", InitialPosition: consumer.TrimHorizon}},
//	}, kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), consumer.WithRegisterer(reg))
//	if err != nil { ... }
//	err = c.Run(ctx, consumer.ProcessFunc(func(ctx context.Context, b *consumer.Batch) error {
//		for _, r := range b.Records { ... }
//		return b.Checkpointer.MarkDurable(b.Last()) // when all of b is durable
//	}))
//
// Cancelling Run's context shuts down gracefully: each shard finishes the
// batch in hand, writes its durable checkpoint and releases its lease, so
// another worker resumes there at once without duplicates.
package consumer
