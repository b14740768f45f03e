package windowing

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// evSchema is the smallest schema the operator needs: entity, time, one
// value; batches are built directly (no decoder) as the pipeline hands
// them over.
func evSchema() Schema {
	return Schema{Name: "ev", Entity: "id", Time: "ts", TimeFormat: TimeEpochMS,
		Fields: []FieldSpec{{Name: "x", Type: TypeFloat64}}}
}

type tev struct {
	key string
	t   int64
	x   float64
	off uint64
}

func evBatch(evs ...tev) arrow.RecordBatch {
	mem := memory.NewGoAllocator()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "ts", Type: timestampType},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: ColOffset, Type: arrow.PrimitiveTypes.Uint64},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	for _, e := range evs {
		b.Field(0).(*array.StringBuilder).Append(e.key)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(e.t))
		b.Field(2).(*array.Float64Builder).Append(e.x)
		b.Field(3).(*array.Uint64Builder).Append(e.off)
	}
	return b.NewRecordBatch()
}

// row is one feature row, read by column name as a reader of the sinks
// would.
type row struct {
	key              string
	start, end       int64
	events           float64
	update           bool
	partial          string
	offFirst, offLst uint64
}

func readRows(t testing.TB, rec arrow.RecordBatch) []row {
	t.Helper()
	if rec == nil {
		return nil
	}
	defer rec.Release()
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("feature batch has %d columns %q", len(idx), name)
		}
		return rec.Column(idx[0])
	}
	ent, st, en := col("id").(*array.String), col(ColWindowStart).(*array.Timestamp), col(ColWindowEnd).(*array.Timestamp)
	evs, upd := col("events").(*array.Float64), col(ColUpdate).(*array.Boolean)
	par, of, ol := col(ColPartial).(*array.String), col(ColOffsetFirst).(*array.Uint64), col(ColOffsetLast).(*array.Uint64)
	var out []row
	for i := range int(rec.NumRows()) {
		out = append(out, row{ent.Value(i), int64(st.Value(i)), int64(en.Value(i)), evs.Value(i), upd.Value(i),
			par.Value(i), of.Value(i), ol.Value(i)})
	}
	return out
}

// readersRule applies the rule documented at PartialEvicted: per entity and
// window, the final ordinary row, every "evicted" row, and the final row of
// each "late" group (by offset_first). Rows come in emission order.
func readersRule(t testing.TB, rows []row) map[[2]string][]row {
	t.Helper()
	type gk struct {
		key     string
		start   int64
		partial string
		og      uint64
	}
	final := map[gk]row{}
	var order []gk
	for _, r := range rows {
		g := gk{r.key, r.start, r.partial, 0}
		switch r.partial {
		case "":
		case PartialEvicted, PartialLate:
			g.og = r.offFirst
		default:
			t.Fatalf("unknown partial value %q", r.partial)
		}
		old, ok := final[g]
		switch {
		case !ok:
			order = append(order, g)
			final[g] = r
		case r.partial == PartialEvicted:
			t.Fatalf("two evicted rows with the same first offset: %+v and %+v", old, r)
		case r.update: // the newest update wins
			final[g] = r
		case !old.update:
			t.Fatalf("two non-update rows in one group: %+v and %+v", old, r)
		}
	}
	out := map[[2]string][]row{}
	for _, g := range order {
		k := [2]string{g.key, fmt.Sprint(g.start)}
		out[k] = append(out[k], final[g])
	}
	return out
}

// TestEvictionAccountsForEveryEvent: under MaxKeys or MaxStateBytes
// pressure, with events out of order and late within allowed lateness
// (so keys are evicted with open windows and with panes kept only for
// lateness), the rows the readers' rule keeps hold every accepted event of
// every window exactly once; the live state never exceeds the budget.
func TestEvictionAccountsForEveryEvent(t *testing.T) {
	const lateness = 2 * time.Minute
	for _, kind := range []Kind{Tumbling, Hopping} {
		for _, limit := range []string{"max_keys", "max_state_bytes"} {
			t.Run(string(kind)+"/"+limit, func(t *testing.T) {
				w := WindowSpec{Name: "w", Kind: kind, Size: time.Minute, OutOfOrderness: 5 * time.Second,
					AllowedLateness: lateness, MaxKeys: 1000, PartialColumn: true,
					Features: []FeatureSpec{{Name: "events", Agg: AggCount}, {Name: "x_p50", Agg: AggQuantile, Field: "x", Quantile: 0.5}}}
				if kind == Hopping {
					w.Size, w.Slide = 3*time.Minute, time.Minute
				}
				if limit == "max_keys" {
					w.MaxKeys = 6
				} else {
					w.MaxStateBytes = 4 << 10
				}
				op, err := NewOperator(w, evSchema(), Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				defer op.Release()
				slide := int64(w.Size)
				k := int64(1)
				if kind == Hopping {
					slide, k = int64(w.Slide), 3
				}
				rng := rand.New(rand.NewPCG(11, 12))
				want := map[[2]string]float64{} // accepted events per key and window start
				var rows []row
				clock := t0.UnixNano()
				for off := range uint64(8000) {
					clock += int64(rng.IntN(1500)) * int64(time.Millisecond)
					ts := clock - int64(rng.IntN(4000))*int64(time.Millisecond)
					if rng.IntN(8) == 0 { // late, within or beyond lateness
						ts -= int64(rng.IntN(200)) * int64(time.Second)
					}
					key := fmt.Sprintf("k%d", min(rng.IntN(30), rng.IntN(30))) // skewed
					out, err := op.Process(evBatch(tev{key, ts, rng.Float64(), off}), t0)
					if err != nil {
						t.Fatal(err)
					}
					rows = append(rows, readRows(t, out.Features)...)
					if st := op.Stats(); limit == "max_state_bytes" && st.OpenKeys > 1 && st.LiveStateBytes > w.MaxStateBytes {
						t.Fatalf("live state %d bytes > budget %d with %d keys", st.LiveStateBytes, w.MaxStateBytes, st.OpenKeys)
					}
					if len(out.Late) > 0 {
						continue
					}
					// Accepted: counted in each window holding it that is
					// still open or within allowed lateness.
					wm := op.Watermark().UnixNano()
					j := floorDiv(ts, slide)
					for e := j + 1; e <= j+k; e++ {
						if e*slide+int64(lateness) > wm {
							want[[2]string{key, fmt.Sprint((e - k) * slide)}]++
						}
					}
				}
				rows = append(rows, readRows(t, op.Drain().Features)...)
				st := op.Stats()
				if st.EvictedKeys == 0 || st.EarlyWindows == 0 || st.EvictedEvents == 0 || st.PartialLate == 0 {
					t.Fatalf("the stream did not exercise eviction: %+v", st)
				}
				if limit == "max_state_bytes" && st.EvictedForBytes == 0 {
					t.Fatalf("no eviction for bytes: %+v", st)
				}
				got := map[[2]string]float64{}
				for k, rs := range readersRule(t, rows) {
					for _, r := range rs {
						got[k] += r.events
					}
				}
				for k, n := range want {
					if got[k] != n {
						t.Errorf("%s window %s: rows kept by the readers' rule hold %v events, %v were accepted (rows %+v)",
							k[0], k[1], got[k], n, rowsOf(rows, k))
					}
				}
				for k, n := range got {
					if want[k] == 0 {
						t.Errorf("%s window %s: %v events in rows, none accepted", k[0], k[1], n)
					}
				}
				t.Logf("%+v", st)
			})
		}
	}
}

func rowsOf(rows []row, k [2]string) []row {
	var out []row
	for _, r := range rows {
		if r.key == k[0] && fmt.Sprint(r.start) == k[1] {
			out = append(out, r)
		}
	}
	return out
}

// TestLateRowAfterEvictionIsFlagged: a key evicted with panes kept only for
// lateness, then reached by a late event, emits a row flagged "late" that
// must not supersede its complete row; a key seen for the first time (as
// after a replay) is not flagged.
func TestLateRowAfterEvictionIsFlagged(t *testing.T) {
	w := WindowSpec{Name: "w", Kind: Tumbling, Size: time.Minute, AllowedLateness: 2 * time.Minute,
		MaxKeys: 1, PartialColumn: true, Features: []FeatureSpec{{Name: "events", Agg: AggCount}}}
	op, err := NewOperator(w, evSchema(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Release()
	base := t0.UnixNano()
	s := func(sec int) int64 { return base + int64(sec)*int64(time.Second) }
	var rows []row
	for i, e := range []tev{{"a", s(10), 1, 0}, {"a", s(20), 1, 1}, {"b", s(70), 1, 2}, {"a", s(30), 1, 3}, {"c", s(40), 1, 4}} {
		out, err := op.Process(evBatch(e), t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Late) != 0 {
			t.Fatalf("event %d handed back", i)
		}
		rows = append(rows, readRows(t, out.Features)...)
	}
	want := []row{
		{key: "a", start: s(0), end: s(60), events: 2, offFirst: 0, offLst: 1},                                     // complete, on b's watermark
		{key: "b", start: s(60), end: s(120), events: 1, partial: PartialEvicted, offFirst: 2, offLst: 2},          // b evicted for a's return
		{key: "a", start: s(0), end: s(60), events: 1, update: true, partial: PartialLate, offFirst: 3, offLst: 3}, // a's new state
		{key: "c", start: s(0), end: s(60), events: 1, update: true, offFirst: 4, offLst: 4},                       // new key, not flagged
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
	if st := op.Stats(); st.PartialLate != 1 || st.EarlyWindows != 1 || st.EvictedEvents != 1 || st.EvictedKeys != 3 {
		t.Errorf("stats %+v", st)
	}
}
