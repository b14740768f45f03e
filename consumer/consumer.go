package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// KinesisAPI is the part of the Kinesis client the consumer uses; a
// *kinesis.Client satisfies it.
type KinesisAPI interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	RegisterStreamConsumer(context.Context, *kinesis.RegisterStreamConsumerInput, ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(context.Context, *kinesis.DescribeStreamConsumerInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	SubscribeToShard(context.Context, *kinesis.SubscribeToShardInput, ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

// ErrLeaseLost is returned (wrapped) by a checkpoint when this worker no
// longer holds the shard's lease: another worker took it, or renewals failed
// for the failover time. The shard stops on this worker.
var ErrLeaseLost = errors.New("consumer: lease lost")

// Consumer reads Kinesis streams with leases and checkpoints in a
// DynamoDB table that Java KCL 2.x applications can share or hand over.
type Consumer struct {
	cfg   Config
	kin   KinesisAPI
	ddb   DynamoDBAPI
	table *leaseTable
	// k3 is set when ClientVersion3X: the coordinator tables.
	k3  *kcl3
	log *slog.Logger
	m   *metrics
	rng *rand.Rand // taker goroutine only

	running atomic.Bool
	streams []*stream
	byID    map[string]*stream

	newProcessor ProcessorFactory

	// cleanup remembers when each finished lease was first seen eligible
	// for deletion (shard sync only).
	cleanupMu sync.Mutex
	cleanup   map[string]time.Time

	// failures are the held shards currently failed, by lease key
	// (Unhealthy).
	failMu   sync.Mutex
	failures map[string]*ShardFailure

	mu    sync.Mutex
	held  map[string]*shardRun
	ended chan struct{} // closed and replaced whenever a shard reaches SHARD_END here
}

// New validates cfg and returns a Consumer. It does no I/O; Run does.
func New(cfg Config, kin KinesisAPI, ddb DynamoDBAPI, opts ...Option) (*Consumer, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if kin == nil || ddb == nil {
		return nil, errors.New("consumer: Kinesis and DynamoDB clients are required")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	m, err := newMetrics(o.registerer)
	if err != nil {
		return nil, err
	}
	return &Consumer{
		cfg:      c,
		kin:      kin,
		ddb:      ddb,
		table:    &leaseTable{db: ddb, name: c.LeaseTable, ownerIndex: c.ClientVersion != ClientVersion2X},
		log:      o.logger.With("worker", c.WorkerID),
		m:        m,
		rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		held:     make(map[string]*shardRun),
		ended:    make(chan struct{}),
		failures: make(map[string]*ShardFailure),
	}, nil
}

// WorkerID returns the id this worker writes as lease owner.
func (c *Consumer) WorkerID() string { return c.cfg.WorkerID }

// HeldLeases returns the keys of the leases this worker holds, sorted.
func (c *Consumer) HeldLeases() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.held))
	for k := range c.held {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Run consumes until ctx is cancelled. On cancellation it shuts down
// gracefully: each shard finishes the batch in hand (or its backoff after
// a failure), writes its durable checkpoint and releases its lease so
// another worker takes it at once. Processor errors and Kinesis read
// errors never stop Run: they fail one shard, which is retried (see
// Unhealthy). newProcessor makes one ShardProcessor per shard run. Run
// returns nil after a graceful shutdown, or a setup error. A Consumer runs
// once.
func (c *Consumer) Run(ctx context.Context, newProcessor ProcessorFactory) error {
	if newProcessor == nil {
		return errors.New("consumer: Run needs a ProcessorFactory")
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("consumer: Run called twice")
	}
	c.newProcessor = newProcessor
	if err := c.table.ensure(ctx); err != nil {
		return err
	}
	if err := c.resolveStreams(ctx); err != nil {
		return err
	}
	for _, s := range c.streams {
		if err := c.syncShards(ctx, s); err != nil {
			return err
		}
	}

	var version string
	if c.cfg.ClientVersion != ClientVersion2X {
		var err error
		if version, err = c.setupKCL3(ctx); err != nil {
			return err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The renewer outlives runCtx: it keeps the leases alive while shards
	// finish their batches and release.
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		c.renewLoop(renewCtx)
	}()

	var wg sync.WaitGroup
	if c.cfg.ClientVersion == ClientVersion2X {
		wg.Go(func() { c.takeLoop(runCtx) })
	} else {
		wg.Go(func() { c.coordinate(runCtx, version) })
	}
	wg.Go(func() { c.syncLoop(runCtx) })
	<-runCtx.Done()
	wg.Wait()

	// Graceful stop: every shard finishes its batch, checkpoints what is
	// durable and releases its lease.
	c.mu.Lock()
	runs := make([]*shardRun, 0, len(c.held))
	for _, r := range c.held {
		runs = append(runs, r)
	}
	c.mu.Unlock()
	for _, r := range runs {
		r.requestStop()
	}
	for _, r := range runs {
		<-r.done
	}
	stopRenew()
	<-renewDone
	return nil
}

// stream is one configured stream, resolved.
type stream struct {
	cfg         StreamConfig
	arn         string
	id          string // multi-stream identifier; "" in single-stream mode
	consumerARN string // enhanced fan-out consumer
}

func (s *stream) leaseKey(shardID string) string {
	if s.id == "" {
		return shardID
	}
	return s.id + ":" + shardID
}

// resolveStreams looks up each stream's ARN and, in multi-stream mode, its
// Java KCL identifier; it registers fan-out consumers when configured.
func (c *Consumer) resolveStreams(ctx context.Context) error {
	c.byID = make(map[string]*stream)
	for _, sc := range c.cfg.Streams {
		s := &stream{cfg: sc}
		out, err := c.kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &sc.Name})
		if err != nil {
			return fmt.Errorf("describe stream %s: %w", sc.Name, err)
		}
		d := out.StreamDescriptionSummary
		s.arn = deref(d.StreamARN)
		if c.cfg.MultiStream {
			s.id = sc.Identifier
			if s.id == "" {
				account := arnAccount(s.arn)
				if account == "" || d.StreamCreationTimestamp == nil {
					return fmt.Errorf("stream %s: cannot derive the multi-stream identifier from ARN %q; set StreamConfig.Identifier", sc.Name, s.arn)
				}
				s.id = fmt.Sprintf("%s:%s:%d", account, sc.Name, d.StreamCreationTimestamp.Unix())
			}
			c.byID[s.id] = s
		}
		if c.cfg.FanOut {
			if s.consumerARN, err = c.registerFanOut(ctx, s); err != nil {
				return err
			}
		}
		c.streams = append(c.streams, s)
	}
	return nil
}

// arnAccount extracts the account from arn:aws:kinesis:region:account:stream/name.
func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// streamOf maps a lease to its configured stream and shard id; ok is false
// for leases of streams this worker does not consume.
func (c *Consumer) streamOf(l *lease) (s *stream, shardID string, ok bool) {
	if !c.cfg.MultiStream {
		return c.streams[0], l.key, true
	}
	i := strings.LastIndexByte(l.key, ':')
	if i < 0 {
		return nil, "", false
	}
	s, ok = c.byID[l.key[:i]]
	return s, l.key[i+1:], ok
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
