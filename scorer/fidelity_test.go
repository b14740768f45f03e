package scorer

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture is one model trained and predicted by XGBoost 1.7 (testdata/gen.py).
type fixture struct {
	name        string
	files       []string // the same model in several encodings
	margins     int      // margin columns (output groups)
	probability bool     // predictions are probabilities (absolute tolerance)
}

func fixtures() []fixture {
	return []fixture{
		{"binary_logistic", []string{"binary_logistic.json", "binary_logistic.ubj", "binary_logistic.v3.json", "model.tar.gz"}, 1, true},
		{"binary_logitraw", []string{"binary_logitraw.json"}, 1, false},
		{"reg_squarederror", []string{"reg_squarederror.json"}, 1, false},
		{"reg_logistic", []string{"reg_logistic.json"}, 1, true},
		{"count_poisson", []string{"count_poisson.json", "count_poisson.v3.json"}, 1, false},
		{"multi_softprob", []string{"multi_softprob.json", "multi_softprob.ubj", "multi_softprob.v3.json"}, 3, true},
		{"multi_softmax", []string{"multi_softmax.json"}, 3, false},
		{"categorical", []string{"categorical.json", "categorical.ubj"}, 1, true},
		{"early_stopping", []string{"early_stopping.json"}, 1, true},
	}
}

func readTable(t testing.TB, path string) *FeatureTable {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := ReadFeatureCSV(f, nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return tab
}

func loadFixtureModel(t testing.TB, file string, opts ...LoadOption) *Model {
	t.Helper()
	m, err := LoadModel(t.Context(), filepath.Join("testdata", "fidelity", file), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFidelity checks every prediction and margin of every fixture model, in
// every encoding, against XGBoost's own output: probabilities within 1e-6
// absolute, margins and other predictions within 1e-5 relative, on every row
// (rows with missing values and values at split thresholds included).
func TestFidelity(t *testing.T) {
	for _, fx := range fixtures() {
		in := readTable(t, filepath.Join("testdata", "fidelity", fx.name+".input.csv"))
		want := readTable(t, filepath.Join("testdata", "fidelity", fx.name+".expected.csv"))
		nanRows := 0
		for i := range in.Rows {
			for _, c := range in.Cols {
				if math.IsNaN(c[i]) {
					nanRows++
					break
				}
			}
		}
		if nanRows == 0 {
			t.Fatalf("%s: fixture has no rows with missing values", fx.name)
		}
		for _, file := range fx.files {
			t.Run(file, func(t *testing.T) {
				m := loadFixtureModel(t, file)
				cols, err := in.Select(m.Features())
				if err != nil {
					t.Fatal(err)
				}
				var s Scratch
				preds := alloc(m.Outputs(), in.Rows)
				if err := m.Predict(cols, in.Rows, preds, &s); err != nil {
					t.Fatal(err)
				}
				margins := alloc(fx.margins, in.Rows)
				if err := m.PredictMargins(cols, in.Rows, margins, &s); err != nil {
					t.Fatal(err)
				}
				checked := 0
				for _, name := range want.Names {
					wcol := want.Cols[indexOf(want.Names, name)]
					got, prob := expectedColumn(t, name, preds, margins, fx.probability)
					for i := range in.Rows {
						if !within(got[i], wcol[i], prob) {
							t.Errorf("row %d %s: got %.9g, XGBoost %.9g", i+2, name, got[i], wcol[i])
						}
						checked++
					}
				}
				if checked < in.Rows*2 {
					t.Fatalf("checked %d values for %d rows", checked, in.Rows)
				}
			})
		}
	}
}

// expectedColumn is the column of preds or margins a fixture's expected
// column names (pred, pred_K, margin, margin_K), and whether it is compared
// as a probability (margins never are).
func expectedColumn(t *testing.T, name string, preds, margins [][]float64, prob bool) ([]float64, bool) {
	t.Helper()
	switch {
	case name == "pred":
		return preds[0], prob
	case strings.HasPrefix(name, "pred_"):
		return preds[atoi(t, name[5:])], prob
	case name == "margin":
		return margins[0], false
	case strings.HasPrefix(name, "margin_"):
		return margins[atoi(t, name[7:])], false
	}
	t.Fatalf("unexpected column %q", name)
	return nil, false
}

func within(got, want float64, prob bool) bool {
	if prob {
		return math.Abs(got-want) <= 1e-6
	}
	return math.Abs(got-want) <= 1e-5*math.Max(math.Abs(want), 1e-6)
}

func alloc(k, n int) [][]float64 {
	out := make([][]float64, k)
	for i := range out {
		out[i] = make([]float64, n)
	}
	return out
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func atoi(t testing.TB, s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("bad index %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
