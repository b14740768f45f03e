package quality

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"
)

// The fixtures and sklearn_expected.json come from testdata/gen_expected.py
// (scikit-learn 1.2, numpy 1.24); rerun it to regenerate both.

// readRows reads a two-column CSV of floats after its header; an empty
// cell is NaN.
func readRows(t *testing.T, name string) [][2]float64 {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := make([][2]float64, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		var row [2]float64
		for i, cell := range rec {
			row[i] = math.NaN()
			if cell != "" {
				if row[i], err = strconv.ParseFloat(cell, 64); err != nil {
					t.Fatal(err)
				}
			}
		}
		out = append(out, row)
	}
	return out
}

func feedBinary(b *Binary, rows [][2]float64) {
	for _, r := range rows {
		b.Add(r[0], r[1] == 1)
	}
}

type sklearnBinary struct {
	ItemCount         int64     `json:"item_count"`
	ConfusionMatrix   [4]int64  `json:"confusion_matrix"` // tn, fp, fn, tp
	Recall            float64   `json:"recall"`
	Precision         float64   `json:"precision"`
	Accuracy          float64   `json:"accuracy"`
	TrueNegativeRate  float64   `json:"true_negative_rate"`
	FalsePositiveRate float64   `json:"false_positive_rate"`
	FalseNegativeRate float64   `json:"false_negative_rate"`
	F0_5              float64   `json:"f0_5"`
	F1                float64   `json:"f1"`
	F2                float64   `json:"f2"`
	AUC               float64   `json:"auc"`
	Brier             float64   `json:"brier_score"`
	AUPRC             float64   `json:"au_prc"`
	ROCFPR            []float64 `json:"roc_false_positive_rates"`
	ROCTPR            []float64 `json:"roc_true_positive_rates"`
	PRPrecisions      []float64 `json:"pr_precisions"`
	PRRecalls         []float64 `json:"pr_recalls"`
}

type sklearnRegression struct {
	ItemCount int64   `json:"item_count"`
	MAE       float64 `json:"mae"`
	MSE       float64 `json:"mse"`
	RMSE      float64 `json:"rmse"`
	R2        float64 `json:"r2"`
}

func loadExpected(t *testing.T) (threshold float64, continuous, ties sklearnBinary, reg sklearnRegression) {
	t.Helper()
	data, err := os.ReadFile("testdata/sklearn_expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		key string
		v   any
	}{{"threshold", &threshold}, {"binary_continuous.csv", &continuous}, {"binary_ties.csv", &ties}, {"regression.csv", &reg}} {
		if err := json.Unmarshal(raw[f.key], f.v); err != nil {
			t.Fatalf("%s: %v", f.key, err)
		}
	}
	return
}

// relTol is the agreement asked of every metric computed from the same
// counts or sums as scikit-learn: the two differ only in the order of
// float operations.
const relTol = 1e-12

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*max(1, math.Abs(want))
}

func TestMatchesScikitLearn(t *testing.T) {
	threshold, continuous, ties, reg := loadExpected(t)
	for _, tc := range []struct {
		file string
		want sklearnBinary
		// exactAUC: every distinct score alone in its bin, so the binned
		// AUC and curves are the exact ones.
		exactAUC bool
	}{
		{"binary_continuous.csv", continuous, false},
		{"binary_ties.csv", ties, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := NewBinary(Options{Threshold: threshold})
			rows := readRows(t, tc.file)
			feedBinary(b, rows)
			st := b.Statistics()
			m := st.Binary
			w := tc.want
			if st.Dataset.ItemCount != w.ItemCount || st.Dataset.ItemCount+st.Dataset.NumMissing != int64(len(rows)) {
				t.Fatalf("item_count %d, num_missing %d; want %d of %d rows", st.Dataset.ItemCount, st.Dataset.NumMissing, w.ItemCount, len(rows))
			}
			cm := m.ConfusionMatrix
			if got := [4]int64{cm.TrueNegatives, cm.FalsePositives, cm.FalseNegatives, cm.TruePositives}; got != w.ConfusionMatrix {
				t.Fatalf("confusion matrix %v, want %v", got, w.ConfusionMatrix)
			}
			for _, c := range []struct {
				name      string
				got, want float64
			}{
				{"recall", m.Recall.Value, w.Recall},
				{"true_positive_rate", m.TruePositiveRate.Value, w.Recall},
				{"precision", m.Precision.Value, w.Precision},
				{"accuracy", m.Accuracy.Value, w.Accuracy},
				{"true_negative_rate", m.TrueNegativeRate.Value, w.TrueNegativeRate},
				{"false_positive_rate", m.FalsePositiveRate.Value, w.FalsePositiveRate},
				{"false_negative_rate", m.FalseNegativeRate.Value, w.FalseNegativeRate},
				{"f0_5", m.F0_5.Value, w.F0_5},
				{"f1", m.F1.Value, w.F1},
				{"f2", m.F2.Value, w.F2},
				{"brier_score", m.BrierScore.Value, w.Brier},
			} {
				if !near(c.got, c.want, relTol) {
					t.Errorf("%s = %.17g, scikit-learn %.17g", c.name, c.got, c.want)
				}
			}
			bound := b.AUCErrorBound()
			diff := math.Abs(m.AUC.Value - w.AUC)
			t.Logf("auc %.12f, scikit-learn %.12f: off by %.2e, bound %.2e, standard error %.2e; au_prc off by %.2e",
				m.AUC.Value, w.AUC, diff, bound, 2*m.AUC.StandardDeviation, math.Abs(m.AUPRC.Value-w.AUPRC))
			if diff > bound+1e-15 {
				t.Errorf("auc %.17g is %.3g from scikit-learn's %.17g, beyond the bound %.3g", m.AUC.Value, diff, w.AUC, bound)
			}
			if !tc.exactAUC {
				return
			}
			if !near(m.AUC.Value, w.AUC, relTol) {
				t.Errorf("auc %.17g, scikit-learn %.17g: each distinct score has its own bin", m.AUC.Value, w.AUC)
			}
			if !near(m.AUPRC.Value, w.AUPRC, relTol) {
				t.Errorf("au_prc %.17g, Spark's definition %.17g", m.AUPRC.Value, w.AUPRC)
			}
			// The ROC curve is sklearn's plus the (1, 1) Spark appends; the
			// precision-recall curve Spark's leading point and then one
			// point per distinct score.
			wantFPR := append(append([]float64(nil), w.ROCFPR...), 1)
			wantTPR := append(append([]float64(nil), w.ROCTPR...), 1)
			wantP := append([]float64{w.PRPrecisions[0]}, w.PRPrecisions...)
			wantR := append([]float64{0}, w.PRRecalls...)
			for _, c := range []struct {
				name      string
				got, want []float64
			}{
				{"roc false_positive_rates", m.ROC.FalsePositiveRates, wantFPR},
				{"roc true_positive_rates", m.ROC.TruePositiveRates, wantTPR},
				{"pr precisions", m.PR.Precisions, wantP},
				{"pr recalls", m.PR.Recalls, wantR},
			} {
				if len(c.got) != len(c.want) {
					t.Errorf("%s: %d points, want %d", c.name, len(c.got), len(c.want))
					continue
				}
				for i := range c.got {
					if !near(c.got[i], c.want[i], relTol) {
						t.Errorf("%s[%d] = %.17g, want %.17g", c.name, i, c.got[i], c.want[i])
						break
					}
				}
			}
		})
	}
	t.Run("regression.csv", func(t *testing.T) {
		r := NewRegression()
		for _, row := range readRows(t, "regression.csv") {
			r.Add(row[0], row[1])
		}
		st := r.Statistics()
		m := st.Regression
		if st.Dataset.ItemCount != reg.ItemCount {
			t.Fatalf("item_count %d, want %d", st.Dataset.ItemCount, reg.ItemCount)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"mae", m.MAE.Value, reg.MAE}, {"mse", m.MSE.Value, reg.MSE}, {"rmse", m.RMSE.Value, reg.RMSE}, {"r2", m.R2.Value, reg.R2}} {
			if !near(c.got, c.want, relTol) {
				t.Errorf("%s = %.17g, scikit-learn %.17g", c.name, c.got, c.want)
			}
		}
	})
}
