package quality

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestRegressionHandComputed(t *testing.T) {
	r := NewRegression()
	r.Add(2, 1)
	r.Add(3, 3)
	r.Add(5, 4)
	r.Add(math.NaN(), 1)
	r.Add(1, math.Inf(1))
	r.Add(1e200, -1e200) // its squared error overflows
	if r.Count() != 3 || r.Missing() != 3 {
		t.Fatalf("count %d missing %d, want 3 and 3", r.Count(), r.Missing())
	}
	st := r.Statistics()
	m := st.Regression
	// Errors 1, 0, 1; actual values 1, 3, 4 (mean 8/3, variance 14/9).
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"mae", m.MAE.Value, 2.0 / 3},
		{"mse", m.MSE.Value, 2.0 / 3},
		{"rmse", m.RMSE.Value, math.Sqrt(2.0 / 3)},
		{"r2", m.R2.Value, 1 - (2.0/3)/(14.0/9)},
	} {
		if !near(c.got, c.want, 1e-15) {
			t.Errorf("%s = %.17g, want %.17g", c.name, c.got, c.want)
		}
	}
	if !math.IsNaN(m.MAE.StandardDeviation) || st.Dataset.ItemCount != 3 || st.Dataset.NumMissing != 3 {
		t.Errorf("under 200 rows: %+v, dataset %+v", m.MAE, st.Dataset)
	}
}

// TestRegressionR2Edges: scikit-learn's r2_score on actual values that do
// not vary, and on fewer than two rows.
func TestRegressionR2Edges(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows [][2]float64
		r2   float64
	}{
		{"constant, perfect", [][2]float64{{5, 5}, {5, 5}}, 1},
		{"constant, off", [][2]float64{{4, 5}, {6, 5}}, 0},
		{"one row", [][2]float64{{4, 5}}, math.NaN()},
	} {
		r := NewRegression()
		for _, row := range tc.rows {
			r.Add(row[0], row[1])
		}
		got := r.Statistics().Regression.R2.Value
		if got != tc.r2 && !(math.IsNaN(got) && math.IsNaN(tc.r2)) {
			t.Errorf("%s: r2 %v, want %v", tc.name, got, tc.r2)
		}
	}
	m := NewRegression().Statistics().Regression
	if !math.IsNaN(m.MAE.Value) || !math.IsNaN(m.R2.Value) {
		t.Errorf("no rows: %+v", m)
	}
}

func TestRegressionStandardDeviations(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	r := NewRegression()
	var absErrs, sqErrs []float64
	for range 500 {
		a := rng.NormFloat64()*10 + 50
		p := a + rng.NormFloat64()*3
		r.Add(p, a)
		absErrs = append(absErrs, math.Abs(p-a))
		sqErrs = append(sqErrs, (p-a)*(p-a))
	}
	sd := func(v []float64) float64 {
		var s, s2 float64
		for _, x := range v {
			s += x
			s2 += x * x
		}
		n := float64(len(v))
		return math.Sqrt(s2/n - (s/n)*(s/n))
	}
	m := r.Statistics().Regression
	n := math.Sqrt(500)
	if want := 0.5 * sd(absErrs) / n; !near(m.MAE.StandardDeviation, want, 1e-9) {
		t.Errorf("mae standard deviation %v, want ½·sd(|e|)/√n = %v", m.MAE.StandardDeviation, want)
	}
	if want := 0.5 * sd(sqErrs) / n; !near(m.MSE.StandardDeviation, want, 1e-9) {
		t.Errorf("mse standard deviation %v, want %v", m.MSE.StandardDeviation, want)
	}
	if want := m.MSE.StandardDeviation / (2 * m.RMSE.Value); !near(m.RMSE.StandardDeviation, want, 1e-12) {
		t.Errorf("rmse standard deviation %v, want %v", m.RMSE.StandardDeviation, want)
	}
}

// TestRegressionMerge: parts merged in any order give one accumulator's
// counts exactly and its metrics to float rounding.
func TestRegressionMerge(t *testing.T) {
	rows := readRows(t, "regression.csv")
	whole := NewRegression()
	for _, row := range rows {
		whole.Add(row[0], row[1])
	}
	want := whole.Statistics()
	for _, cuts := range [][]int{{0, 700, 701, len(rows)}, {0, 1, len(rows) - 1, len(rows)}} {
		var parts []*Regression
		for i := 0; i+1 < len(cuts); i++ {
			p := NewRegression()
			for _, row := range rows[cuts[i]:cuts[i+1]] {
				p.Add(row[0], row[1])
			}
			parts = append(parts, p)
		}
		for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}} {
			m := NewRegression()
			for _, i := range order {
				if err := m.Merge(parts[i]); err != nil {
					t.Fatal(err)
				}
			}
			got := m.Statistics()
			if got.Dataset != want.Dataset {
				t.Fatalf("cuts %v order %v: dataset %+v, want %+v", cuts, order, got.Dataset, want.Dataset)
			}
			for _, c := range []struct {
				name      string
				got, want Metric
			}{{"mae", got.Regression.MAE, want.Regression.MAE}, {"mse", got.Regression.MSE, want.Regression.MSE},
				{"rmse", got.Regression.RMSE, want.Regression.RMSE}, {"r2", got.Regression.R2, want.Regression.R2}} {
				if !near(c.got.Value, c.want.Value, 1e-12) || !near(c.got.StandardDeviation, c.want.StandardDeviation, 1e-9) {
					t.Errorf("cuts %v order %v: %s %+v, want %+v", cuts, order, c.name, c.got, c.want)
				}
			}
		}
	}
	whole.Reset()
	if whole.Count() != 0 || whole.MemoryBytes() == 0 {
		t.Errorf("after Reset: count %d", whole.Count())
	}
}
