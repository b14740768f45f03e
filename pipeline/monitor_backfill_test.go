package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/monitor"
)

// TestMonitorJudgesABackfillThatStopsAcrossALeaseMove: two workers
// monitor a stream of readings three minutes old (a backlog, as far as the
// monitor can tell) whose data stops just after period A: the event time
// never passes A's end, lateness and settle time, yet A is judged from
// both workers' parts once their shards have been silent long enough.
// Then the reducer stops, the other worker takes its shard (the stream's
// first: it becomes the reducer and replays the shard from the
// checkpoint), and period B, whose data also stops short, is judged by it.
// Before a backlog shard could go silent, neither period was ever judged.
func TestMonitorJudgesABackfillThatStopsAcrossALeaseMove(t *testing.T) {
	// Not parallel: two workers beside the package's parallel tests (see
	// TestMonitorFindsDriftInTheStream).
	tp := newTestPipeline(t)
	base := t.TempDir()
	writeMonitorBaseline(t, base)
	src := strings.Replace(tp.yaml, "alerts:\n  topic:", fmt.Sprintf(`monitor:
  period: 10s
  settle: 2s
  windows:
    - {window: w1s, baseline: %s}
alerts:
  topic:`, base), 1)
	cfg, err := config.Parse([]byte(monitorTestTiming(src)), "monitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg = cfg
	names := []string{"worker-m1", "worker-m2"}
	var stops []func() error
	var workers []interface{ HeldLeases() []string }
	for _, w := range names {
		stop, p := tp.startPipeline(t, w)
		stops, workers = append(stops, stop), append(workers, p)
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(workers[0].HeldLeases()) != 1 || len(workers[1].HeldLeases()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("leases not balanced one each after 90 s: %v and %v", workers[0].HeldLeases(), workers[1].HeldLeases())
		}
		time.Sleep(200 * time.Millisecond)
	}

	period := 10 * time.Second
	a := time.Now().UTC().Add(-3 * time.Minute).Truncate(period)
	b := a.Add(period)
	never := a.Add(time.Hour) // no drift here
	// Readings from a to a+10.9 s: the windows of A close (the watermark is
	// at a+10.7 s) and nothing after them does.
	putMonitorReadings(t, tp, a, 0, 110, never)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// verdict waits for a period's statistics.json to count rows rows: the
	// reducer may judge before the other worker's part is in, and judges
	// again when it comes.
	verdict := func(start time.Time, rows int64) {
		t.Helper()
		key := "monitoring/test/w1s/" + start.Format("2006/01/02/15/04/05") + "/statistics.json"
		deadline := time.Now().Add(4 * time.Minute) // -race, two workers, a loaded 2-core machine
		var got int64 = -1
		for {
			out, err := tp.env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(tp.bucket), Key: aws.String(key)})
			if err == nil {
				st, err := monitor.ReadStatistics(out.Body, key)
				out.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if got = st.Dataset.ItemCount; got == rows {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d rows after 4 minutes (-1: no verdict), want %d; dead letters: %v", key, got, rows, deadLetterReasons(t, tp))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	verdict(a, monMachines*10)

	// The reducer stops; the other worker takes the stream's first shard.
	red := 0
	if !slices.Contains(workers[0].HeldLeases(), "shardId-000000000000") {
		red = 1
	}
	if err := stops[red](); err != nil {
		t.Fatalf("graceful stop of %s: %v", names[red], err)
	}
	next := workers[1-red]
	deadline = time.Now().Add(90 * time.Second)
	for len(next.HeldLeases()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %v 90 s after %s stopped, want both shards", names[1-red], next.HeldLeases(), names[red])
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Readings to a+21.9 s: B's windows close (the one open at the stop is
	// replayed from the checkpoint by the new owner), and the event time
	// stops 0.3 s short of B's due point.
	putMonitorReadings(t, tp, a, 110, 110, never)
	verdict(b, monMachines*10)
	if err := stops[1-red](); err != nil {
		t.Fatalf("graceful stop of %s: %v", names[1-red], err)
	}
}
