package sinks

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// downSink is a sink whose endpoint sits behind a disabled proxy, so
// nothing written to it can become durable.
type downSink struct {
	s    Sink
	reg  *prometheus.Registry
	name string // the sink label its retries are counted under
	rows []row  // rows that make the sink call its endpoint
}

// openDown opens one kind of sink behind a toxiproxy proxy and takes the
// proxy down.
func openDown(t *testing.T, kind string) downSink {
	t.Helper()
	env := devstacktest.New(t)
	m, reg := newMetrics(t)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rows := []row{{entity: "press-1", ws: t0, feats: []float64{1, 2}, score: 0.95, model: "m1"}}
	var (
		s     Sink
		err   error
		proxy *devstack.Proxy
		name  = kind
	)
	switch kind {
	case "features", "tee":
		table := createFeatureTable(t, env)
		proxy = env.Proxy(t, env.Endpoints.DynamoDB)
		down := devstack.Endpoints{DynamoDB: proxy.URL()}.Clients().DynamoDB
		s, err = NewFeatureTable(FeatureTableOptions{Client: down, Table: table, Queue: 1, Backoff: outageBackoff, Metrics: m})
		if err == nil && kind == "tee" {
			// A healthy sink next to the stuck one: its ack alone must
			// not make the batch durable, and Close stops both.
			name = "features"
			var up Sink
			up, err = NewFeatureTable(FeatureTableOptions{Client: env.DynamoDB, Table: table, Backoff: outageBackoff})
			s = Tee(up, s)
		}
	case "s3":
		bucket := env.CreateBucket(t)
		proxy = env.Proxy(t, env.Endpoints.S3)
		down := devstack.Endpoints{S3: proxy.URL()}.Clients().S3
		s, err = NewS3(S3Options{Client: down, Bucket: bucket, SpoolDir: t.TempDir(), RollAge: 100 * time.Millisecond, Backoff: outageBackoff, Metrics: m})
	case "cloudwatch":
		proxy = env.Proxy(t, env.Endpoints.CloudWatch)
		down := devstack.Endpoints{CloudWatch: proxy.URL()}.Clients().CloudWatch
		s, err = NewCloudWatch(CloudWatchOptions{Client: down, Namespace: env.Name("close"), Pipeline: "test", Interval: 100 * time.Millisecond,
			ServerTimestamps: true, Backoff: outageBackoff, Metrics: m})
	case "alerts":
		topic, _ := env.CreateTopicQueue(t, false)
		proxy = env.Proxy(t, env.Endpoints.SNS)
		down := devstack.Endpoints{SNS: proxy.URL()}.Clients().SNS
		s, err = NewAlerts(AlertOptions{Client: down, TopicARN: topic, Backoff: outageBackoff, Metrics: m,
			Rules: []AlertRule{{Name: "failure-risk", Levels: []AlertLevel{{Severity: "critical", Threshold: 0.9}}, FireAfter: 1, ClearAfter: 1}}})
	default:
		t.Fatalf("unknown sink kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := proxy.SetEnabled(devstacktest.Ctx(t), false); err != nil {
		t.Fatal(err)
	}
	return downSink{s: s, reg: reg, name: name, rows: rows}
}

func (d downSink) write(t *testing.T, ctx context.Context, a *acks, name string) error {
	t.Helper()
	rec := resultRecord(t, 2, d.rows)
	defer rec.Release()
	return d.s.Write(ctx, Batch{Stream: "factory", Shard: "shardId-000000000001", Range: Range{First: pos(1), Last: pos(2)}, Rec: rec, Ack: a.fn(name)})
}

// closeWithin calls Close and fails the test if it has not returned 60s
// after ctx ended: Close must give up on an outage when its context does.
func closeWithin(t *testing.T, s Sink, ctx context.Context) error {
	t.Helper()
	return within(t, ctx, "Close", func() error { return s.Close(ctx) })
}

// checkGaveUp asserts what Close promises for a batch that never became
// durable: it is acked, and with an error, so the pipeline's checkpoint
// stays behind it. The error is the runner's shutdown (context.Canceled)
// or the caller's context error wrapped with the last failure.
func checkGaveUp(t *testing.T, a *acks, name string) {
	t.Helper()
	err := waitAck(t, a, name, 60*time.Second)
	if err == nil {
		t.Fatalf("batch %s acked as durable although its endpoint was down until Close gave up", name)
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("batch %s acked with %v, want an error matching the context's end", name, err)
	}
}

// Close whose context has already ended, or ends while an endpoint is
// down, returns promptly with the context's error, and acks every batch it
// could not make durable with an error instead of with nil. After Close the
// sink refuses writes.
func TestCloseGivesUpWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"features", "s3", "cloudwatch", "alerts", "tee"} {
		for _, end := range []string{"expired", "cancelled"} {
			t.Run(kind+"/"+end, func(t *testing.T) {
				t.Parallel()
				d := openDown(t, kind)
				ctx := outageCtx(t)
				a := newAcks()
				if err := d.write(t, ctx, a, "b"); err != nil {
					t.Fatal(err)
				}
				// The sink is retrying the outage, not merely queueing.
				waitRetries(t, d.reg, d.name, 1)
				notAcked(t, a, "b", "while its endpoint was down")

				var (
					cctx    context.Context
					cancel  context.CancelFunc
					wantErr error
				)
				if end == "expired" {
					cctx, cancel = context.WithDeadline(ctx, time.Now().Add(-time.Second))
					wantErr = context.DeadlineExceeded
				} else {
					cctx, cancel = context.WithCancel(ctx)
					go func() {
						time.Sleep(200 * time.Millisecond) // Close is waiting by then, usually; either way it must give up
						cancel()
					}()
					wantErr = context.Canceled
				}
				defer cancel()
				if err := closeWithin(t, d.s, cctx); !errors.Is(err, wantErr) {
					t.Fatalf("Close = %v, want an error matching %v", err, wantErr)
				}
				checkGaveUp(t, a, "b")
				if err := d.write(t, ctx, a, "after"); !errors.Is(err, ErrClosed) {
					t.Fatalf("Write after Close = %v, want ErrClosed", err)
				}
			})
		}
	}
}

// Writers blocked on a full queue during an outage must not hold Close
// past its context: the worker cannot make room until the endpoint comes
// back, so Close has to abort the retries first. Every batch a Write
// accepted is acked with an error; a Write that was refused is never acked.
func TestCloseGivesUpWithWritersBlockedOnFullQueue(t *testing.T) {
	t.Parallel()
	d := openDown(t, "features") // Queue: 1
	ctx := outageCtx(t)
	a := newAcks()
	// Batch 1 occupies the worker, batch 2 the queue; batch 3 blocks.
	for _, n := range []string{"1", "2"} {
		if err := d.write(t, ctx, a, n); err != nil {
			t.Fatal(err)
		}
	}
	waitRetries(t, d.reg, d.name, 1)
	blocked := make(chan error, 1)
	rec := resultRecord(t, 2, d.rows)
	defer rec.Release()
	go func() {
		blocked <- d.s.Write(ctx, Batch{Stream: "factory", Shard: "shardId-000000000001", Rec: rec, Ack: a.fn("3")})
	}()
	waitBlockedInWrite(t, "TestCloseGivesUpWithWritersBlockedOnFullQueue")

	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if err := closeWithin(t, d.s, expired); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want an error matching context.DeadlineExceeded", err)
	}
	checkGaveUp(t, a, "1")
	checkGaveUp(t, a, "2")
	select {
	case err := <-blocked:
		if err == nil {
			checkGaveUp(t, a, "3")
		} else if _, acked := a.get("3"); acked {
			t.Fatalf("batch 3 refused (%v) and acked", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a Write blocked on the full queue was still blocked 60s after Close returned")
	}
}

// waitBlockedInWrite waits until a goroutine started by the named test is
// parked in runner.Write: the state the test is about, which nothing else
// exposes. Other tests' blocked writers run in parallel, hence the creator.
func waitBlockedInWrite(t *testing.T, test string) {
	t.Helper()
	buf := make([]byte, 4<<20)
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, "sinks.(*runner).Write(") &&
				strings.Contains(g, "created by github.com/streamscore/streamscore/sinks."+test) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the third Write did not block on the full queue within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An S3 sink owning more shards than anything buffers must still close
// during an outage: every shard's roll waits in its own upload, and all of
// them finish at once when Close gives up. (Uploads used to report freed
// bytes on a channel of 64 that nothing read during Close, so the 65th
// upload never finished and Close never returned.)
func TestS3CloseWithManyShardsDuringOutage(t *testing.T) {
	t.Parallel()
	d := openDown(t, "s3")
	ctx := outageCtx(t)
	a := newAcks()
	rec := resultRecord(t, 2, d.rows)
	defer rec.Release()
	const shards = 100
	for i := range shards {
		b := Batch{Stream: "factory", Shard: fmt.Sprintf("shardId-%012d", i), Range: Range{First: pos(1), Last: pos(2)}, Rec: rec, Ack: a.fn(fmt.Sprint(i))}
		if err := d.s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	waitRetries(t, d.reg, d.name, 8)
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if err := closeWithin(t, d.s, expired); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want an error matching context.DeadlineExceeded", err)
	}
	for i := range shards {
		checkGaveUp(t, a, fmt.Sprint(i))
	}
}

// A Close called while another is giving up waits for it and reports the
// same outcome, instead of claiming a clean shutdown.
func TestSecondCloseReportsTheFirstOutcome(t *testing.T) {
	t.Parallel()
	d := openDown(t, "features")
	ctx := outageCtx(t)
	a := newAcks()
	if err := d.write(t, ctx, a, "b"); err != nil {
		t.Fatal(err)
	}
	waitRetries(t, d.reg, d.name, 1)
	cctx, cancel := context.WithCancel(ctx)
	first := make(chan error, 1)
	go func() { first <- d.s.Close(cctx) }()
	second := make(chan error, 1)
	go func() {
		// Started once the first is under way: it must not return before it.
		r := d.s.(interface{ closing() bool })
		for !r.closing() {
			time.Sleep(10 * time.Millisecond)
		}
		second <- d.s.Close(ctx)
	}()
	select {
	case err := <-second:
		t.Fatalf("second Close returned %v while the first was still waiting on the outage", err)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	err1, err2 := <-first, <-second
	if !errors.Is(err1, context.Canceled) || err2 != err1 {
		t.Fatalf("Close = %v, second Close = %v; want the same error matching context.Canceled", err1, err2)
	}
	checkGaveUp(t, a, "b")
}
