package windowing

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// sensorRecords makes n distinct sensor readings as JSON.
func sensorRecords(n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	at := t0
	for i := range out {
		at = at.Add(time.Duration(rng.IntN(5)) * time.Millisecond)
		out[i] = fmt.Appendf(nil, `{"machine_id":"press-%03d","ts":%q,"temperature_c":%.1f,"vibration_rms":%.2f,"pressure_bar":%.1f,"rpm":%d,"current_a":%.1f}`,
			rng.IntN(1000), at.Format("2006-01-02T15:04:05.000Z07:00"), 60+rng.Float64()*20, rng.Float64(), 4+rng.Float64()*2, 1400+rng.IntN(200), 10+rng.Float64()*5)
	}
	return out
}

// BenchmarkDecodeSensor decodes sensor JSON into Arrow batches of 4,096
// records; one op is one record.
func BenchmarkDecodeSensor(b *testing.B) {
	recs := sensorRecords(4096)
	d, err := NewDecoder(sensorSchema(), memory.NewGoAllocator())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Release()
	var size int64
	for _, r := range recs {
		size += int64(len(r))
	}
	b.SetBytes(size / int64(len(recs)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := d.Append(recs[i%len(recs)], uint64(i)); err != nil {
			b.Fatal(err)
		}
		if d.Len() == 4096 {
			d.NewRecordBatch().Release()
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// tenFeatures is the sensor feature set of the benchmarks: 10 aggregates.
func tenFeatures() []FeatureSpec {
	return []FeatureSpec{
		{Name: "vibration_mean", Agg: AggMean, Field: "vibration_rms"},
		{Name: "vibration_max", Agg: AggMax, Field: "vibration_rms"},
		{Name: "vibration_std", Agg: AggStddev, Field: "vibration_rms"},
		{Name: "vibration_delta", Agg: AggDelta, Field: "vibration_rms"},
		{Name: "temperature_mean", Agg: AggMean, Field: "temperature_c"},
		{Name: "temperature_min", Agg: AggMin, Field: "temperature_c"},
		{Name: "temperature_max", Agg: AggMax, Field: "temperature_c"},
		{Name: "pressure_mean", Agg: AggMean, Field: "pressure_bar"},
		{Name: "rpm_last", Agg: AggLast, Field: "rpm"},
		{Name: "events", Agg: AggCount},
	}
}

// sensorStream is a pre-built stream of decoded sensor batches covering
// one minute of event time for nkeys machines, evPerKey readings each per
// minute, slightly out of order. Replayed cycle after cycle with its event
// times shifted by a minute each time, it is an endless stream.
type sensorStream struct {
	batches []arrow.RecordBatch
	times   [][]int64 // event-time offsets within the minute, per batch
	events  int
}

const benchBatch = 4096

func newSensorStream(b *testing.B, nkeys, evPerKey int) *sensorStream {
	b.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	s := sensorSchema()
	mem := memory.NewGoAllocator()
	rb := array.NewRecordBuilder(mem, s.ArrowSchema())
	defer rb.Release()
	names := make([]string, nkeys)
	for i := range names {
		names[i] = fmt.Sprintf("press-%06d", i)
	}
	st := &sensorStream{}
	n := nkeys * evPerKey
	var times []int64
	for i := 0; i < n; i++ {
		// times spread over the minute, jittered up to 2 s backwards
		ts := int64(i)*int64(time.Minute)/int64(n) - rng.Int64N(int64(2*time.Second))
		times = append(times, ts)
		rb.Field(0).(*array.StringBuilder).Append(names[rng.IntN(nkeys)])
		rb.Field(1).(*array.TimestampBuilder).Append(0)
		rb.Field(2).(*array.Float64Builder).Append(60 + rng.Float64()*20)
		if rng.IntN(50) == 0 { // sensor dropout
			rb.Field(3).(*array.Float64Builder).AppendNull()
		} else {
			rb.Field(3).(*array.Float64Builder).Append(rng.Float64())
		}
		rb.Field(4).(*array.Float64Builder).Append(4 + rng.Float64()*2)
		rb.Field(5).(*array.Int64Builder).Append(int64(1400 + rng.IntN(200)))
		rb.Field(6).(*array.Float64Builder).Append(10 + rng.Float64()*5)
		rb.Field(7).(*array.Uint64Builder).Append(0)
		if len(times) == benchBatch || i == n-1 {
			st.batches = append(st.batches, rb.NewRecordBatch())
			st.times = append(st.times, times)
			times = nil
		}
	}
	st.events = n
	return st
}

// cycle returns the batches of cycle c: event times shifted by c minutes,
// offsets continuing.
func (st *sensorStream) cycle(c int) []arrow.RecordBatch {
	mem := memory.NewGoAllocator()
	out := make([]arrow.RecordBatch, len(st.batches))
	base := t0.UnixNano() + int64(c)*int64(time.Minute)
	off := uint64(c * st.events)
	for i, rec := range st.batches {
		tb := array.NewTimestampBuilder(mem, timestampType)
		ob := array.NewUint64Builder(mem)
		for _, t := range st.times[i] {
			tb.Append(arrow.Timestamp(base + t))
			ob.Append(off)
			off++
		}
		ta, oa := tb.NewArray(), ob.NewArray()
		cols := append([]arrow.Array(nil), rec.Columns()...)
		cols[1], cols[7] = ta, oa
		out[i] = array.NewRecordBatch(rec.Schema(), cols, rec.NumRows())
		ta.Release()
		oa.Release()
		tb.Release()
		ob.Release()
	}
	return out
}

func benchWindows(b *testing.B, w WindowSpec, nkeys, evPerKey int) {
	st := newSensorStream(b, nkeys, evPerKey)
	op, err := NewOperator(w, sensorSchema(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer op.Release()
	now := t0
	run := func(recs []arrow.RecordBatch, budget int) int {
		done := 0
		for _, rec := range recs {
			if done >= budget {
				break
			}
			out, err := op.Process(rec, now)
			if err != nil {
				b.Fatal(err)
			}
			if out.Features != nil {
				out.Features.Release()
			}
			done += int(rec.NumRows())
		}
		return done
	}
	// Warm up: fill the key table and pane pool (steady state).
	c := 0
	for ; c < 8; c++ {
		recs := st.cycle(c)
		run(recs, st.events)
		release(recs)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var elapsed time.Duration
	for done := 0; done < b.N; c++ {
		b.StopTimer()
		recs := st.cycle(c)
		b.StartTimer()
		start := time.Now()
		done += run(recs, b.N-done)
		elapsed += time.Since(start)
		b.StopTimer()
		release(recs)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	stats := op.Stats()
	b.ReportMetric(float64(op.PaneBytes()), "B/pane")
	b.ReportMetric(float64(stats.StateBytes)/float64(stats.Panes), "state-B/pane")
	b.ReportMetric(float64(stats.Panes)/float64(stats.OpenKeys), "panes/key")
}

func release(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

func benchSpec(kind Kind, size, slide time.Duration) WindowSpec {
	return WindowSpec{
		Name: "bench", Kind: kind, Size: size, Slide: slide, OutOfOrderness: 5 * time.Second,
		AllowedLateness: time.Minute, MaxKeys: 200_000, Features: tenFeatures(),
		// 100,000 keys at 1M events per minute is 16 shards' worth of
		// traffic in one operator: above the default state budget, which
		// would evict (the hopping window holds more than 128 MiB).
		MaxStateBytes: 1 << 30,
	}
}

// BenchmarkTumbling: 1-minute tumbling windows, 10 aggregates, 100,000
// machines, 10 readings per machine per minute; one op is one event.
func BenchmarkTumbling(b *testing.B) {
	benchWindows(b, benchSpec(Tumbling, time.Minute, 0), 100_000, 10)
}

// BenchmarkHopping: 5-minute windows sliding by 1 minute, same stream.
func BenchmarkHopping(b *testing.B) {
	benchWindows(b, benchSpec(Hopping, 5*time.Minute, time.Minute), 100_000, 10)
}

// BenchmarkSession: sessions with a 30 s gap, same stream.
func BenchmarkSession(b *testing.B) {
	w := benchSpec(Session, 0, 0)
	w.Gap = 30 * time.Second
	benchWindows(b, w, 100_000, 10)
}

// BenchmarkTumblingSketches: 1-minute tumbling windows whose aggregates
// read every column kind through every path of the fold (count_if on an
// int and a float, distinct_count of an int and a string, a quantile, a
// sum over a nullable float), 10,000 machines, 10 readings per machine
// per minute; one op is one event.
func BenchmarkTumblingSketches(b *testing.B) {
	w := benchSpec(Tumbling, time.Minute, 0)
	w.Features = sketchFeatures()
	benchWindows(b, w, 10_000, 10)
}

// BenchmarkFold: the per-row fold alone, with state that fits in the
// caches (1,000 machines) so that memory stalls do not hide its cost: the
// ten sensor aggregates, then every path of the fold (as
// BenchmarkTumblingSketches). One op is one event.
func BenchmarkFold(b *testing.B) {
	b.Run("sensor", func(b *testing.B) {
		benchWindows(b, benchSpec(Tumbling, time.Minute, 0), 1_000, 10)
	})
	b.Run("every-kind", func(b *testing.B) {
		w := benchSpec(Tumbling, time.Minute, 0)
		w.Features = sketchFeatures()
		benchWindows(b, w, 1_000, 10)
	})
}

// sketchFeatures reads every column kind through every path of the fold.
func sketchFeatures() []FeatureSpec {
	return []FeatureSpec{
		{Name: "rpm_1500", Agg: AggCountIf, Field: "rpm", Equals: "1500"},
		{Name: "pressure_5", Agg: AggCountIf, Field: "pressure_bar", Equals: "5"},
		{Name: "rpm_distinct", Agg: AggDistinctCount, Field: "rpm"},
		{Name: "machines", Agg: AggDistinctCount, Field: "machine_id"},
		{Name: "temperature_p95", Agg: AggQuantile, Field: "temperature_c", Quantile: 0.95},
		{Name: "vibration_sum", Agg: AggSum, Field: "vibration_rms"},
		{Name: "events", Agg: AggCount},
	}
}
