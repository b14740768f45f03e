package consumer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
)

// errKilled is what a killed worker's clients answer: the process is gone.
var errKilled = errors.New("test: worker killed")

// killSwitch wraps a worker's real clients; after kill every call fails, as
// if the process had died (no release, no final checkpoint, no renewal).
// It decorates the real clients and is not a fake of either API.
type killSwitch struct {
	dead atomic.Bool
	k    KinesisAPI
	d    DynamoDBAPI
}

func (s *killSwitch) kill()       { s.dead.Store(true) }
func (s *killSwitch) alive() bool { return !s.dead.Load() }

type killableKinesis struct{ *killSwitch }
type killableDynamo struct{ *killSwitch }

func (k killableKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, o ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.k.ListShards(ctx, in, o...)
}
func (k killableKinesis) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, o ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.k.GetShardIterator(ctx, in, o...)
}
func (k killableKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, o ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.k.GetRecords(ctx, in, o...)
}
func (k killableKinesis) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, o ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.k.DescribeStreamSummary(ctx, in, o...)
}
func (k killableKinesis) RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, o ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.k.RegisterStreamConsumer(ctx, in, o...)
}
func (k killableKinesis) DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, o ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.k.DescribeStreamConsumer(ctx, in, o...)
}
func (k killableKinesis) SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, o ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.k.SubscribeToShard(ctx, in, o...)
}

func (d killableDynamo) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.CreateTable(ctx, in, o...)
}
func (d killableDynamo) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, o ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.DescribeTable(ctx, in, o...)
}
func (d killableDynamo) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.Scan(ctx, in, o...)
}
func (d killableDynamo) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.GetItem(ctx, in, o...)
}
func (d killableDynamo) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.PutItem(ctx, in, o...)
}
func (d killableDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.UpdateItem(ctx, in, o...)
}
func (d killableDynamo) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.DeleteItem(ctx, in, o...)
}

func (d killableDynamo) UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.UpdateTable(ctx, in, o...)
}
func (d killableDynamo) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if !d.alive() {
		return nil, errKilled
	}
	return d.d.Query(ctx, in, o...)
}

func newKillSwitch(k KinesisAPI, d DynamoDBAPI) (*killSwitch, KinesisAPI, DynamoDBAPI) {
	s := &killSwitch{k: k, d: d}
	return s, killableKinesis{s}, killableDynamo{s}
}

// checkpoints reads every lease's checkpoint, keyed by lease key.
func checkpoints(t *testing.T, db *dynamodb.Client, table string) map[string]lease {
	t.Helper()
	ls, err := (&leaseTable{db: db, name: table}).list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]lease{}
	for _, l := range ls {
		m[l.key] = l
	}
	return m
}

func TestFailoverAfterKill(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	const shards = 4
	stream := env.CreateStream(t, shards)
	table := env.Name("leases")
	col := newCollector()
	ks, kin, ddb := newKillSwitch(env.Kinesis, env.DynamoDB)
	run(t, newConsumer(t, testConfig(table, "doomed", stream), kin, ddb), col.handler("doomed", ks.alive))
	survivor := newConsumer(t, testConfig(table, "survivor", stream), env.Kinesis, env.DynamoDB)
	run(t, survivor, col.handler("survivor", nil))
	waitFor(t, 60*time.Second, "2/2 spread", func() bool {
		o := owners(t, env.DynamoDB, table)
		return o["doomed"] == shards/2 && o["survivor"] == shards/2
	})

	// Produce in the background, kill the doomed worker in the middle.
	produced := make(chan []key, 1)
	go func() {
		var all []key
		for i := 0; i < 12; i++ {
			all = append(all, produce(t, env.Kinesis, stream, 50, "f")...)
			time.Sleep(100 * time.Millisecond)
		}
		produced <- all
	}()
	time.Sleep(600 * time.Millisecond)
	ks.kill()
	atKill := checkpoints(t, env.DynamoDB, table)
	took := waitFor(t, 30*time.Second, "survivor holding every shard", func() bool {
		return len(survivor.HeldLeases()) == shards
	})
	limit := testFailover + testRenew
	t.Logf("survivor held all %d shards %v after the kill (failover %v + renewal %v = %v)", shards, took, testFailover, testRenew, limit)
	// A scan and the takes themselves take time on a shared machine; allow
	// half a renewal interval beyond the bound.
	if took > limit+testRenew/2 {
		t.Errorf("failover took %v, want at most failover+renewal = %v", took, limit)
	}

	all := <-produced
	waitFor(t, 60*time.Second, "every record delivered", func() bool { return col.has(all) == 0 })
	// Duplicates only after the dead worker's last checkpoint.
	counts := map[key]int{}
	for _, d := range col.deliveries() {
		counts[d.key]++
	}
	dups := 0
	for k, n := range counts {
		if n < 2 {
			continue
		}
		dups++
		cp := atKill[k.shard].checkpoint
		if isSequenceNumber(cp.Sequence) && (shardpos.Position{Sequence: k.seq, SubSequence: k.sub}).Compare(cp) <= 0 {
			t.Errorf("record %v delivered %d times although checkpointed at %v before the kill", k, n, cp)
		}
	}
	t.Logf("%d records produced, %d delivered more than once (all after the dead worker's checkpoints)", len(all), dups)
}

func TestGracefulShutdownHandsOverWithoutDuplicates(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	const shards = 4
	stream := env.CreateStream(t, shards)
	table := env.Name("leases")
	col := newCollector()
	first := newConsumer(t, testConfig(table, "first", stream), env.Kinesis, env.DynamoDB)
	stopFirst := run(t, first, col.handler("first", nil))
	waitFor(t, 30*time.Second, "first worker holding every shard", func() bool { return len(first.HeldLeases()) == shards })

	produced := make(chan []key, 1)
	go func() {
		var all []key
		for i := 0; i < 10; i++ {
			all = append(all, produce(t, env.Kinesis, stream, 40, "g")...)
			time.Sleep(100 * time.Millisecond)
		}
		produced <- all
	}()
	time.Sleep(500 * time.Millisecond)
	if err := stopFirst(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	// Every lease released, each at the last record the first worker
	// delivered on its shard.
	last := map[string]shardpos.Position{}
	for _, d := range col.deliveries() {
		last[d.shard] = shardpos.Position{Sequence: d.seq, SubSequence: d.sub}
	}
	for k, l := range checkpoints(t, env.DynamoDB, table) {
		if l.owner != "" {
			t.Errorf("lease %s still owned by %q after graceful shutdown", k, l.owner)
		}
		if want, ok := last[k]; ok && l.checkpoint != want {
			t.Errorf("lease %s checkpoint %v, want the last delivered %v", k, l.checkpoint, want)
		}
	}
	next := newConsumer(t, testConfig(table, "next", stream), env.Kinesis, env.DynamoDB)
	run(t, next, col.handler("next", nil))
	took := waitFor(t, 30*time.Second, "next worker holding every shard", func() bool { return len(next.HeldLeases()) == shards })
	t.Logf("released leases picked up in %v (failover time %v)", took, testFailover)
	if took >= testFailover {
		t.Errorf("pickup took %v: released leases should not wait for expiry", took)
	}
	all := <-produced
	waitFor(t, 60*time.Second, "every record delivered", func() bool { return col.has(all) == 0 })
	seen := map[key]bool{}
	for _, d := range col.deliveries() {
		if seen[d.key] {
			t.Fatalf("record %v delivered twice across a graceful hand-over", d.key)
		}
		seen[d.key] = true
	}
}

func TestZombieCannotCheckpoint(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	table := env.Name("leases")
	produce(t, env.Kinesis, stream, 20, "z")
	got := make(chan *Batch, 1)
	release := make(chan struct{})
	cpErr := make(chan error, 1)
	var handlerCtx context.Context
	h := ProcessFunc(func(ctx context.Context, b *Batch) error {
		select {
		case got <- b:
		default:
			return nil
		}
		handlerCtx = ctx
		<-release
		cpErr <- b.Checkpointer.Checkpoint(context.Background(), b.Last())
		return nil
	})
	cfg := testConfig(table, "zombie", stream)
	cfg.RenewInterval = 2 * time.Second // let the checkpoint, not the renewer, find out
	run(t, newConsumer(t, cfg, env.Kinesis, env.DynamoDB), h)
	<-got
	// Another worker takes the lease, as after a long GC pause of the zombie.
	lt := &leaseTable{db: env.DynamoDB, name: table}
	l, ok, err := lt.get(context.Background(), "shardId-000000000000")
	if err != nil || !ok {
		t.Fatalf("get lease: %v %v", ok, err)
	}
	if err := lt.take(context.Background(), &l, "thief"); err != nil {
		t.Fatal(err)
	}
	close(release)
	err = <-cpErr
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("zombie checkpoint: err = %v, want ErrLeaseLost", err)
	}
	if handlerCtx.Err() == nil {
		waitFor(t, 5*time.Second, "handler context cancelled", func() bool { return handlerCtx.Err() != nil })
	}
	after, _, err := lt.get(context.Background(), "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if after.owner != "thief" || after.checkpoint != l.checkpoint {
		t.Fatalf("lease after zombie checkpoint: owner %q checkpoint %v; want thief and %v", after.owner, after.checkpoint, l.checkpoint)
	}
}
