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
	obs, err := newPromObserver(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	q := &qualityMonitor{c: qualityConfig{
		pipeline: "p", scorer: "sc", stream: "s", problem: dataset.ProblemBinary, horizon: time.Minute,
		period: period, settle: time.Second, delay: time.Second, span: time.Second,
		s3: env.S3, bucket: bucket, results: "results/sc/", labels: "groundtruth/p/", out: "monitoring/model-quality/p/sc/",
		obs: obs, log: slog.Default(), now: func() time.Time { return start.Add(time.Hour) },
	}}
	q.store = &partStore{s3: env.S3, bucket: bucket, prefix: q.c.out, period: period}
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
