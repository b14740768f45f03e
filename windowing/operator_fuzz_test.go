package windowing

import (
	"encoding/binary"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Fuzzing the operator with arbitrary event times: values anywhere in
// int64 (the decoder bounds them to ±2^62 ns; the operator hands back
// anything beyond), the bounds themselves, huge jumps both ways, processing
// time jumping too. Whatever comes, the operator must not panic, every
// event must be either counted or handed back, every row must be a
// well-formed window, and memory must stay within max_keys and
// max_state_bytes.
//
//	go test -run '^$' -fuzz FuzzOperatorTumbling -fuzztime 60s ./windowing
//	go test -run '^$' -fuzz FuzzOperatorHopping -fuzztime 60s ./windowing
//	go test -run '^$' -fuzz FuzzOperatorSession -fuzztime 60s ./windowing

func FuzzOperatorTumbling(f *testing.F) { fuzzOperator(f, Tumbling) }
func FuzzOperatorHopping(f *testing.F)  { fuzzOperator(f, Hopping) }
func FuzzOperatorSession(f *testing.F)  { fuzzOperator(f, Session) }

// fuzzTimes are the times an event byte can pick besides a raw int64 and a
// step from the previous time.
var fuzzTimes = [...]int64{0, maxEventTime, -maxEventTime, maxEventTime - 1, -maxEventTime + 1,
	maxEventTime + 1, -maxEventTime - 1, math.MaxInt64, math.MinInt64, 1_795_515_300_000_000_000}

var fuzzDurations = [...]time.Duration{time.Nanosecond, time.Millisecond, time.Second, time.Minute,
	time.Hour, 24 * time.Hour, 1 << 40, maxWindowDuration}

const fuzzEventBytes = 10

func fuzzOperator(f *testing.F, kind Kind) {
	ev := func(key, mode byte, t int64) []byte {
		b := []byte{key, mode}
		return binary.LittleEndian.AppendUint64(b, uint64(t))
	}
	seed := func(params []byte, evs ...[]byte) []byte {
		out := append([]byte(nil), params...)
		for _, e := range evs {
			out = append(out, e...)
		}
		return out
	}
	// mode: low 2 bits pick raw time / step from previous / fuzzTimes entry;
	// bit 2 ends the batch after the event; bit 3 calls Advance after it.
	f.Add(seed([]byte{3, 2, 3, 2, 0, 0}, ev(0, 0, 1_795_515_300_000_000_000), ev(1, 1, int64(time.Second)), ev(0, 5, 3)))
	f.Add(seed([]byte{0, 0, 0, 0, 1, 1}, ev(0, 2, 1), ev(1, 2, 2), ev(2, 6, 5), ev(3, 2, 6), ev(0, 10, 8)))
	f.Add(seed([]byte{7, 7, 7, 7, 2, 2}, ev(0, 2, 1), ev(1, 2, 2), ev(0, 1, -1<<61), ev(1, 1, 1<<61)))
	f.Add(seed([]byte{2, 1, 4, 5, 3, 0}, ev(0, 0, math.MaxInt64), ev(1, 0, math.MinInt64), ev(2, 0, 0), ev(3, 4, 1<<62)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 6 {
			return
		}
		p, data := data[:6], data[6:]
		d := func(b byte) time.Duration { return fuzzDurations[int(b)%len(fuzzDurations)] }
		w := WindowSpec{Name: "fuzz", Kind: kind, OutOfOrderness: d(p[2]) / 2, AllowedLateness: d(p[3]) / 2,
			IdleTimeout: d(p[4]), MaxKeys: 1 + int(p[5]%4), MaxStateBytes: 8 << 10, PartialColumn: true,
			Features: []FeatureSpec{
				{Name: "events", Agg: AggCount},
				{Name: "x_p90", Agg: AggQuantile, Field: "x", Quantile: 0.9},
				{Name: "x_distinct", Agg: AggDistinctCount, Field: "x"},
				{Name: "x_rate", Agg: AggRate, Field: "x"},
				{Name: "since_last", Agg: AggSecondsSinceLast},
			}}
		switch kind {
		case Tumbling:
			w.Size = d(p[0])
		case Hopping:
			w.Slide = d(p[1])
			w.Size = w.Slide * time.Duration(1+p[0]%5)
		case Session:
			w.Gap = d(p[0])
		}
		if w.Validate(ptr(evSchema())) != nil {
			return // refused by validation: nothing to run
		}
		op, err := NewOperator(w, evSchema(), Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer op.Release()
		var fed, counted uint64
		check := func(out Output, evs []tev) {
			t.Helper()
			for _, l := range out.Late {
				if evs == nil || l.Row >= len(evs) || evs[l.Row].off != l.Offset {
					t.Fatalf("late event %+v does not name a row of the batch", l)
				}
			}
			checkRows(t, w, out.Features, fed)
			st := op.Stats()
			if st.OpenKeys > w.MaxKeys {
				t.Fatalf("%d keys held, max_keys %d", st.OpenKeys, w.MaxKeys)
			}
			if st.OpenKeys > 1 && st.LiveStateBytes > w.MaxStateBytes {
				t.Fatalf("live state %d bytes, budget %d", st.LiveStateBytes, w.MaxStateBytes)
			}
			if st.StateBytes > 16<<20 {
				t.Fatalf("state %d bytes for a handful of events", st.StateBytes)
			}
			counted = st.Events + st.LateDropped
		}
		prev := int64(1_795_515_300_000_000_000)
		now := time.Unix(0, 1_795_515_300_000_000_000)
		var batch []tev
		flush := func() {
			rec := evBatch(batch...)
			out, err := op.Process(rec, now)
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
			check(out, batch)
			batch = batch[:0]
		}
		for len(data) >= fuzzEventBytes {
			key, mode, raw := data[0], data[1], int64(binary.LittleEndian.Uint64(data[2:10]))
			data = data[fuzzEventBytes:]
			var ts int64
			switch mode & 3 {
			case 0:
				ts = raw
			case 1: // a step from the previous time, saturating
				if s := prev + raw; (raw > 0 && s < prev) || (raw < 0 && s > prev) {
					ts = prev
				} else {
					ts = s
				}
			default:
				ts = fuzzTimes[uint64(raw)%uint64(len(fuzzTimes))]
			}
			prev = ts
			batch = append(batch, tev{key: string('a' + rune(key%8)), t: ts, x: float64(raw % 1000), off: fed})
			fed++
			if mode&4 != 0 {
				flush()
			}
			if mode&8 != 0 {
				now = now.Add(time.Duration(raw & (1<<50 - 1)))
				check(op.Advance(now), nil)
			}
		}
		flush()
		check(op.Drain(), nil)
		if counted != fed {
			t.Fatalf("%d events fed, %d counted or handed back", fed, counted)
		}
		if st := op.Stats(); st.Panes != 0 {
			t.Fatalf("%d panes held after Drain", st.Panes)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// checkRows: every row is a window of the spec, with events, within the
// offsets fed.
func checkRows(t *testing.T, w WindowSpec, rec arrow.RecordBatch, fed uint64) {
	t.Helper()
	if rec == nil {
		return
	}
	defer rec.Release()
	st := rec.Column(1).(*array.Timestamp)
	en := rec.Column(2).(*array.Timestamp)
	n := rec.Schema().NumFields()
	of, ol := rec.Column(n-2).(*array.Uint64), rec.Column(n-1).(*array.Uint64)
	cnt := rec.Column(3).(*array.Float64)
	for i := range int(rec.NumRows()) {
		s, e := int64(st.Value(i)), int64(en.Value(i))
		if e <= s || (w.Kind != Session && time.Duration(e-s) != w.Size) {
			t.Fatalf("row %d: window [%d, %d) for %s size %v", i, s, e, w.Kind, w.Size)
		}
		if s < -maxEventTime-int64(w.Size) || e > maxEventTime+int64(w.Size+w.Gap) {
			t.Fatalf("row %d: window [%d, %d) outside the event-time bounds", i, s, e)
		}
		if cnt.Value(i) < 1 || of.Value(i) > ol.Value(i) || ol.Value(i) >= fed {
			t.Fatalf("row %d: %v events, offsets [%d, %d] of %d fed", i, cnt.Value(i), of.Value(i), ol.Value(i), fed)
		}
	}
}
