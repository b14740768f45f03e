package windowing

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// sensorEvent is one sensor reading as JSON.
func sensorEvent(machine string, at time.Time, vib float64) string {
	return fmt.Sprintf(`{"machine_id":%q,"ts":%q,"vibration_rms":%v,"temperature_c":70}`, machine, at.Format(time.RFC3339Nano), vib)
}

// decodeBatch decodes records, numbering them from first.
func decodeBatch(t testing.TB, d *Decoder, first uint64, recs ...string) arrow.RecordBatch {
	t.Helper()
	for i, r := range recs {
		if err := d.Append([]byte(r), first+uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	return d.NewRecordBatch()
}

func process(t testing.TB, op *Operator, rec arrow.RecordBatch, now time.Time) []gotEmission {
	t.Helper()
	defer rec.Release()
	out, err := op.Process(rec, now)
	if err != nil {
		t.Fatal(err)
	}
	return readEmissions(t, out.Features, len(op.spec.Features))
}

func vibrationWindow() WindowSpec {
	return WindowSpec{
		Name: "machine_1m", Stream: "factory-sensors", Kind: Tumbling, Size: time.Minute,
		OutOfOrderness: 5 * time.Second, IdleTimeout: 30 * time.Second, AllowedLateness: time.Minute,
		Late: LateDeadLetter, MaxKeys: 1000,
		Features: []FeatureSpec{
			{Name: "vibration_mean", Agg: AggMean, Field: "vibration_rms"},
			{Name: "events", Agg: AggCount},
		},
	}
}

func windowsOf(es []gotEmission, key string) []refWin {
	var ws []refWin
	for _, e := range es {
		if e.win.key == key {
			ws = append(ws, e.win)
		}
	}
	return ws
}

// newVibrationOperator is a sensor decoder and the one-minute vibration
// window over it, both released when the test ends.
func newVibrationOperator(t *testing.T) (*Decoder, *Operator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	d, err := NewDecoder(sensorSchema(), mem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Release)
	op, err := NewOperator(vibrationWindow(), sensorSchema(), Options{Mem: mem})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Release)
	return d, op
}

// A reader that stalls between two batches of a backlog for longer than
// the idle timeout (a slow sink, a slow read) has not found its source
// idle: its next batch is on time, and only Advance, called when the
// source had nothing new, moves the watermark on processing time.
func TestAStalledReaderIsNotIdle(t *testing.T) {
	d, op := newVibrationOperator(t)
	batch := func(from, to int, off uint64) arrow.RecordBatch {
		var recs []string
		for s := from; s <= to; s++ {
			recs = append(recs, sensorEvent("press-1", t0.Add(time.Duration(s)*time.Second), 0.1))
		}
		return decodeBatch(t, d, off, recs...)
	}
	proc := t0.Add(time.Hour)
	if got := process(t, op, batch(0, 10, 0), proc); len(got) != 0 {
		t.Fatalf("emitted %v before the window's end", got)
	}
	// Ten minutes later (twenty idle timeouts), the rest of the minute.
	stalled := proc.Add(10 * time.Minute)
	rec := batch(11, 20, 11)
	out, err := op.Process(rec, stalled)
	rec.Release()
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Late) != 0 || out.Features != nil {
		t.Fatalf("after a stall: %d events late, features %v; the stall was the reader's, not the source's", len(out.Late), out.Features)
	}
	if st := op.Stats(); st.IdleAdvances != 0 {
		t.Fatalf("IdleAdvances = %d after a stall between two batches", st.IdleAdvances)
	}
	// The source then has nothing new: once the watermark, moving with
	// processing time from the last event (20 s - 5 s out-of-orderness),
	// passes the minute's end, it closes with all 21 events.
	got := readEmissions(t, op.Advance(stalled.Add(45*time.Second)).Features, 2)
	want := refWin{key: "press-1", start: t0.UnixNano(), end: t0.Add(time.Minute).UnixNano()}
	if len(got) != 1 || got[0].win != want || got[0].feats[1] != 21 {
		t.Fatalf("emitted %+v after the idle timeout, want %v with 21 events", got, want)
	}
}

func TestIdleShardStillFires(t *testing.T) {
	d, op := newVibrationOperator(t)
	// Processing time runs one hour behind event time (a backlog): the
	// idle rule must not care.
	proc := func(ev time.Duration) time.Time { return t0.Add(time.Hour + ev) }
	var off uint64
	var got []gotEmission
	// Two machines report every second; press-2 stops after 20 s, press-1
	// after 50 s.
	for s := 0; s <= 50; s++ {
		at := time.Duration(s) * time.Second
		recs := []string{sensorEvent("press-1", t0.Add(at), 0.1)}
		if s <= 20 {
			recs = append(recs, sensorEvent("press-2", t0.Add(at), 0.2))
		}
		got = append(got, process(t, op, decodeBatch(t, d, off, recs...), proc(at))...)
		off += uint64(len(recs))
	}
	if len(got) != 0 {
		t.Fatalf("window [0,60s) emitted before its end: %v", got)
	}
	last := proc(50 * time.Second)
	// Idle, but not for the timeout yet: nothing moves.
	out := op.Advance(last.Add(29 * time.Second))
	if out.Features != nil {
		out.Features.Release()
		t.Fatal("watermark advanced before the idle timeout")
	}
	// Idle timeout reached: the watermark follows processing time, so the
	// window ending 15 s of event time after the last event (60 s - 50 s
	// + 5 s out-of-orderness) is due now.
	out = op.Advance(last.Add(30 * time.Second))
	got = readEmissions(t, out.Features, 2)
	want := refWin{start: t0.UnixNano(), end: t0.Add(time.Minute).UnixNano()}
	for _, m := range []string{"press-1", "press-2"} {
		w := want
		w.key = m
		if ws := windowsOf(got, m); len(ws) != 1 || ws[0] != w {
			t.Errorf("%s: windows %v after idle timeout, want [%v]", m, ws, w)
		}
	}
	if st := op.Stats(); st.IdleAdvances != 1 {
		t.Errorf("IdleAdvances = %d", st.IdleAdvances)
	}
	// A window that ends long after the last event fires when processing
	// time says its end has passed, not 30 s after the last event.
	out = op.Advance(last.Add(10 * time.Minute))
	if out.Features != nil {
		out.Features.Release()
		t.Error("emitted a window with no events")
	}
	if wm := op.Watermark(); !wm.Equal(t0.Add(50*time.Second - 5*time.Second + 10*time.Minute)) {
		t.Errorf("watermark %v", wm)
	}
}

func TestStoppedKeyFiresOnOtherKeysWatermark(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	op, err := NewOperator(vibrationWindow(), sensorSchema(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Release()
	var got []gotEmission
	var off uint64
	for s := 0; s <= 70; s++ {
		at := time.Duration(s) * time.Second
		recs := []string{sensorEvent("press-1", t0.Add(at), 0.1)}
		if s <= 20 {
			recs = append(recs, sensorEvent("press-2", t0.Add(at), 0.2))
		}
		now := t0.Add(at) // no idle time ever passes
		got = append(got, process(t, op, decodeBatch(t, d, off, recs...), now)...)
		off += uint64(len(recs))
	}
	// The watermark (70 s - 5 s) passed 60 s: press-2's window fired
	// although press-2 sent nothing for 50 s.
	if ws := windowsOf(got, "press-2"); len(ws) != 1 {
		t.Fatalf("press-2 windows %v", ws)
	}
	for _, e := range got {
		if e.win.key == "press-2" && (e.feats[1] != 21 || math.Abs(e.feats[0]-0.2) > 1e-12) {
			t.Errorf("press-2 features %v", e.feats)
		}
	}
}

func TestLateEventsUpdateOrComeBack(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	w := vibrationWindow()
	op, err := NewOperator(w, sensorSchema(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Release()
	got := process(t, op, decodeBatch(t, d, 0,
		sensorEvent("m", t0.Add(10*time.Second), 1),
		sensorEvent("m", t0.Add(70*time.Second), 1), // watermark 65 s: [0,60) fires
	), t0)
	if len(got) != 1 || got[0].update || got[0].feats[1] != 1 {
		t.Fatalf("on-time emission %+v", got)
	}
	// Late but within allowed lateness: the window is re-emitted, flagged.
	got = process(t, op, decodeBatch(t, d, 2, sensorEvent("m", t0.Add(20*time.Second), 3)), t0)
	if len(got) != 1 || !got[0].update || got[0].feats[1] != 2 || got[0].feats[0] != 2 || got[0].offLo != 0 || got[0].offHi != 2 {
		t.Fatalf("update emission %+v", got)
	}
	// Move the watermark past 60 s + 1 min of lateness, then a late event
	// for [0,60) comes back to the caller, counted.
	process(t, op, decodeBatch(t, d, 3, sensorEvent("m", t0.Add(130*time.Second), 1)), t0)
	rec := decodeBatch(t, d, 4, sensorEvent("m", t0.Add(30*time.Second), 9))
	out, err := op.Process(rec, t0)
	rec.Release()
	if err != nil {
		t.Fatal(err)
	}
	if out.Features != nil {
		t.Fatal("a too-late event changed a window")
	}
	if len(out.Late) != 1 || out.Late[0].Offset != 4 || out.Late[0].Row != 0 || !out.Late[0].EventTime.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("late = %+v", out.Late)
	}
	if st := op.Stats(); st.LateDropped != 1 || st.LateAccepted != 1 || st.Updates != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestReplayFromOldestNeeded checks the checkpoint contract: after a
// failover at any point, a new operator fed the records from OldestNeeded
// on emits every window not yet emitted at the checkpoint exactly as the
// old one would have, and hands back the same late events.
func TestReplayFromOldestNeeded(t *testing.T) {
	for seed := range 12 {
		rng := rand.New(rand.NewPCG(uint64(seed), 99))
		for _, w := range propWindows(rng) {
			t.Run(fmt.Sprintf("%s/seed%d", w.Name, seed), func(t *testing.T) {
				stream := genStream(rng, 600+rng.IntN(600), 1+rng.IntN(5), time.Duration(1+rng.IntN(3))*time.Second)
				cut := len(stream)/4 + rng.IntN(len(stream)/2)

				orig := newRunner(t, w, propSchema(), nil)
				orig.run(rng, stream[:cut], false)
				before := map[refWin]bool{}
				for _, e := range orig.got {
					before[e.win] = true
				}
				nBefore, lateBefore := len(orig.got), len(orig.late)
				oldest, ok := orig.op.OldestNeeded()
				if !ok {
					t.Fatal("nothing held at the checkpoint")
				}
				orig.offset = uint64(cut)
				orig.run(rng, stream[cut:], true)
				after := orig.got[nBefore:]

				replay := newRunner(t, w, propSchema(), nil)
				replay.offset = oldest
				replay.run(rng, stream[oldest:], true)

				wantByWin := map[refWin][]gotEmission{}
				for _, e := range after {
					if !before[e.win] {
						wantByWin[e.win] = append(wantByWin[e.win], e)
					}
				}
				gotByWin := map[refWin][]gotEmission{}
				for _, e := range replay.got {
					if _, ok := wantByWin[e.win]; ok {
						gotByWin[e.win] = append(gotByWin[e.win], e)
					}
				}
				if len(wantByWin) == 0 {
					t.Fatal("no window opened after the checkpoint: the test checks nothing")
				}
				// seconds_since_last looks at the key's history before the
				// replay start, which a replay cannot see (see the package
				// doc); every other feature must be rebuilt bit for bit.
				since := slices.IndexFunc(w.Features, func(f FeatureSpec) bool { return f.Agg == AggSecondsSinceLast })
				same := func(g, e gotEmission) bool {
					if g.update != e.update || g.offLo != e.offLo || g.offHi != e.offHi {
						return false
					}
					for i := range e.feats {
						a, b := g.feats[i], e.feats[i]
						if i != since && a != b && !(math.IsNaN(a) && math.IsNaN(b)) {
							return false
						}
					}
					return true
				}
				for win, want := range wantByWin {
					got := gotByWin[win]
					// How many updates a window gets depends on how the late
					// events were cut into batches; its first emission and its
					// final state do not.
					if len(got) == 0 {
						t.Fatalf("window %v: not emitted by the replay", win)
					}
					if !same(got[0], want[0]) {
						t.Fatalf("window %v first emission: replay %+v, original %+v", win, got[0], want[0])
					}
					if g, e := got[len(got)-1], want[len(want)-1]; !same(g, e) {
						t.Fatalf("window %v final emission: replay %+v, original %+v", win, g, e)
					}
				}
				// Late events from the checkpoint on are the same.
				var wantLate, gotLate []uint64
				wantLate = orig.late[lateBefore:]
				for _, o := range replay.late {
					if o >= uint64(cut) {
						gotLate = append(gotLate, o)
					}
				}
				if !slices.Equal(gotLate, wantLate) {
					t.Fatalf("late after checkpoint: replay %v, original %v", gotLate, wantLate)
				}
			})
		}
	}
}

func TestOldestNeededTracksOpenWindows(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	w := vibrationWindow()
	w.AllowedLateness = 0
	op, err := NewOperator(w, sensorSchema(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Release()
	if _, ok := op.OldestNeeded(); ok {
		t.Fatal("fresh operator holds something")
	}
	process(t, op, decodeBatch(t, d, 100,
		sensorEvent("a", t0.Add(10*time.Second), 1),
		sensorEvent("b", t0.Add(50*time.Second), 1),
		sensorEvent("a", t0.Add(62*time.Second), 1), // window [60,120) opens
	), t0)
	if o, ok := op.OldestNeeded(); !ok || o != 100 {
		t.Fatalf("OldestNeeded = %d %v, want 100", o, ok)
	}
	process(t, op, decodeBatch(t, d, 103, sensorEvent("b", t0.Add(66*time.Second), 1)), t0) // [0,60) fires
	if o, ok := op.OldestNeeded(); !ok || o != 102 {
		t.Fatalf("OldestNeeded = %d %v, want 102 (first event of [60,120))", o, ok)
	}
}

func TestMaxKeysEvictsLeastRecentlyUpdated(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d, _ := newTestDecoder(t, sensorSchema())
	w := vibrationWindow()
	w.MaxKeys = 3
	op, err := NewOperator(w, sensorSchema(), Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Release()
	var got []gotEmission
	// m0..m2 fill the table; m0 is touched again, so m1 is the least
	// recently updated when m3 arrives.
	got = append(got, process(t, op, decodeBatch(t, d, 0,
		sensorEvent("m0", t0.Add(1*time.Second), 1),
		sensorEvent("m1", t0.Add(2*time.Second), 2),
		sensorEvent("m2", t0.Add(3*time.Second), 3),
		sensorEvent("m0", t0.Add(4*time.Second), 1),
		sensorEvent("m3", t0.Add(5*time.Second), 4),
	), t0)...)
	st := op.Stats()
	if st.OpenKeys != 3 || st.EvictedKeys != 1 || st.EarlyWindows != 1 {
		t.Fatalf("stats %+v", st)
	}
	// m1's open window was emitted early rather than lost.
	if len(got) != 1 || got[0].win.key != "m1" || got[0].feats[0] != 2 {
		t.Fatalf("emitted %+v", got)
	}
	if !strings.Contains(logs.String(), "max_keys reached") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning logged: %q", logs.String())
	}
	// Many more keys: memory stays bounded by max_keys.
	for i := range 1000 {
		process(t, op, decodeBatch(t, d, uint64(10+i), sensorEvent(fmt.Sprintf("x%d", i), t0.Add(6*time.Second), 1)), t0)
	}
	if st := op.Stats(); st.OpenKeys != 3 || st.Panes > 3 {
		t.Fatalf("state grew past max_keys: %+v", st)
	}
}

func TestSpecValidateNamesTheFeature(t *testing.T) {
	s := sensorSchema()
	w := WindowSpec{
		Name: "bad", Kind: Hopping, Size: 5 * time.Minute, Slide: 2 * time.Minute, MaxKeys: 1,
		Features: []FeatureSpec{
			{Name: "p", Agg: AggQuantile, Field: "temperature_c", Quantile: 1.5},
			{Name: "q", Agg: AggMean, Field: "nope"},
			{Name: "r", Agg: "median", Field: "rpm"},
			{Name: "window_end", Agg: AggCount},
			{Name: "s", Agg: AggCountIf, Field: "rpm", Equals: "fast"},
		},
	}
	err := w.Validate(&s)
	var paths []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var se *SpecError
		if !errors.As(e, &se) {
			t.Fatalf("%v is not a *SpecError", e)
		}
		paths = append(paths, se.Path)
	}
	want := []string{
		"windows[bad].size",
		"windows[bad].features[p].quantile",
		"windows[bad].features[q].field",
		"windows[bad].features[r].agg",
		"windows[bad].features[window_end].name",
		"windows[bad].features[s].equals",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %q\nwant  %q", paths, want)
	}
	bad := Schema{Name: "s", Entity: "id", Time: "id", TimeFormat: "iso", Fields: []FieldSpec{{Name: "x", Type: "decimal"}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "schemas[s].time_format") || !strings.Contains(err.Error(), "schemas[s].fields[x].type") {
		t.Errorf("schema errors: %v", err)
	}
}

func TestBatchMustCarryTheColumns(t *testing.T) {
	op, err := NewOperator(vibrationWindow(), sensorSchema(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Release()
	// A batch of another schema: an error naming the column, not a panic.
	d, _ := newTestDecoder(t, appSchema())
	rec := decodeBatch(t, d, 0, `{"user_id":"u","ts":"2026-11-24T10:00:00Z"}`)
	defer rec.Release()
	if _, err := op.Process(rec, t0); err == nil || !strings.Contains(err.Error(), "machine_id") {
		t.Fatalf("err = %v", err)
	}
}
