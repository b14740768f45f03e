package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/sinks"
)

// reduceFixture is a monitored window's S3 side on the local stack, with a
// clock the test moves.
type reduceFixture struct {
	t      *testing.T
	env    *devstacktest.Env
	bucket string
	clock  time.Time
	base   *monitor.Statistics
}

func (f *reduceFixture) worker(name string) *monitorSink {
	obs, err := newPromObserver(prometheus.NewRegistry())
	if err != nil {
		f.t.Fatal(err)
	}
	m := newMonitorSink(monitorConfig{
		pipeline: "p", window: "w", worker: name, period: 10 * time.Second, grace: 2 * time.Second, settle: 2 * time.Second,
		baseline: f.base, constraints: monitor.Suggest(f.base),
		store: &partStore{s3: f.env.S3, bucket: f.bucket, prefix: "monitoring/p/w/", period: 10 * time.Second, run: name},
		obs:   obs, log: slog.Default(), now: func() time.Time { return f.clock },
	})
	f.t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

func profileOf(rows int, v float64) *monitor.Statistics {
	p := monitor.NewProfile([]monitor.Column{{Name: "x", Kind: monitor.Fractional}}, monitor.Options{})
	for i := range rows {
		p.ObserveFloat(0, v+float64(i%10)/100)
	}
	p.AddRows(rows)
	return p.Statistics()
}

// writes a worker's part of a period and waits until it is in S3.
func (f *reduceFixture) part(m *monitorSink, start time.Time, rows int) {
	f.t.Helper()
	m.io.part(start, profileOf(rows, 1))
	if err := m.io.wait(devstacktest.Ctx(f.t)); err != nil {
		f.t.Fatal(err)
	}
}

// verdict returns the item count of a period's fleet statistics, -1 when
// the period has none.
func (f *reduceFixture) verdict(start time.Time) int64 {
	f.t.Helper()
	key := "monitoring/p/w/" + start.Format("2006/01/02/15/04/05") + "/" + dataset.StatisticsFile
	body, err := dataset.ReadObject(devstacktest.Ctx(f.t), f.env.S3, f.bucket, key)
	if dataset.Absent(err) {
		return -1
	}
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := monitor.ReadStatistics(strings.NewReader(string(body)), key)
	if err != nil {
		f.t.Fatal(err)
	}
	return st.Dataset.ItemCount
}

// The reducer finds the periods to judge in S3, not in its own memory: a
// worker that becomes the reducer judges periods only other workers wrote
// parts for, once they are due; judges a period again when a part comes
// after its verdict; and a reducer after it leaves judged periods alone.
func TestMonitorReducerJudgesTheFleetsPeriodsFromS3(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	f := &reduceFixture{t: t, env: env, bucket: env.CreateBucket(t), clock: time.Date(2026, 12, 2, 12, 1, 0, 0, time.UTC),
		base: profileOf(1000, 1)}
	p1 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	p2 := p1.Add(10 * time.Second)
	other, late, reducer := f.worker("other"), f.worker("late"), f.worker("reducer")
	f.part(other, p1, 30)
	f.part(other, p2, 40)
	// Objects of no period of this layout are not this monitor's.
	for _, k := range []string{"monitoring/p/w/parts/README.txt", "monitoring/p/w/2026/12/02/12/notes.txt"} {
		if _, err := env.S3.PutObject(devstacktest.Ctx(t), &s3.PutObjectInput{Bucket: &f.bucket, Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}

	// The new reducer's shards have no rows yet: a period is due a period,
	// the lateness and the settle time after it found it.
	reducer.io.reducePass(devstacktest.Ctx(t), progressSnapshot{now: f.clock, fresh: true})
	if got := f.verdict(p1); got != -1 {
		t.Fatalf("period judged as soon as found (%d rows), before its parts had time to arrive", got)
	}
	f.clock = f.clock.Add(14 * time.Second)
	reducer.io.reducePass(devstacktest.Ctx(t), progressSnapshot{now: f.clock})
	if a, b := f.verdict(p1), f.verdict(p2); a != 30 || b != 40 {
		t.Fatalf("verdicts of %d and %d rows, want 30 and 40 from the other worker's parts", a, b)
	}

	// A worker behind the fleet writes its part of p2 after the verdict.
	f.part(late, p2, 5)
	f.clock = f.clock.Add(time.Second)
	reducer.io.reducePass(devstacktest.Ctx(t), progressSnapshot{now: f.clock})
	if got := f.verdict(p2); got != 45 {
		t.Errorf("p2 judged again on %d rows, want 45 with the late part", got)
	}

	// Another worker becomes the reducer with its own progress: it leaves
	// the judged periods alone and judges p3 once its progress passed p3's
	// end, lateness and settle time.
	p3 := p2.Add(10 * time.Second)
	f.part(other, p3, 7)
	next := f.worker("next")
	end := p3.Add(10 * time.Second)
	next.io.reducePass(devstacktest.Ctx(t), progressSnapshot{hw: end.Add(3 * time.Second), now: f.clock, fresh: true})
	if got := f.verdict(p3); got != -1 {
		t.Fatalf("p3 judged at %d rows before the reducer's progress passed its end and wait", got)
	}
	next.io.reducePass(devstacktest.Ctx(t), progressSnapshot{hw: end.Add(4 * time.Second), now: f.clock})
	if got := f.verdict(p3); got != 7 {
		t.Errorf("p3 verdict on %d rows, want 7", got)
	}
	for _, p := range []time.Time{p1, p2} {
		if fp := next.io.red.periods[p.UnixNano()]; fp != nil && fp.judged > 0 {
			t.Errorf("the next reducer judged %v again", p)
		}
	}
	if got := f.verdict(p2); got != 45 {
		t.Errorf("p2 has %d rows after the hand-over, want 45", got)
	}
}

// A worker whose last shard left writes its open periods at once: no more
// rows come to them here, and a part written at shutdown would come too
// late for the verdict.
func TestMonitorWritesOpenPeriodsWhenItsLastShardLeaves(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	f := &reduceFixture{t: t, env: env, bucket: env.CreateBucket(t), clock: time.Date(2026, 12, 2, 12, 1, 0, 0, time.UTC),
		base: profileOf(100, 1)}
	m := f.worker("w")
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	bld := array.NewRecordBuilder(memory.NewGoAllocator(), arrow.NewSchema([]arrow.Field{
		{Name: sinks.ColEntity, Type: arrow.BinaryTypes.String}, {Name: sinks.ColWindowEnd, Type: ts},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64}}, nil))
	defer bld.Release()
	end := time.Date(2026, 12, 2, 12, 0, 5, 0, time.UTC) // in the period 12:00:00-12:00:10, open
	for i := range 3 {
		bld.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("m-%d", i))
		bld.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(end.UnixNano()))
		bld.Field(2).(*array.Float64Builder).Append(1)
	}
	m.in <- monitorMsg{rec: bld.NewRecordBatch(), shard: "s0"}
	partsDir := "monitoring/p/w/parts/2026/12/02/12/00/00/"
	listParts := func() int {
		out, err := env.S3.ListObjectsV2(devstacktest.Ctx(t), &s3.ListObjectsV2Input{Bucket: &f.bucket, Prefix: aws.String(partsDir)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Contents)
	}
	// The shard's rows are close to the clock: the period is not over for it.
	m.in <- monitorMsg{shard: "s0", gone: true}
	deadline := time.Now().Add(time.Minute) // a put on the S3 goroutine, on a loaded machine
	for listParts() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the open period's part not written within a minute of the worker's last shard leaving")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
