package pipeline

// The in-stream drift monitor: one more sink on a monitored scorer's
// results. It folds each batch's features and scores into a profile per
// monitoring period (mergeable sketches, package monitor), writes each
// worker's profile of a period to S3 as a part once the period is over,
// and, on the one worker holding the stream's first shard, merges the
// fleet's parts and judges them against the baseline (monitor_reduce.go).
// Nothing here is on the shard's critical path: Write hands the batch to
// the monitor's own goroutine, and S3 calls run on a third.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/sinks"
)

// The monitor's defaults (config.Monitor documents them).
const (
	DefaultMonitorPeriod = time.Hour
	DefaultMonitorPrefix = "monitoring/"
	DefaultMonitorSettle = time.Minute
	// maxOpenPeriods bounds a monitor's memory: a batch for an older
	// period than the oldest open one (a replay, a straggler shard) opens
	// it again, and beyond this many the oldest is written out early.
	maxOpenPeriods = 4
	// monitorQueue is how many batches wait for the monitor's goroutine
	// before Write blocks (back-pressure, as every sink does).
	monitorQueue = 64
)

// monitorConfig is one monitored window, as built from the config.
type monitorConfig struct {
	pipeline, window, stream, scorer string
	worker                           string
	period, grace, settle            time.Duration
	baseline                         *monitor.Statistics
	constraints                      *monitor.Constraints
	store                            *partStore
	alerts                           drifter    // nil without a drift rule
	retrain                          *retrainer // nil without monitor.retrain
	obs                              Observer
	log                              *slog.Logger
	now                              func() time.Time
}

// drifter is the part of the alert sink the monitor uses.
type drifter interface {
	Drift(ctx context.Context, r sinks.DriftReport) error
}

var _ drifter = (*sinks.Alerts)(nil)

// monitorSink profiles a scorer's results per period.
type monitorSink struct {
	c monitorConfig
	// leads counts the shards of the stream starting at hash key 0 that
	// this worker runs: while above zero it judges the fleet's periods.
	leads atomic.Int32

	in      chan monitorMsg
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once

	// Owned by the fold goroutine.
	cols   []monitor.Column
	colIdx []int
	schema *arrow.Schema
	open   map[int64]*monitor.Profile // by period start, Unix ns
	spare  *monitor.Profile           // a written period's profile, reset for the next
	shards map[string]*shardProgress  // by shard id
	// reducing is whether this worker was the reducer at the last tick:
	// one that becomes it looks at the whole history in S3 once.
	reducing bool
	io       *monitorIO
}

var _ sinks.Sink = (*monitorSink)(nil)

func newMonitorSink(c monitorConfig) *monitorSink {
	m := &monitorSink{
		c: c, in: make(chan monitorMsg, monitorQueue), flushes: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}), open: map[int64]*monitor.Profile{},
		shards: map[string]*shardProgress{},
	}
	m.io = newMonitorIO(m)
	go m.loop()
	return m
}

// Write hands the batch to the monitor and acks it at once: the monitor's
// statistics are not what the checkpoint waits for (docs/monitor.md says
// what a crash costs them).
func (m *monitorSink) Write(ctx context.Context, b sinks.Batch) error {
	if m.closed.Load() {
		return sinks.ErrClosed
	}
	b.Rec.Retain()
	select {
	case m.in <- monitorMsg{rec: b.Rec, shard: b.Shard}:
	case <-ctx.Done():
		b.Rec.Release()
		return ctx.Err()
	case <-m.stop:
		b.Rec.Release()
		return sinks.ErrClosed
	}
	b.Ack(nil)
	return nil
}

// Flush writes every open period's profile as a part and waits for the
// writes: what a worker does before it stops.
func (m *monitorSink) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case m.flushes <- ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return nil
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	return m.io.wait(ctx)
}

// FlushShard has nothing of the shard's own to force out: the profiles
// are the worker's, and the monitor acked every batch on arrival. The
// shard's chain says when it ends (forget).
func (m *monitorSink) FlushShard(context.Context, string, string) error { return nil }

// forget tells the monitor a shard's chain ended on this worker (handed
// over, ended, lost or failed), so its event-time progress no longer holds
// periods open; a new chain of the shard is a new progress.
func (m *monitorSink) forget(shard string) {
	select {
	case m.in <- monitorMsg{shard: shard, gone: true}:
	case <-m.stop:
	}
}

// monitorMsg is a results batch of a shard, or news of the shard: its
// chain ended here (gone), or a fresh chain's data begins at from.
type monitorMsg struct {
	rec   arrow.RecordBatch
	shard string
	gone  bool
	from  time.Time
}

// shardProgress is how far in event time a shard's results have come.
type shardProgress struct {
	hw   time.Time // the latest window end of its results
	seen time.Time // processing time of its last batch
	// from is where a fresh chain's data begins: windows that began
	// before it are partial in time and left out (startMonitors).
	from time.Time
}

// progress is the event time every shard of this worker has reached (the
// least of their latest window ends), so that a period is written out only
// once its rows from every shard are in. A silent shard is left out: it
// has nothing for the period.
func (m *monitorSink) progress(now time.Time) time.Time {
	var low, high time.Time
	for _, p := range m.shards {
		if high.IsZero() || p.hw.After(high) {
			high = p.hw
		}
		if m.silent(p, now) {
			continue
		}
		if low.IsZero() || p.hw.Before(low) {
			low = p.hw
		}
	}
	if low.IsZero() {
		return high
	}
	return low
}

// silent reports whether a shard went quiet: no results for a period and
// the window's lateness, when its last ones were close to processing
// time. A shard replaying a backlog (results far behind the clock) pauses
// for reasons that say nothing about its data (a loaded host, a slow sink
// or producer), and closing periods on a pause would split them, so it
// gets twice that and the settle time (backlogSilence). It does go silent
// then: a backlog that ended, or whose last events came after the
// watermark and were dead-lettered as late, would otherwise hold its
// periods open, and their verdicts back, for good.
func (m *monitorSink) silent(p *shardProgress, now time.Time) bool {
	live := m.c.period + m.c.grace
	if p.seen.Sub(p.hw) > live+m.c.settle {
		return now.Sub(p.seen) > m.backlogSilence()
	}
	return now.Sub(p.seen) > live
}

// backlogSilence is how long a shard behind the clock may send no results
// before it counts as silent (silent).
func (m *monitorSink) backlogSilence() time.Duration {
	return 2*(m.c.period+m.c.grace) + m.c.settle
}

// quiet reports whether every shard of this worker is silent: the open
// periods will get no more rows.
func (m *monitorSink) quiet(now time.Time) bool {
	for _, p := range m.shards {
		if !m.silent(p, now) {
			return false
		}
	}
	return len(m.shards) > 0
}

// Close writes the open periods' parts and stops.
func (m *monitorSink) Close(ctx context.Context) error {
	if !m.closed.CompareAndSwap(false, true) {
		return sinks.ErrClosed
	}
	err := m.Flush(ctx)
	m.once.Do(func() { close(m.stop) })
	select {
	case <-m.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return errors.Join(err, m.io.close(ctx))
}

// Healthy reports the monitor's S3 writes: failing ones lose no result
// (the monitor holds no checkpoint back), so the pipeline stays ready.
func (m *monitorSink) Healthy() error { return nil }

// lead records that this worker started (+1) or stopped (-1) running a
// shard of the stream that starts at hash key 0.
func (m *monitorSink) lead(delta int32) { m.leads.Add(delta) }

func (m *monitorSink) loop() {
	defer close(m.done)
	tick := time.NewTicker(tickEvery(m.c.settle))
	defer tick.Stop()
	for {
		select {
		case msg := <-m.in:
			m.take(msg)
			m.closePeriods(false)
		case <-tick.C:
			m.closePeriods(false)
			m.judge()
		case ch := <-m.flushes:
			m.drain()
			m.closePeriods(true)
			m.judge()
			close(ch)
		case <-m.stop:
			m.drain()
			return
		}
	}
}

func tickEvery(settle time.Duration) time.Duration {
	return min(max(settle/4, time.Second), 15*time.Second)
}

// drain folds what is queued.
func (m *monitorSink) drain() {
	for {
		select {
		case msg := <-m.in:
			m.take(msg)
		default:
			return
		}
	}
}

func (m *monitorSink) take(msg monitorMsg) {
	if msg.gone {
		delete(m.shards, msg.shard)
		if len(m.shards) == 0 {
			// No shard left here: no more rows come to the open periods,
			// and holding them until shutdown would make their parts too
			// late for the verdict.
			m.closePeriods(true)
		}
		return
	}
	p := m.shards[msg.shard]
	if p == nil {
		p = &shardProgress{}
		m.shards[msg.shard] = p
	}
	if msg.rec == nil {
		p.from = msg.from
		return
	}
	m.fold(msg.rec, p)
	msg.rec.Release()
}

// fold adds a batch's kept rows to the profile of each row's period (the
// period of its window end).
func (m *monitorSink) fold(rec arrow.RecordBatch, sp *shardProgress) {
	sp.seen = m.c.now()
	if rec.NumRows() == 0 {
		return
	}
	if !m.schema.Equal(rec.Schema()) {
		m.setSchema(rec.Schema())
	}
	we, ok := windowEnds(rec)
	if !ok {
		m.c.log.Error("monitor: results without a window_end column; batch not profiled", "window", m.c.window)
		return
	}
	skip, kept := sinks.MonitorSkip(rec)
	if kept == 0 {
		return
	}
	if early := partialStart(rec, sp.from); early != nil {
		if rule := skip; rule != nil {
			skip = func(i int) bool { return rule(i) || early(i) }
		} else {
			skip = early
		}
	}
	period := m.c.period.Nanoseconds()
	n := int(rec.NumRows())
	// Rows of one batch almost always share a period: one pass per
	// distinct period found.
	var first int64
	found, mixed := false, false
	for i := 0; i < n; i++ {
		if skip != nil && skip(i) || we.IsNull(i) {
			continue
		}
		end := int64(we.Value(i))
		if t := time.Unix(0, end); t.After(sp.hw) {
			sp.hw = t
		}
		p := floorDiv(end-1, period) * period // a window ending on a boundary belongs to the period before it
		switch {
		case !found:
			first, found = p, true
		case p != first:
			mixed = true
		}
	}
	switch {
	case !found:
	case mixed:
		m.foldMixed(rec, we, skip)
	default:
		m.foldPeriod(first, rec, skip)
	}
}

func (m *monitorSink) foldMixed(rec arrow.RecordBatch, we *array.Timestamp, skip func(int) bool) {
	period := m.c.period.Nanoseconds()
	seen := map[int64]bool{}
	for i := 0; i < int(rec.NumRows()); i++ {
		if skip != nil && skip(i) || we.IsNull(i) {
			continue
		}
		p := floorDiv(int64(we.Value(i))-1, period) * period
		if seen[p] {
			continue
		}
		seen[p] = true
		m.foldPeriod(p, rec, func(r int) bool {
			return skip != nil && skip(r) || we.IsNull(r) || floorDiv(int64(we.Value(r))-1, period)*period != p
		})
	}
}

func (m *monitorSink) foldPeriod(p int64, rec arrow.RecordBatch, skip func(int) bool) {
	kept := 0
	for i := range int(rec.NumRows()) {
		if skip == nil || !skip(i) {
			kept++
		}
	}
	if kept == 0 {
		return
	}
	prof := m.open[p]
	if prof == nil {
		if prof = m.spare; prof != nil {
			m.spare = nil
		} else {
			prof = monitor.NewProfile(m.cols, monitor.Options{})
		}
		m.open[p] = prof
	}
	prof.AddRows(kept)
	for c, idx := range m.colIdx {
		prof.ObserveArrow(c, rec.Column(idx), skip)
	}
	m.c.obs.MonitorRows(m.c.window, kept)
}

// setSchema picks the monitored columns of a results schema. A scorer's
// schema does not change while it runs; a change (a reload with more
// outputs) starts new profiles, as their columns differ.
func (m *monitorSink) setSchema(s *arrow.Schema) {
	if m.schema != nil {
		m.closePeriods(true)
	}
	m.schema, m.spare = s, nil
	m.colIdx = sinks.MonitoredColumns(s)
	m.cols = nil // the open profiles keep theirs
	for _, i := range m.colIdx {
		f := s.Field(i)
		m.cols = append(m.cols, monitor.Column{Name: f.Name, Kind: monitor.KindOf(f.Type)})
	}
}

func windowEnds(rec arrow.RecordBatch) (*array.Timestamp, bool) {
	idx := rec.Schema().FieldIndices(sinks.ColWindowEnd)
	if len(idx) == 0 {
		return nil, false
	}
	we, ok := rec.Column(idx[0]).(*array.Timestamp)
	if !ok || we.DataType().(*arrow.TimestampType).Unit != arrow.Nanosecond {
		return nil, false
	}
	return we, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// closePeriods writes out the periods that are over: their end plus the
// window's lateness is behind every shard's progress, or every shard went
// silent (a live stream that stopped), or there are too many open. all
// writes every open period (a flush).
func (m *monitorSink) closePeriods(all bool) {
	if len(m.open) == 0 {
		return
	}
	now := m.c.now()
	hw := m.progress(now)
	quiet := m.quiet(now)
	oldest := int64(0)
	for p := range m.open {
		end := time.Unix(0, p).Add(m.c.period)
		if all || !hw.Before(end.Add(m.c.grace)) || quiet && !now.Before(end) {
			m.writePart(p)
			continue
		}
		if oldest == 0 || p < oldest {
			oldest = p
		}
	}
	if len(m.open) > maxOpenPeriods {
		m.writePart(oldest)
	}
}

// writePart hands a period's profile to the writer and forgets it.
func (m *monitorSink) writePart(p int64) {
	prof := m.open[p]
	delete(m.open, p)
	m.io.part(time.Unix(0, p).UTC(), prof.Statistics())
	// The next period reuses the sketches' buffers.
	prof.Reset()
	m.spare = prof
}

// judge hands the reducer (monitor_reduce.go) this worker's progress, when
// this worker is the stream's reducer: which periods to judge is found in
// S3, from every worker's parts, not from this worker's own.
func (m *monitorSink) judge() {
	if m.leads.Load() <= 0 {
		m.reducing = false
		return
	}
	now := m.c.now()
	m.io.reduce(progressSnapshot{hw: m.progress(now), quiet: m.quiet(now), now: now, fresh: !m.reducing})
	m.reducing = true
}
