package consumer

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// javaCheckpoints writes 60 records to a two-shard stream and picks the
// checkpoints a Java application left mid-shard: the 5th record of shard
// 0 and the 3rd of shard 1. It returns the records by shard and the index
// of each checkpoint.
func javaCheckpoints(t *testing.T, k *kinesis.Client, stream string) (byShard map[string][]key, cpIndex map[string]int) {
	t.Helper()
	byShard = map[string][]key{}
	for _, r := range produce(t, k, stream, 60, "j") {
		byShard[r.shard] = append(byShard[r.shard], r)
	}
	cpIndex = map[string]int{"shardId-000000000000": 4, "shardId-000000000001": 2}
	for s, i := range cpIndex {
		if len(byShard[s]) <= i+1 {
			t.Fatalf("shard %s got %d records; need more than %d", s, len(byShard[s]), i+1)
		}
	}
	return byShard, cpIndex
}

func TestResumesJavaKCLTable(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 2)
	table := env.Name("javakcl")
	byShard, cpIndex := javaCheckpoints(t, env.Kinesis, stream)
	// The table as a Java KCL application left it: owned by workers that
	// are gone, with checkpoints in the middle of each shard.
	lt := &leaseTable{db: env.DynamoDB, name: table}
	if err := lt.ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	items := loadJavaFixture(t, func(shard string) string { return byShard[shard][cpIndex[shard]].seq })
	for _, it := range items {
		l, err := leaseFromItem(it)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cpIndex[l.key]; !ok {
			continue // lineage items for shards this stream does not have
		}
		if _, err := env.DynamoDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &table, Item: it}); err != nil {
			t.Fatal(err)
		}
	}

	col := newCollector()
	run(t, newConsumer(t, testConfig(table, "go-worker", stream), env.Kinesis, env.DynamoDB), col.handler("go-worker", nil))
	var want []key
	for s, i := range cpIndex {
		want = append(want, byShard[s][i+1:]...)
	}
	waitFor(t, 30*time.Second, "records after the Java checkpoints", func() bool { return col.has(want) == 0 })
	time.Sleep(300 * time.Millisecond)
	if got := len(col.deliveries()); got != len(want) {
		t.Fatalf("delivered %d records, want the %d after the Java checkpoints (nothing at or before them)", got, len(want))
	}
	// Our writes keep the Java item readable by Java KCL.
	waitFor(t, 10*time.Second, "checkpoints written", func() bool {
		cps := checkpoints(t, env.DynamoDB, table)
		for s := range cpIndex {
			if cps[s].checkpoint.Sequence != byShard[s][len(byShard[s])-1].seq {
				return false
			}
		}
		return true
	})
	out, err := env.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &table, Key: keyOf("shardId-000000000001")})
	if err != nil {
		t.Fatal(err)
	}
	l, err := leaseFromItem(out.Item)
	if err != nil {
		t.Fatal(err)
	}
	if l.owner != "go-worker" || l.ownerSwitches != 0 || l.startHash == "" || l.endHash == "" {
		t.Errorf("lease after resume: %+v", l)
	}
	if _, ok := out.Item[attrPendingCheckpoint]; ok {
		t.Error("pendingCheckpoint left in place after a newer checkpoint")
	}
}

func TestSeveralStreamsOneTable(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	sensors := env.CreateStream(t, 2)
	events := env.CreateStream(t, 1)
	table := env.Name("multi")
	a := produce(t, env.Kinesis, sensors, 30, "s")
	b := produce(t, env.Kinesis, events, 30, "e")
	col := newCollector()
	run(t, newConsumer(t, testConfig(table, "w", sensors, events), env.Kinesis, env.DynamoDB), col.handler("w", nil))
	waitFor(t, 30*time.Second, "both streams delivered", func() bool { return col.has(append(a, b...)) == 0 })
	// Java KCL multi-stream lease keys: account:stream:creationEpoch:shardId.
	re := regexp.MustCompile(`^[0-9]+:(` + regexp.QuoteMeta(sensors) + `|` + regexp.QuoteMeta(events) + `):[0-9]+:shardId-[0-9]{12}$`)
	cps := checkpoints(t, env.DynamoDB, table)
	if len(cps) != 3 {
		t.Fatalf("%d leases, want 3", len(cps))
	}
	for k, l := range cps {
		if !re.MatchString(k) || l.streamID == "" || l.shardID == "" || k != l.streamID+":"+l.shardID {
			t.Errorf("lease key %q (streamName %q shardId %q) is not in Java KCL's multi-stream form", k, l.streamID, l.shardID)
		}
	}
}
