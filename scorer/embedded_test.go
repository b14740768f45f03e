package scorer

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The embedded scorer reads Arrow columns by name in any order, with nulls
// as missing values and int64 columns converted, and matches Predict on the
// same data.
func TestEmbeddedArrowMatchesPredict(t *testing.T) {
	m := loadFixtureModel(t, "categorical.json")
	in := readTable(t, filepath.Join("testdata", "fidelity", "categorical.input.csv"))
	want := readTable(t, filepath.Join("testdata", "fidelity", "categorical.expected.csv"))

	// Build the batch with columns reversed, cat_big as int64 (nulls for NaN).
	mem := memory.NewGoAllocator()
	var fields []arrow.Field
	var arrs []arrow.Array
	for j := len(in.Names) - 1; j >= 0; j-- {
		name, col := in.Names[j], in.Cols[j]
		if name == "cat_big" {
			b := array.NewInt64Builder(mem)
			for _, v := range col {
				if math.IsNaN(v) {
					b.AppendNull()
				} else {
					b.Append(int64(v))
				}
			}
			fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64, Nullable: true})
			arrs = append(arrs, b.NewArray())
			continue
		}
		b := array.NewFloat64Builder(mem)
		for _, v := range col {
			if math.IsNaN(v) {
				b.AppendNull()
			} else {
				b.Append(v)
			}
		}
		fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
		arrs = append(arrs, b.NewArray())
	}
	fields = append(fields, arrow.Field{Name: "entity", Type: arrow.BinaryTypes.String})
	sb := array.NewStringBuilder(mem)
	for range in.Rows {
		sb.Append("e")
	}
	arrs = append(arrs, sb.NewArray())
	schema := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(schema, arrs, int64(in.Rows))
	defer rec.Release()

	e, err := NewEmbedded(m, schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := e.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	if res.Len() != in.Rows || res.Count(SourcePrimary) != in.Rows {
		t.Fatalf("got %d rows, %d primary; want %d", res.Len(), res.Count(SourcePrimary), in.Rows)
	}
	if res.Version != m.Version() || res.VersionOf(0) != m.Version() || res.Version == "" {
		t.Fatalf("version %q, model %q", res.Version, m.Version())
	}
	pred := want.Cols[indexOf(want.Names, "pred")]
	for i := range in.Rows {
		if math.Abs(res.Scores[0][i]-pred[i]) > 1e-6 {
			t.Fatalf("row %d: %v, XGBoost %v", i, res.Scores[0][i], pred[i])
		}
	}
}

// A feature the model needs but the batch schema lacks fails at start-up,
// naming the feature.
func TestEmbeddedMissingFeatureAtStartup(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	names := slices.DeleteFunc(slices.Clone(m.Features()), func(s string) bool { return s == "vib" })
	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		fields[i] = arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64}
	}
	_, err := NewEmbedded(m, arrow.NewSchema(fields, nil), nil)
	var mf *MissingFeaturesError
	if !errors.As(err, &mf) || !slices.Equal(mf.Missing, []string{"vib"}) {
		t.Fatalf("err = %v, want MissingFeaturesError{vib}", err)
	}
	fields = append(fields, arrow.Field{Name: "vib", Type: arrow.BinaryTypes.String})
	if _, err := NewEmbedded(m, arrow.NewSchema(fields, nil), nil); err == nil {
		t.Fatal("a string feature column was accepted")
	}
}

// Steady-state scoring of a batch allocates nothing.
func TestEmbeddedNoAllocs(t *testing.T) {
	m := mustParse(t, synthModel(20, 5, 30, 1))
	cols := randomCols(30, 4096, 0.05, 1)
	rec := recordOf(t, featureNames(30), cols)
	e, err := NewEmbedded(m, rec.Schema(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	ctx := context.Background()
	allocs := testing.AllocsPerRun(20, func() {
		if err := e.Score(ctx, rec, &res); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch, want 0", allocs)
	}
}

// BenchmarkEmbeddedScore measures batch throughput through the Arrow path
// (4,096-row batches, 30 features, 5% nulls) on a 300-tree depth-6 model.
func BenchmarkEmbeddedScore(b *testing.B) {
	m := mustParse(b, synthModel(300, 6, 30, 1))
	rec := recordOf(b, featureNames(30), randomCols(30, 4096, 0.05, 2))
	e, _ := NewEmbedded(m, rec.Schema(), nil)
	var res Result
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Score(ctx, rec, &res); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*4096/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSingleRow scores one row at a time through the Arrow path on a
// 300-tree depth-6 model and reports the latency percentiles.
func BenchmarkSingleRow(b *testing.B) {
	m := mustParse(b, synthModel(300, 6, 30, 1))
	const distinct = 1024
	cols := randomCols(30, distinct, 0.05, 3)
	// Distinct rows sharing one schema, as windowing's batches do.
	recs := make([]arrow.RecordBatch, distinct)
	for i := range recs {
		one := make([][]float64, 30)
		for j := range one {
			one[j] = cols[j][i : i+1]
		}
		r := recordOf(b, featureNames(30), one)
		if i > 0 {
			r = array.NewRecordBatch(recs[0].Schema(), r.Columns(), 1)
			b.Cleanup(r.Release)
		}
		recs[i] = r
	}
	e, _ := NewEmbedded(m, recs[0].Schema(), nil)
	var res Result
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<20)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if err := e.Score(ctx, recs[i%distinct], &res); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		i++
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(0.999), "p99.9-µs")
}

// BenchmarkLoad500x8 parses and compiles a 500-tree depth-8 model (full
// trees, 255,500 nodes, with XGBoost's statistics arrays).
func BenchmarkLoad500x8(b *testing.B) {
	data := synthModel(500, 8, 30, 1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseModel(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load")
}
