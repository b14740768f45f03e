package consumer

import (
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// splitShardZero splits shardId-000000000000 at a quarter of the hash space
// (children 2 and 3 on a two-shard stream) and waits for the stream.
func splitShardZero(t *testing.T, k *kinesis.Client, stream string) {
	t.Helper()
	quarter := new(big.Int).Lsh(big.NewInt(1), 126)
	if _, err := k.SplitShard(devstacktest.Ctx(t), &kinesis.SplitShardInput{StreamName: &stream,
		ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(quarter.String())}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, k, stream)
}

// After a split, the parent's finished lease is deleted once its children
// have leases and the retention has passed, and later shard syncs neither
// recreate it nor read the parent again: every record is delivered once.
func TestFinishedLeaseIsCleanedUpAndNotRecreated(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 2)
	table := env.Name("leases")
	cfg := testConfig(table, "w1", stream)
	cfg.CompletedLeaseRetention = time.Second
	col := newCollector()
	run(t, newConsumer(t, cfg, env.Kinesis, env.DynamoDB), col.handler("w1", nil))

	before := produce(t, env.Kinesis, stream, 60, "before")
	waitFor(t, 60*time.Second, "records before the split", func() bool { return col.has(before) == 0 })
	splitShardZero(t, env.Kinesis, stream)
	after := produce(t, env.Kinesis, stream, 60, "after")
	all := append(before, after...)
	waitFor(t, 90*time.Second, "every record delivered", func() bool { return col.has(all) == 0 })

	const parent = "shardId-000000000000"
	waitFor(t, 60*time.Second, "the parent's lease deleted", func() bool {
		_, ok := checkpoints(t, env.DynamoDB, table)[parent]
		return !ok
	})
	cps := checkpoints(t, env.DynamoDB, table)
	for _, id := range []string{"shardId-000000000001", "shardId-000000000002", "shardId-000000000003"} {
		if _, ok := cps[id]; !ok {
			t.Errorf("lease %s missing: only finished parents may be deleted (leases: %v)", id, keysOf(cps))
		}
	}
	// Three more shard syncs: the parent is still in ListShards, but its
	// children are leased, so it must not get a lease (and be read) again.
	time.Sleep(3 * cfg.ShardSyncInterval)
	if _, ok := checkpoints(t, env.DynamoDB, table)[parent]; ok {
		t.Fatalf("the parent's lease was created again after cleanup")
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for k, n := range col.count {
		if n != 1 {
			t.Errorf("record %v delivered %d times", k, n)
		}
	}
}

// A LATEST start skips closed shards; a later shard sync must not then give
// them a lease at TRIM_HORIZON and replay history the application asked to
// skip.
func TestLatestStartNeverReadsClosedShards(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 2)
	old := produce(t, env.Kinesis, stream, 40, "old")
	splitShardZero(t, env.Kinesis, stream)
	old = append(old, produce(t, env.Kinesis, stream, 40, "old-after-split")...)

	table := env.Name("leases")
	cfg := testConfig(table, "w1", stream)
	cfg.Streams[0].InitialPosition = Latest
	col := newCollector()
	// What is produced after the start must be delivered: wait until each
	// open shard has its LATEST iterator (a fixed pause would be a guess,
	// and too short on a loaded machine).
	var mu sync.Mutex
	latest := map[string]bool{}
	fk := &faultyKinesis{KinesisAPI: env.Kinesis, gotIterator: func(shard string, typ ktypes.ShardIteratorType) {
		mu.Lock()
		defer mu.Unlock()
		if typ == ktypes.ShardIteratorTypeLatest {
			latest[shard] = true
		}
	}}
	run(t, newConsumer(t, cfg, fk, env.DynamoDB), col.handler("w1", nil))
	waitFor(t, 60*time.Second, "LATEST iterators on the three open shards", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(latest) == 3
	})
	fresh := produce(t, env.Kinesis, stream, 60, "fresh")
	waitFor(t, 60*time.Second, "records produced after the start", func() bool { return col.has(fresh) == 0 })
	time.Sleep(3 * cfg.ShardSyncInterval)
	if _, ok := checkpoints(t, env.DynamoDB, table)["shardId-000000000000"]; ok {
		t.Error("the closed shard got a lease after a LATEST start")
	}
	if n := len(old) - col.has(old); n > 0 {
		t.Errorf("%d records written before the LATEST start were delivered", n)
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
