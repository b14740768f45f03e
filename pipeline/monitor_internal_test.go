package pipeline

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
)

// A period closes on the progress of the slowest shard still sending, so a
// fast shard cannot cut a slow one's rows out of the period; a shard that
// went silent while live stops holding periods open, and a shard replaying
// a backlog never counts as silent, however long it pauses.
func TestMonitorProgressAndSilence(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	m := &monitorSink{c: monitorConfig{period: time.Minute, grace: 10 * time.Second, settle: 20 * time.Second}, shards: map[string]*shardProgress{}}
	m.shards["fast"] = &shardProgress{hw: now.Add(-5 * time.Second), seen: now}
	m.shards["slow"] = &shardProgress{hw: now.Add(-40 * time.Second), seen: now.Add(-time.Second)}
	if got := m.progress(now); !got.Equal(now.Add(-40 * time.Second)) {
		t.Errorf("progress %v, want the slow shard's %v", got, now.Add(-40*time.Second))
	}
	// The slow shard stops while live (its rows were 40 s behind the clock):
	// after a period and the grace, it no longer holds periods open.
	later := now.Add(2 * time.Minute)
	m.shards["fast"].seen = later
	if got := m.progress(later); !got.Equal(now.Add(-5 * time.Second)) {
		t.Errorf("progress %v after the slow shard went silent, want the fast shard's", got)
	}
	if m.quiet(later) {
		t.Error("quiet while a shard still sends")
	}
	// A backlog: results an hour behind the clock; a long pause is not
	// silence.
	m.shards["slow"] = &shardProgress{hw: now.Add(-time.Hour), seen: now.Add(-time.Second)}
	if got := m.progress(later); !got.Equal(now.Add(-time.Hour)) {
		t.Errorf("progress %v, want the replaying shard's %v", got, now.Add(-time.Hour))
	}
	delete(m.shards, "slow") // handed over (FlushShard)
	m.shards["fast"].seen = now
	if !m.quiet(later) {
		t.Error("not quiet when the only shard, live, sent nothing for two minutes")
	}
}

// A window belongs to the period its end falls in, a window ending on a
// boundary to the period before it; each period has its own directory.
func TestMonitorPeriodsAndLayout(t *testing.T) {
	period := (10 * time.Second).Nanoseconds()
	start := time.Date(2026, 12, 2, 16, 7, 0, 0, time.UTC)
	for _, tc := range []struct {
		end  time.Time
		want time.Time
	}{
		{start.Add(time.Second), start},
		{start.Add(10 * time.Second), start},
		{start.Add(10*time.Second + 1), start.Add(10 * time.Second)},
	} {
		if got := time.Unix(0, floorDiv(tc.end.UnixNano()-1, period)*period).UTC(); !got.Equal(tc.want) {
			t.Errorf("window ending %v in the period of %v, want %v", tc.end, got, tc.want)
		}
	}
	for _, tc := range []struct {
		period time.Duration
		want   string
	}{
		{time.Hour, "m/p/w/2026/12/02/16/"},
		{time.Minute, "m/p/w/2026/12/02/16/07/"},
		{10 * time.Second, "m/p/w/2026/12/02/16/07/00/"},
	} {
		s := &partStore{prefix: "m/p/w/", period: tc.period}
		if got := s.dir(start); got != tc.want {
			t.Errorf("period %v: dir %q, want %q", tc.period, got, tc.want)
		}
		if got, want := s.partsDir(start), "m/p/w/parts/"+strings.TrimPrefix(tc.want, "m/p/w/"); got != want {
			t.Errorf("period %v: parts in %q, want %q", tc.period, got, want)
		}
	}
}

// BenchmarkMonitorFold: the monitor's goroutine folding results of the
// factory window's shape (12 features and a score) into a period's profile,
// per row.
func BenchmarkMonitorFold(b *testing.B) {
	mem := memory.NewGoAllocator()
	fields := []arrow.Field{{Name: sinks.ColEntity, Type: arrow.BinaryTypes.String},
		{Name: sinks.ColWindowEnd, Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}}}
	for i := range 12 {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("f%02d", i), Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	fields = append(fields, arrow.Field{Name: sinks.ColScore, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	bld := array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	defer bld.Release()
	const rows = 1000
	end := time.Date(2026, 12, 2, 12, 0, 30, 0, time.UTC).UnixNano()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rows {
		bld.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("m-%d", i))
		bld.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(end))
		for c := 2; c < len(fields); c++ {
			bld.Field(c).(*array.Float64Builder).Append(r.NormFloat64())
		}
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	obs, err := newPromObserver(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	m := &monitorSink{c: monitorConfig{window: "w", period: time.Hour, now: time.Now, obs: obs},
		shards: map[string]*shardProgress{}, open: map[int64]*monitor.Profile{}}
	sp := &shardProgress{}
	m.fold(rec, sp) // fills the sketches' first levels
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m.fold(rec, sp)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}

// A chain starting without a checkpoint gives the monitors its first
// event time, and windows that began before it are left out; a chain
// resuming from a checkpoint leaves nothing out.
func TestMonitorLeavesOutWindowsBeforeAFreshStart(t *testing.T) {
	for seq, want := range map[string]bool{"TRIM_HORIZON": false, "LATEST": false, "AT_TIMESTAMP": false, "": false,
		"49680773780128354282927611404180556105756669611813634082": true} {
		if got := checkpointed(shardpos.Position{Sequence: seq}); got != want {
			t.Errorf("checkpointed(%q) = %v, want %v", seq, got, want)
		}
	}
	from := time.Date(2026, 12, 2, 12, 0, 7, 0, time.UTC)
	mem := memory.NewGoAllocator()
	tsType := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	bld := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{{Name: sinks.ColWindowStart, Type: tsType}}, nil))
	defer bld.Release()
	for _, s := range []int{0, 7, 10} { // window starts, seconds after 12:00
		bld.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(from.Add(time.Duration(s-7) * time.Second).UnixNano()))
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	early := partialStart(rec, from)
	if early == nil || !early(0) || early(1) || early(2) {
		t.Errorf("the window begun 7 s before the chain's first event is the only one left out")
	}
	if partialStart(rec, time.Time{}) != nil {
		t.Error("a chain from a checkpoint leaves windows out")
	}
}
