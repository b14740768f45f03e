package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/sinks"
)

// newTestQualityMonitor is a binary quality monitor of scorer "sc" on
// pipeline "p" over bucket, judging periods of period with one-second
// delays and settle time, its clock now.
func newTestQualityMonitor(t *testing.T, env *devstacktest.Env, bucket string, period time.Duration, now func() time.Time) (*qualityMonitor, *promObserver) {
	t.Helper()
	obs, err := newPromObserver(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	q := &qualityMonitor{c: qualityConfig{
		pipeline: "p", scorer: "sc", stream: "s", problem: dataset.ProblemBinary, horizon: time.Minute,
		period: period, settle: time.Second, delay: time.Second, span: time.Second,
		s3: env.S3, bucket: bucket, results: "results/sc/", labels: "groundtruth/p/", out: "monitoring/model-quality/p/sc/",
		obs: obs, log: slog.Default(), now: now,
	}}
	q.store = &partStore{s3: env.S3, bucket: bucket, prefix: q.c.out, period: period}
	return q, obs
}

// A results file no reader can open fails its period's judgement, but only
// a few times: then the period is left unjudged, logged and counted, and
// the monitor goes on to the next one instead of retrying it for ever.
func TestQualityMonitorLeavesAnUnreadablePeriodBehind(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	period := 10 * time.Second
	start := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	key := fmt.Sprintf("results/sc/%sshardId-000000000000_1.0_2.0_%d.parquet", sinks.ResultsPartition("s", start), start.Add(20*time.Second).UnixMilli()) // a later window end: the period is due
	if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader([]byte("not parquet"))}); err != nil {
		t.Fatal(err)
	}
	now := start.Add(time.Hour)
	q, obs := newTestQualityMonitor(t, env, bucket, period, func() time.Time { return now })
	for attempt := 1; attempt < maxPeriodAttempts; attempt++ {
		if err := q.pass(ctx); err == nil {
			t.Fatalf("pass %d judged a period whose only file is not Parquet", attempt)
		}
		if !q.next.Equal(start) {
			t.Fatalf("pass %d moved on to %v before the period's attempts were spent", attempt, q.next)
		}
	}
	if err := q.pass(context.WithoutCancel(ctx)); err != nil {
		t.Fatalf("the last attempt: %v", err)
	}
	if !q.next.After(start) {
		t.Errorf("the monitor stays at %v: one bad file stopped it", q.next)
	}
	if got := testutil.ToFloat64(obs.qualityProm.failed.WithLabelValues("sc", "period_skipped")); got != 1 {
		t.Errorf("period_skipped counted %v times, want 1", got)
	}
}

// A reducer that takes over finds the old owner's results stopped before
// the next period and its own not written yet: silent, but not past the
// period. The period waits for them; passed over, it would never be
// judged (CI saw a new reducer skip three periods so).
func TestQualityMonitorWaitsForResultsToReachAPeriod(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	period := 10 * time.Second
	start := time.Date(2026, 12, 3, 7, 0, 30, 0, time.UTC)
	put := func(key, body string) {
		t.Helper()
		if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: bytes.NewReader([]byte(body))}); err != nil {
			t.Fatal(err)
		}
	}
	resultKey := func(shard string, windowStart, lastEnd time.Time) string {
		return fmt.Sprintf("results/sc/%s%s_1.0_2.0_%d.parquet", sinks.ResultsPartition("s", windowStart), shard, lastEnd.UnixMilli())
	}
	out := "monitoring/model-quality/p/sc/"
	// The old owner judged the period before and wrote results up to
	// start (a window ending on the boundary is the period before's).
	put(out+progressFile, fmt.Sprintf(`{"judged":%q}`, start.Add(-period).Format(time.RFC3339)))
	put(resultKey("shardId-000000000000", start.Add(-period), start), "not read")
	put(resultKey("shardId-000000000001", start.Add(-period), start.Add(-5*time.Second)), "not read")
	now := start.Add(time.Hour)
	q, _ := newTestQualityMonitor(t, env, bucket, period, func() time.Time { return now })
	for pass := range 3 {
		if err := q.pass(ctx); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		if !q.next.Equal(start) {
			t.Fatalf("pass %d, the shards silent for %v: the monitor moved on to %v, passing over %v, which no result has reached",
				pass, time.Duration(pass)*time.Minute, q.next, start)
		}
		now = now.Add(time.Minute) // far past the delay and settle time
	}
	// Results past the period, hours later: the periods between have
	// nothing, and the monitor goes on.
	later := start.Add(2 * time.Hour)
	put(resultKey("shardId-000000000000", later, later.Add(time.Second)), "not read")
	if err := q.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if !q.next.After(start) {
		t.Errorf("the monitor stays at %v with results two hours after it", q.next)
	}
}
