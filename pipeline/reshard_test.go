package pipeline_test

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// TestWindowsAcrossSplitAndMerge reshards a stream while windows are open:
// a split during one 20 s window, a merge during the next. Each window of
// each machine must have exactly one final row (by the readers' rule) and
// it must hold every reading of the window: the parents hand their open
// windows over and the children replay the parents' tails.
func TestWindowsAcrossSplitAndMerge(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t)
	src := strings.NewReplacer("size: 1s", "size: 20s", "out_of_orderness: 200ms", "out_of_orderness: 1s",
		"idle_timeout: 3s", "idle_timeout: 10m").Replace(tp.yaml)
	cfg, err := config.Parse([]byte(src), "reshard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg = cfg
	reg := prometheus.NewRegistry()
	tp.registerer = reg
	stop, _ := tp.startPipeline(t, "worker-reshard")
	ctx := devstacktest.Ctx(t)
	k := tp.env.Kinesis

	machines := make([]string, 16)
	for i := range machines {
		machines[i] = fmt.Sprintf("press-%03d", i)
	}
	// Windows a little ahead of now, so every reading is on time.
	t1 := time.Now().UTC().Truncate(20 * time.Second).Add(20 * time.Second)
	sendAt := func(offsets ...time.Duration) {
		for _, d := range offsets {
			for _, m := range machines {
				tp.put(t, m, reading(m, t1.Add(d), 0.3))
			}
		}
	}
	sendAt(1*time.Second, 2*time.Second, 3*time.Second)
	// Split shard 0 at half its range while window 1 is open.
	if _, err := k.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: &tp.stream,
		ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(new(big.Int).Lsh(big.NewInt(1), 126).String())}); err != nil {
		t.Fatal(err)
	}
	waitStreamActive(t, k, tp.stream)
	sendAt(4*time.Second, 5*time.Second, 6*time.Second)
	// Window 2 closes window 1 on every shard.
	sendAt(21*time.Second, 22*time.Second, 23*time.Second)
	// Merge the split's upper child with shard 1 while window 2 is open,
	// once window 1 is out: the children then hold only their own records
	// (a child that ends while it still holds its parent's tail emits its
	// windows incomplete, a documented limit).
	waitWindowsComplete(t, tp, machines, t1)
	if _, err := k.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: &tp.stream,
		ShardToMerge: aws.String("shardId-000000000003"), AdjacentShardToMerge: aws.String("shardId-000000000001")}); err != nil {
		t.Fatal(err)
	}
	waitStreamActive(t, k, tp.stream)
	sendAt(24*time.Second, 25*time.Second, 26*time.Second)
	sendAt(41 * time.Second) // closes window 2

	// Each window's final rows (one per window: no key is evicted here)
	// hold all six readings.
	want := map[string]float64{}
	for _, m := range machines {
		want[windowKey(m, t1)], want[windowKey(m, t1.Add(20*time.Second))] = 6, 6
	}
	counts, _ := waitCounts(t, tp, 90*time.Second, countsAtLeast(want))
	for k := range want {
		if counts[k] != 6 {
			t.Errorf("window %s: the final rows count %v readings, 6 were sent", k, counts[k])
		}
	}
	if n := counterValue(t, reg, "streamscore_pipeline_tail_records_replayed_total"); n == 0 {
		t.Error("no parent tail was replayed: the test did not exercise the hand-over")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func waitStreamActive(t *testing.T, k *kinesis.Client, stream string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, err := k.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: &stream})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stream %s not ACTIVE within a minute", stream)
}

// waitWindowsComplete waits until every machine's window starting at ws
// counts six readings.
func waitWindowsComplete(t *testing.T, tp *testPipeline, machines []string, ws time.Time) {
	t.Helper()
	want := map[string]float64{}
	for _, m := range machines {
		want[windowKey(m, ws)] = 6
	}
	if counts, _ := waitCounts(t, tp, 2*time.Minute, countsAtLeast(want)); !countsAtLeast(want)(counts) {
		t.Fatalf("the windows at %s were not all out, complete, within 2 minutes", ws.Format(time.TimeOnly))
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// gaugeSeries counts the series of a metric.
func gaugeSeries(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}
