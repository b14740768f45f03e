package windowing_test

import (
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/streamscore/streamscore/windowing"
)

// TestRulesMatchTheFold: what WindowSpec.Validate accepts beyond plain
// numbers, the fold computes as documented: a bool is 1 or 0 (its mean is
// the share of true), a timestamp is seconds since the epoch, quantile 1
// is the largest value, rate without a field is events per second of the
// window, count_if compares a bool and a timestamp by value.
func TestRulesMatchTheFold(t *testing.T) {
	schema := windowing.Schema{
		Name: "all", Entity: "id", Time: "ts", TimeFormat: windowing.TimeRFC3339,
		Fields: []windowing.FieldSpec{
			{Name: "f", Type: windowing.TypeFloat64},
			{Name: "b", Type: windowing.TypeBool},
			{Name: "t", Type: windowing.TypeTimestamp},
		},
	}
	spec := windowing.WindowSpec{
		Name: "w", Kind: windowing.Tumbling, Size: time.Minute,
		Features: []windowing.FeatureSpec{
			{Name: "b_mean", Agg: windowing.AggMean, Field: "b"},
			{Name: "b_true", Agg: windowing.AggCountIf, Field: "b", Equals: "true"},
			{Name: "t_max", Agg: windowing.AggMax, Field: "t"},
			{Name: "t_at", Agg: windowing.AggCountIf, Field: "t", Equals: "2026-01-01T00:00:30Z"},
			{Name: "f_p100", Agg: windowing.AggQuantile, Field: "f", Quantile: 1},
			{Name: "f_p50", Agg: windowing.AggQuantile, Field: "f", Quantile: 0.5},
			{Name: "rate", Agg: windowing.AggRate},
		},
	}
	if err := spec.Validate(&schema); err != nil {
		t.Fatal(err)
	}
	dec, err := windowing.NewDecoder(schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Release()
	for i, r := range []string{
		`{"id":"a","ts":"2026-01-01T00:00:01Z","f":3,"b":true,"t":"2026-01-01T00:00:30Z"}`,
		`{"id":"a","ts":"2026-01-01T00:00:02Z","f":1,"b":false,"t":"2026-01-01T00:00:10Z"}`,
		`{"id":"a","ts":"2026-01-01T00:00:03Z","f":2,"b":true,"t":"2026-01-01T00:00:20Z"}`,
		`{"id":"a","ts":"2026-01-01T00:00:04Z","f":4,"b":true}`,
	} {
		if err := dec.Append([]byte(r), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	rec := dec.NewRecordBatch()
	defer rec.Release()
	op, err := windowing.NewOperator(spec, schema, windowing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Release()
	if _, err := op.Process(rec, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	out := op.Drain()
	if out.Features == nil || out.Features.NumRows() != 1 {
		t.Fatalf("want one row, got %v", out.Features)
	}
	defer out.Features.Release()
	t30 := float64(time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC).Unix())
	want := map[string]float64{
		"b_mean": 0.75, "b_true": 3, "t_max": t30, "t_at": 1, "f_p100": 4, "f_p50": 3, "rate": 4.0 / 60,
	}
	for i, f := range out.Features.Schema().Fields() {
		w, ok := want[f.Name]
		if !ok {
			continue
		}
		got := out.Features.Column(i).(*array.Float64).Value(0)
		if math.Abs(got-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s = %v, want %v", f.Name, got, w)
		}
		delete(want, f.Name)
	}
	if len(want) > 0 {
		t.Errorf("features missing from the batch: %v", want)
	}
}

// TestSpecErrorKeys: every SpecError names its setting twice, by name in
// Path and by position in Key (what the config file's key path ends with).
func TestSpecErrorKeys(t *testing.T) {
	schema := windowing.Schema{Name: "s", Entity: "id", Time: "ts", TimeFormat: windowing.TimeRFC3339,
		Fields: []windowing.FieldSpec{{Name: "x", Type: windowing.TypeFloat64}, {Name: "y", Type: "decimal"}}}
	w := windowing.WindowSpec{
		Name: "bad", Kind: windowing.Hopping, Size: 5 * time.Minute, Slide: 2 * time.Minute,
		Features: []windowing.FeatureSpec{
			{Name: "p", Agg: windowing.AggQuantile, Field: "x", Quantile: 1.5},
			{Name: "q", Agg: windowing.AggMean, Field: "nope"},
			{Name: "r", Agg: "median", Field: "x"},
			{Name: "window_end", Agg: windowing.AggCount},
			{Agg: windowing.AggCountIf, Field: "x", Equals: "fast"},
		},
	}
	want := []windowing.SpecError{
		{Path: "windows[bad].size", Key: "size"},
		{Path: "windows[bad].features[p].quantile", Key: "features[0].quantile"},
		{Path: "windows[bad].features[q].field", Key: "features[1].field"},
		{Path: "windows[bad].features[r].agg", Key: "features[2].agg"},
		{Path: "windows[bad].features[window_end].name", Key: "features[3].name"},
		{Path: "windows[bad].features[4].name", Key: "features[4].name"},
		{Path: "windows[bad].features[4].equals", Key: "features[4].equals"},
		{Path: "schemas[s].fields[y].type", Key: "fields[1].type"},
	}
	errs := append(w.Validate(&schema).(interface{ Unwrap() []error }).Unwrap(),
		schema.Validate().(interface{ Unwrap() []error }).Unwrap()...)
	if len(errs) != len(want) {
		t.Fatalf("%d errors, want %d: %v", len(errs), len(want), errs)
	}
	for i, e := range errs {
		se, ok := e.(*windowing.SpecError)
		if !ok {
			t.Fatalf("%v is a %T, not a *SpecError", e, e)
		}
		if se.Path != want[i].Path || se.Key != want[i].Key || se.Reason == "" {
			t.Errorf("error %d: path %q key %q (%q), want %q %q", i, se.Path, se.Key, se.Reason, want[i].Path, want[i].Key)
		}
	}
}
