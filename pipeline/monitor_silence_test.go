package pipeline

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/sinks"
)

// A shard replaying a backlog is not silent after a pause a live shard
// would be silent after, but it is once the pause lasts backlogSilence: a
// backlog that ended must not hold its periods open for good.
func TestMonitorBacklogGoesSilent(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	m := &monitorSink{c: monitorConfig{period: 10 * time.Second, grace: 200 * time.Millisecond, settle: 2 * time.Second},
		shards: map[string]*shardProgress{}}
	backlog := &shardProgress{hw: now.Add(-3 * time.Minute), seen: now}
	live := &shardProgress{hw: now.Add(-time.Second), seen: now}
	m.shards["backlog"] = backlog
	pause := 11 * time.Second // over a period and the lateness
	if !m.silent(live, now.Add(pause)) {
		t.Errorf("a live shard not silent after %v without results", pause)
	}
	if m.silent(backlog, now.Add(pause)) {
		t.Errorf("a backlog shard silent after a pause of %v: a loaded host would split its periods", pause)
	}
	if m.quiet(now.Add(m.backlogSilence())) {
		t.Errorf("a backlog shard silent at exactly %v", m.backlogSilence())
	}
	if !m.quiet(now.Add(m.backlogSilence() + time.Millisecond)) {
		t.Errorf("a backlog shard whose results stopped %v ago still holds its periods open", m.backlogSilence())
	}
}

// reducerClock is a clock the test moves while the monitor's goroutines
// read it.
type reducerClock struct{ ns atomic.Int64 }

func (c *reducerClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *reducerClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *reducerClock) add(d time.Duration)     { c.ns.Add(int64(d)) }
func (c *reducerClock) since(t time.Time) int64 { return c.ns.Load() - t.UnixNano() }

// backlogRows is a results batch of machines' one-second windows ending at
// the given times.
func backlogRows(t *testing.T, ends ...time.Time) arrow.RecordBatch {
	t.Helper()
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	bld := array.NewRecordBuilder(memory.NewGoAllocator(), arrow.NewSchema([]arrow.Field{
		{Name: sinks.ColEntity, Type: arrow.BinaryTypes.String}, {Name: sinks.ColWindowStart, Type: ts},
		{Name: sinks.ColWindowEnd, Type: ts}, {Name: "x", Type: arrow.PrimitiveTypes.Float64}}, nil))
	defer bld.Release()
	for i, end := range ends {
		bld.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("m-%d", i))
		bld.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(end.Add(-time.Second).UnixNano()))
		bld.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(end.UnixNano()))
		bld.Field(3).(*array.Float64Builder).Append(1)
	}
	return bld.NewRecordBatch()
}

// The stream's reducer running a shard that replays a backlog whose
// results stop short of a period's due point (the backlog ended, or its
// last events came late and were dead-lettered): the period is written and
// judged once the shard has been silent for backlogSilence, not never.
// This is how TestMonitorFindsDriftInTheStream lost period A on a loaded
// machine: the results of both shards stopped a few seconds into period B
// and no verdict came in five minutes.
func TestMonitorJudgesAPeriodABacklogStoppedShort(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	f := &reduceFixture{t: t, env: env, bucket: env.CreateBucket(t), base: profileOf(100, 1)}
	clock := &reducerClock{}
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC) // period [12:00:00, 12:00:10)
	clock.set(start.Add(3 * time.Minute))                  // the rows are three minutes old: a backlog
	obs, err := newPromObserver(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m := newMonitorSink(monitorConfig{
		pipeline: "p", window: "w", worker: "reducer", period: 10 * time.Second, grace: 200 * time.Millisecond, settle: 2 * time.Second,
		baseline: f.base, constraints: monitor.Suggest(f.base),
		store: &partStore{s3: env.S3, bucket: f.bucket, prefix: "monitoring/p/w/", period: 10 * time.Second, run: "r"},
		obs:   obs, log: slog.Default(), now: clock.now,
	})
	t.Cleanup(func() { _ = m.Close(devstacktest.Ctx(t)) })
	m.lead(1)
	// Windows ending 12:00:01 to 12:00:11: the period's ten and one of the
	// next; the period is due at 12:00:12.2 of this worker's progress.
	var ends []time.Time
	for s := 1; s <= 11; s++ {
		ends = append(ends, start.Add(time.Duration(s)*time.Second))
	}
	last := clock.now() // the clock stands still until the rows are folded
	m.in <- monitorMsg{rec: backlogRows(t, ends...), shard: "s0"}
	wait := func(what string, done func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute) // ticks of a second and S3 on a loaded machine
		for !done() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute (the clock %v after the shard's last results)", what, time.Duration(clock.since(last)))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The shard's progress (12:00:11) passed the period's end and
	// lateness: its part is written, but the verdict waits for 12:00:12.2.
	wait("the period's part", func() bool {
		keys, err := m.c.store.list(devstacktest.Ctx(t), m.c.store.partsDir(start))
		if err != nil {
			t.Fatal(err)
		}
		return len(keys) == 1
	})

	// A pause a loaded host could make: no verdict.
	clock.add(m.backlogSilence() / 2)
	for range 3 { // three ticks
		time.Sleep(tickEvery(2 * time.Second))
	}
	if got := f.verdict(start); got != -1 {
		t.Fatalf("period judged (%d rows) during a pause of %v of a backlog", got, m.backlogSilence()/2)
	}
	// The results have stopped for good.
	clock.set(last.Add(m.backlogSilence() + time.Second))
	wait("the period's verdict", func() bool { return f.verdict(start) == 10 })
}

// A period whose first part comes after a later period's verdict (the
// worker with its rows far behind, replaying a shard from an old
// checkpoint after its lease moved, while the reducer's own shards had no
// rows in it) is judged all the same: the reducer lists the whole history
// again once a period, not only from the oldest period it knows of.
func TestMonitorReducerFindsAPeriodWhosePartsComeLast(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	f := &reduceFixture{t: t, env: env, bucket: env.CreateBucket(t), clock: time.Date(2026, 12, 3, 12, 1, 0, 0, time.UTC),
		base: profileOf(1000, 1)}
	p1 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	p2 := p1.Add(10 * time.Second)
	reducer, behind := f.worker("reducer"), f.worker("behind")
	ctx := devstacktest.Ctx(t)
	hw := p2.Add(10*time.Second + 5*time.Second) // past p2's end, lateness (2 s) and settle time (2 s)
	f.part(reducer, p2, 20)
	reducer.io.reducePass(ctx, progressSnapshot{hw: hw, now: f.clock, fresh: true})
	if got := f.verdict(p2); got != 20 {
		t.Fatalf("p2 verdict on %d rows, want 20", got)
	}
	// Past the time p2's late parts are looked for: the next listings
	// start at p2.
	for range 3 {
		f.clock = f.clock.Add(7 * time.Second)
		reducer.io.reducePass(ctx, progressSnapshot{hw: hw, now: f.clock})
	}
	f.part(behind, p1, 30)
	f.clock = f.clock.Add(time.Second)
	reducer.io.reducePass(ctx, progressSnapshot{hw: hw, now: f.clock})
	f.clock = f.clock.Add(10 * time.Second) // a period later
	reducer.io.reducePass(ctx, progressSnapshot{hw: hw, now: f.clock})
	if got := f.verdict(p1); got != 30 {
		t.Errorf("p1, whose only part came after p2's verdict: verdict on %d rows, want 30 (-1: never judged)", got)
	}
	if got := f.verdict(p2); got != 20 {
		t.Errorf("p2 has %d rows after the whole history was listed again, want 20", got)
	}
}
