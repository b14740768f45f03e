package scorer

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// contribFixtures are the models testdata/gen.py wrote XGBoost's
// approx_contribs for (NAME.contribs.csv), with every encoding of each.
func contribFixtures() []fixture {
	var out []fixture
	for _, fx := range fixtures() {
		if _, err := os.Stat(filepath.Join("testdata", "fidelity", fx.name+".contribs.csv")); err == nil {
			out = append(out, fx)
		}
	}
	return out
}

// float32Close reports whether got is want to float32 precision: within a
// few float32 ulps of the larger of |want| and the row's scale (the
// contributions are float32 sums, XGBoost's and ours).
func float32Close(got, want, scale float64) bool {
	return math.Abs(got-want) <= 4*0x1p-24*max(math.Abs(want), scale)
}

// TestContributionsMatchXGBoost checks every feature contribution and the
// bias of the fixture rows (the all-missing row, negative zeros and values
// at split thresholds among them) against XGBoost 1.7's
// predict(pred_contribs=True, approx_contribs=True), for binary, regression,
// multi-class, categorical and early-stopped models in every encoding.
func TestContributionsMatchXGBoost(t *testing.T) {
	fxs := contribFixtures()
	if len(fxs) < 5 {
		t.Fatalf("%d contribution fixtures, want 5 (run testdata/gen.py)", len(fxs))
	}
	for _, fx := range fxs {
		in := readTable(t, filepath.Join("testdata", "fidelity", fx.name+".input.csv"))
		want := readTable(t, filepath.Join("testdata", "fidelity", fx.name+".contribs.csv"))
		for _, file := range fx.files {
			t.Run(file, func(t *testing.T) {
				m := loadFixtureModel(t, file)
				nf := len(m.Features())
				if len(want.Names) != m.Outputs()*(nf+1) {
					t.Fatalf("fixture has %d columns, want %d outputs x (%d features + bias)", len(want.Names), m.Outputs(), nf)
				}
				cols, err := in.Select(m.Features())
				if err != nil {
					t.Fatal(err)
				}
				var s Scratch
				var c []float64
				x := make([]float64, nf)
				exact, nonzero, missing := 0, 0, 0
				for i := range want.Rows {
					for j := range x {
						x[j] = cols[j][i]
						if math.IsNaN(x[j]) {
							missing++
						}
					}
					for k := range m.Outputs() {
						if c, err = m.Contributions(c, x, k, &s); err != nil {
							t.Fatal(err)
						}
						scale := 0.0
						for j := range nf + 1 {
							scale = max(scale, math.Abs(want.Cols[k*(nf+1)+j][i]))
						}
						for j := range nf + 1 {
							name := want.Names[k*(nf+1)+j]
							w := want.Cols[k*(nf+1)+j][i]
							if !float32Close(c[j], w, scale*1e-3) {
								t.Errorf("row %d %s: got %.9g, XGBoost %.9g", i+2, name, c[j], w)
							}
							if c[j] == w {
								exact++
							}
							if w != 0 && j < nf {
								nonzero++
							}
						}
					}
				}
				if missing == 0 || nonzero < want.Rows {
					t.Fatalf("fixture too weak: %d missing values, %d non-zero contributions", missing, nonzero)
				}
				t.Logf("%d of %d values bit-identical to XGBoost", exact, want.Rows*len(want.Names))
			})
		}
	}
}

// TestContributionsSumToMargin: for every fixture model and every row of
// its test input, the contributions plus the bias add up to the margin
// PredictMargins gives, per output; a multi:softmax score (a class index)
// has none.
func TestContributionsSumToMargin(t *testing.T) {
	for _, fx := range fixtures() {
		t.Run(fx.name, func(t *testing.T) {
			m := loadFixtureModel(t, fx.files[0])
			in := readTable(t, filepath.Join("testdata", "fidelity", fx.name+".input.csv"))
			cols, err := in.Select(m.Features())
			if err != nil {
				t.Fatal(err)
			}
			var s Scratch
			x := make([]float64, len(cols))
			if fx.name == "multi_softmax" {
				if _, err := m.Contributions(nil, x, 0, &s); !errors.Is(err, ErrNoContributions) {
					t.Fatalf("multi:softmax contributions: err = %v, want ErrNoContributions", err)
				}
				return
			}
			margins := alloc(m.impl.marginOutputs(), in.Rows)
			if err := m.PredictMargins(cols, in.Rows, margins, &s); err != nil {
				t.Fatal(err)
			}
			var c []float64
			for i := range in.Rows {
				for j := range x {
					x[j] = cols[j][i]
				}
				for k := range m.Outputs() {
					if c, err = m.Contributions(c, x, k, &s); err != nil {
						t.Fatal(err)
					}
					sum, mag := 0.0, 0.0
					for _, v := range c {
						sum += v
						mag += math.Abs(v)
					}
					// Both sides are float32 sums of the same tree values in
					// different orders: a few ulps of the terms' magnitude.
					if d := math.Abs(sum - margins[k][i]); d > 8*0x1p-24*mag {
						t.Errorf("row %d output %d: contributions sum to %.9g, margin %.9g (|terms| %.3g)", i+2, k, sum, margins[k][i], mag)
					}
				}
			}
		})
	}
}

// Synthetic full trees, in the complete layout (depth 6) and deeper than it
// allows (depth 13, walked by the branching loop), sum to their margins too.
func TestContributionsSumToMarginSynthetic(t *testing.T) {
	for _, m := range []*Model{mustParse(t, synthModel(40, 6, 30, 5)), mustParse(t, synthModel(3, 13, 10, 6))} {
		nf := len(m.Features())
		const n = 256
		cols := randomCols(nf, n, 0.1, 7)
		margins := alloc(1, n)
		var s Scratch
		if err := m.PredictMargins(cols, n, margins, &s); err != nil {
			t.Fatal(err)
		}
		x := make([]float64, nf)
		var c []float64
		for i := range n {
			for j := range x {
				x[j] = cols[j][i]
			}
			var err error
			if c, err = m.Contributions(c, x, 0, &s); err != nil {
				t.Fatal(err)
			}
			sum, mag := 0.0, 0.0
			for _, v := range c {
				sum += v
				mag += math.Abs(v)
			}
			if d := math.Abs(sum - margins[0][i]); d > 8*0x1p-24*mag*float64(m.Info().Trees) {
				t.Fatalf("depth %d row %d: contributions sum to %.9g, margin %.9g", m.Info().MaxDepth, i, sum, margins[0][i])
			}
		}
	}
}

const linearJSON = `{"streamscore_linear":1,"link":"logistic","intercept":-2.5,"features":[
	{"name":"temp","weight":0.031},
	{"name":"vib","weight":1.7,"missing":0.2},
	{"name":"rpm","weight":-0.0004}]}`

// TestContributionsLinear: weight times value (the missing value for a
// missing input), the intercept as bias, summing to the linear predictor.
func TestContributionsLinear(t *testing.T) {
	m := mustParse(t, []byte(linearJSON))
	var s Scratch
	for _, x := range [][]float64{{70, 0.9, 1500}, {-3.25, nan(), 0}, {nan(), nan(), nan()}} {
		c, err := m.Contributions(nil, x, 0, &s)
		if err != nil {
			t.Fatal(err)
		}
		vib := x[1]
		if math.IsNaN(vib) {
			vib = 0.2
		}
		temp, rpm := x[0], x[2]
		if math.IsNaN(temp) {
			temp = 0
		}
		if math.IsNaN(rpm) {
			rpm = 0
		}
		want := []float64{0.031 * temp, 1.7 * vib, -0.0004 * rpm, -2.5}
		for j := range want {
			if c[j] != want[j] {
				t.Errorf("x=%v: contribution %d = %v, want %v", x, j, c[j], want[j])
			}
		}
		margin := [][]float64{{0}}
		if err := m.PredictMargins([][]float64{{x[0]}, {x[1]}, {x[2]}}, 1, margin, &s); err != nil {
			t.Fatal(err)
		}
		if sum := c[3] + c[0] + c[1] + c[2]; math.Abs(sum-margin[0][0]) > 1e-12*math.Max(1, math.Abs(sum)) {
			t.Errorf("x=%v: contributions sum to %v, margin %v", x, sum, margin[0][0])
		}
	}
	if _, err := m.Contributions(nil, []float64{1, 2}, 0, &s); err == nil {
		t.Error("2 values for a 3-feature model were accepted")
	}
	if _, err := m.Contributions(nil, []float64{1, 2, 3}, 1, &s); err == nil {
		t.Error("output 1 of a single-output model was accepted")
	}
}

// A model file without sum_hessian (hand-made, or stripped by a tool)
// still loads and scores, but says it has no contributions.
func TestContributionsNeedSumHessian(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "fidelity", "binary_logistic.json"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"sum_hessian":\[[^\]]*\],?`)
	stripped := re.ReplaceAll(data, nil)
	if bytes.Equal(stripped, data) {
		t.Fatal("fixture has no sum_hessian to strip")
	}
	full, m := mustParse(t, data), mustParse(t, stripped)
	if err := full.CheckContributions(); err != nil {
		t.Fatalf("fixture model: %v", err)
	}
	if err := m.CheckContributions(); !errors.Is(err, ErrNoContributions) {
		t.Fatalf("CheckContributions = %v, want ErrNoContributions", err)
	}
	var s Scratch
	x := make([]float64, len(m.Features()))
	if _, err := m.Contributions(nil, x, 0, &s); !errors.Is(err, ErrNoContributions) {
		t.Fatalf("Contributions err = %v, want ErrNoContributions", err)
	}
	cols := make([][]float64, len(x))
	for j := range cols {
		cols[j] = []float64{0.5}
	}
	a, b := alloc(1, 1), alloc(1, 1)
	if err := full.Predict(cols, 1, a, &s); err != nil {
		t.Fatal(err)
	}
	if err := m.Predict(cols, 1, b, &s); err != nil {
		t.Fatal(err)
	}
	if a[0][0] != b[0][0] {
		t.Fatalf("prediction changed without sum_hessian: %v vs %v", a[0][0], b[0][0])
	}
}

// TestExplainReadsBatchLikeScore: Explain finds the features by name in a
// batch whose columns are in another order, among other columns, of other
// numeric types, with nulls, and gives the values and contributions
// Contributions gives for the same row.
func TestExplainReadsBatchLikeScore(t *testing.T) {
	for _, file := range []string{"categorical.json", "multi_softprob.json"} {
		t.Run(file, func(t *testing.T) {
			m := loadFixtureModel(t, file)
			in := readTable(t, filepath.Join("testdata", "fidelity", file[:len(file)-5]+".input.csv"))
			cols, err := in.Select(m.Features())
			if err != nil {
				t.Fatal(err)
			}
			const rows = 12
			mem := memory.NewGoAllocator()
			// Reversed order, an entity column in front, the categorical
			// features as int64 and the rest as float32 columns.
			fields := []arrow.Field{{Name: "entity", Type: arrow.BinaryTypes.String}}
			arrs := []arrow.Array{}
			eb := array.NewStringBuilder(mem)
			for i := range rows {
				eb.Append(fmt.Sprint("m", i))
			}
			arrs = append(arrs, eb.NewArray())
			x := make([][]float64, rows)
			for i := range x {
				x[i] = make([]float64, len(cols))
			}
			for j := len(cols) - 1; j >= 0; j-- {
				name := m.Features()[j]
				if name == "cat_small" || name == "cat_big" {
					b := array.NewInt64Builder(mem)
					for i := range rows {
						v := cols[j][i]
						if math.IsNaN(v) {
							b.AppendNull()
						} else {
							b.Append(int64(v))
							v = float64(int64(v))
						}
						x[i][j] = v
					}
					fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64, Nullable: true})
					arrs = append(arrs, b.NewArray())
					continue
				}
				b := array.NewFloat32Builder(mem)
				for i := range rows {
					v := cols[j][i]
					if math.IsNaN(v) {
						b.AppendNull()
					} else {
						b.Append(float32(v))
					}
					x[i][j] = float64(float32(v))
				}
				fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float32, Nullable: true})
				arrs = append(arrs, b.NewArray())
			}
			rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, rows)
			defer rec.Release()
			var s Scratch
			nulls := 0
			for i := range rows {
				for k := range m.Outputs() {
					ex, err := m.Explain(rec, i, k)
					if err != nil {
						t.Fatal(err)
					}
					c, err := m.Contributions(nil, x[i], k, &s)
					if err != nil {
						t.Fatal(err)
					}
					if ex.Bias != c[len(x[i])] {
						t.Errorf("row %d output %d: bias %v, want %v", i, k, ex.Bias, c[len(x[i])])
					}
					for j, fc := range ex.Features {
						same := fc.Value == x[i][j] || (math.IsNaN(fc.Value) && math.IsNaN(x[i][j]))
						if fc.Feature != m.Features()[j] || !same || fc.Contribution != c[j] {
							t.Errorf("row %d output %d feature %d: %+v, want %s %v %v", i, k, j, fc, m.Features()[j], x[i][j], c[j])
						}
						if math.IsNaN(fc.Value) {
							nulls++
						}
					}
				}
			}
			if nulls == 0 {
				t.Fatal("no null among the rows explained")
			}
			if _, err := m.Explain(rec, rows, 0); err == nil {
				t.Error("a row past the batch was accepted")
			}
			short := array.NewRecordBatch(arrow.NewSchema(fields[:3], nil), arrs[:3], rows)
			defer short.Release()
			var mf *MissingFeaturesError
			if _, err := m.Explain(short, 0, 0); !errors.As(err, &mf) {
				t.Errorf("batch without the model's features: err = %v, want a MissingFeaturesError", err)
			}
		})
	}
}

// Contributions with a reused Scratch and dst allocate nothing.
func TestContributionsNoAllocs(t *testing.T) {
	for _, m := range []*Model{mustParse(t, synthModel(50, 6, 30, 1)), loadFixtureModel(t, "categorical.json"), mustParse(t, []byte(linearJSON))} {
		cols := randomCols(len(m.Features()), 1, 0.1, 4)
		x := make([]float64, len(cols))
		for j := range x {
			x[j] = cols[j][0]
		}
		var s Scratch
		c, _ := m.Contributions(nil, x, 0, &s)
		if allocs := testing.AllocsPerRun(50, func() {
			var err error
			if c, err = m.Contributions(c, x, 0, &s); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("%s: %.1f allocations per call, want 0", m.Info().Objective, allocs)
		}
	}
}

// BenchmarkContributions measures one row's contributions: a 300-tree
// depth-6 model with 30 features (the BenchmarkSingleRow model), the same
// through Explain from an Arrow batch, and a 30-feature linear model.
func BenchmarkContributions(b *testing.B) {
	const distinct = 1024
	cols := randomCols(30, distinct, 0.05, 3)
	row := func(i int) []float64 {
		x := make([]float64, len(cols))
		for j := range x {
			x[j] = cols[j][i%distinct]
		}
		return x
	}
	trees := mustParse(b, synthModel(300, 6, 30, 1))
	lin := []byte(`{"streamscore_linear":1,"link":"logistic","intercept":-1,"features":[`)
	for j := range 30 {
		if j > 0 {
			lin = append(lin, ',')
		}
		lin = fmt.Appendf(lin, `{"name":"f%d","weight":%g}`, j, 0.1*float64(j+1))
	}
	lin = append(lin, "]}"...)
	linear := mustParse(b, lin)
	for _, bm := range []struct {
		name string
		m    *Model
	}{{"trees300x6", trees}, {"linear30", linear}} {
		rows := make([][]float64, distinct)
		for i := range rows {
			rows[i] = row(i)
		}
		b.Run(bm.name, func(b *testing.B) {
			var s Scratch
			var c []float64
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var err error
				if c, err = bm.m.Contributions(c, rows[i%distinct], 0, &s); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	rec := recordOf(b, featureNames(30), cols)
	b.Run("explain-arrow-trees300x6", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := trees.Explain(rec, i%distinct, 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
