package consumer

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func waitActive(t *testing.T, k *kinesis.Client, stream string) {
	t.Helper()
	waitFor(t, 60*time.Second, "stream ACTIVE", func() bool {
		out, err := k.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: &stream})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive
	})
}

func TestSplitAndMergeWhileProducing(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 2)
	table := env.Name("leases")
	col := newCollector()
	for _, w := range []string{"w1", "w2"} {
		run(t, newConsumer(t, testConfig(table, w, stream), env.Kinesis, env.DynamoDB), col.handler(w, nil))
	}
	ctx := devstacktest.Ctx(t)
	produced := make(chan []key, 1)
	stopProducing := make(chan struct{})
	// landed counts the records written per shard so far: each step
	// waits until the shards it needs records on have some, instead of
	// pausing for a guessed time (a loaded machine writes less per second).
	var mu sync.Mutex
	landed := map[string]int{}
	go func() {
		var all []key
		for {
			select {
			case <-stopProducing:
				produced <- all
				return
			default:
			}
			batch := produce(t, env.Kinesis, stream, 40, "l")
			all = append(all, batch...)
			mu.Lock()
			for _, k := range batch {
				landed[k.shard]++
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// The first batch after a reshard can still land on a parent, so wait
	// for a few batches' worth on every shard named.
	waitLanded := func(shards ...string) {
		mu.Lock()
		base := map[string]int{}
		for _, s := range shards {
			base[s] = landed[s]
		}
		mu.Unlock()
		waitFor(t, 60*time.Second, fmt.Sprintf("records on %v", shards), func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range shards {
				if landed[s]-base[s] < 20 {
					return false
				}
			}
			return true
		})
	}
	waitLanded("shardId-000000000000", "shardId-000000000001")

	// Split shard 0 at a quarter of the hash space: children 2 and 3.
	quarter := new(big.Int).Lsh(big.NewInt(1), 126)
	if _, err := env.Kinesis.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: &stream,
		ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(quarter.String())}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, env.Kinesis, stream)
	waitLanded("shardId-000000000002", "shardId-000000000003")
	// Merge child 3 with shard 1 (its adjacent range): child 4 has two parents.
	if _, err := env.Kinesis.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: &stream,
		ShardToMerge: aws.String("shardId-000000000003"), AdjacentShardToMerge: aws.String("shardId-000000000001")}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, env.Kinesis, stream)
	waitLanded("shardId-000000000004")
	close(stopProducing)
	all := <-produced

	waitFor(t, 90*time.Second, "every record delivered", func() bool { return col.has(all) == 0 })

	// Lineage: for every child, every parent record came before any child record.
	shards, err := env.Kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: &stream})
	if err != nil {
		t.Fatal(err)
	}
	first, last := map[string]int64{}, map[string]int64{}
	for _, d := range col.deliveries() {
		if f, ok := first[d.shard]; !ok || d.order < f {
			first[d.shard] = d.order
		}
		if d.order > last[d.shard] {
			last[d.shard] = d.order
		}
	}
	perShard := map[string]int{}
	for _, k := range all {
		perShard[k.shard]++
	}
	checked := 0
	for _, sh := range shards.Shards {
		child := *sh.ShardId
		if _, ok := first[child]; !ok {
			continue
		}
		for _, p := range parentsOf(aws.ToString(sh.ParentShardId), aws.ToString(sh.AdjacentParentShardId)) {
			if last[p] > first[child] {
				t.Errorf("child %s record delivered (order %d) before parent %s finished (last at %d)", child, first[child], p, last[p])
			}
			checked++
		}
	}
	if checked < 3 {
		t.Fatalf("only %d parent/child pairs had records on both sides (per shard: %v); the test proved too little", checked, perShard)
	}
	t.Logf("%d records over shards %v; %d parent/child pairs in order", len(all), perShard, checked)

	// Closed shards are checkpointed SHARD_END with their children recorded.
	cps := checkpoints(t, env.DynamoDB, table)
	for _, id := range []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000003"} {
		waitFor(t, 10*time.Second, id+" at SHARD_END", func() bool {
			cps = checkpoints(t, env.DynamoDB, table)
			return cps[id].checkpoint.Sequence == ShardEnd
		})
		if len(cps[id].children) == 0 {
			t.Errorf("%s: childShardIds not recorded", id)
		}
	}
	if got := cps["shardId-000000000004"].parents; len(got) != 2 {
		t.Errorf("merged child parents = %v, want both", got)
	}
}
