package quality

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// smallRows: nine scored rows and two missing ones, worked by hand below.
var smallRows = []struct {
	score float64
	label bool
}{
	{0.9, true}, {0.8, true}, {0.7, false}, {0.6, true}, {0.55, false},
	{0.4, true}, {0.3, false}, {0.2, false}, {0.1, false},
	{math.NaN(), true}, {math.Inf(1), false},
}

func TestBinaryHandComputed(t *testing.T) {
	b := NewBinary(Options{})
	for _, r := range smallRows {
		b.Add(r.score, r.label)
	}
	if b.Count() != 9 || b.Missing() != 2 {
		t.Fatalf("count %d, missing %d; want 9 and 2", b.Count(), b.Missing())
	}
	st := b.Statistics()
	m := st.Binary
	// At 0.5: TP 0.9 0.8 0.6, FP 0.7 0.55, FN 0.4, TN 0.3 0.2 0.1.
	if want := (ConfusionMatrix{TrueNegatives: 3, FalsePositives: 2, FalseNegatives: 1, TruePositives: 3}); m.ConfusionMatrix != want {
		t.Fatalf("confusion matrix %+v, want %+v", m.ConfusionMatrix, want)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"recall", m.Recall.Value, 3.0 / 4},
		{"precision", m.Precision.Value, 3.0 / 5},
		{"accuracy", m.Accuracy.Value, 6.0 / 9},
		{"true_positive_rate", m.TruePositiveRate.Value, 3.0 / 4},
		{"true_negative_rate", m.TrueNegativeRate.Value, 3.0 / 5},
		{"false_positive_rate", m.FalsePositiveRate.Value, 2.0 / 5},
		{"false_negative_rate", m.FalseNegativeRate.Value, 1.0 / 4},
		{"f0_5", m.F0_5.Value, 1.25 * 3 / (1.25*3 + 0.25*1 + 2)},
		{"f1", m.F1.Value, 6.0 / 9},
		{"f2", m.F2.Value, 15.0 / 21},
		// 4 positives, 5 negatives: the best constant predicts negative.
		{"recall_best_constant_classifier", m.RecallBestConstantClassifier.Value, 0},
		{"precision_best_constant_classifier", m.PrecisionBestConstantClassifier.Value, 0},
		{"accuracy_best_constant_classifier", m.AccuracyBestConstantClassifier.Value, 5.0 / 9},
		{"f1_best_constant_classifier", m.F1BestConstantClassifier.Value, 0},
		// Concordant pairs: 0.9 and 0.8 beat all 5 negatives, 0.6 beats 4,
		// 0.4 beats 3: 17 of 20.
		{"auc", m.AUC.Value, 17.0 / 20},
		// Squared errors 0.01 0.04 0.16 0.36 (positives), 0.49 0.3025 0.09
		// 0.04 0.01 (negatives).
		{"brier_score", m.BrierScore.Value, 1.5025 / 9},
	} {
		if !near(c.got, c.want, 1e-15) {
			t.Errorf("%s = %.17g, want %.17g", c.name, c.got, c.want)
		}
	}
	// Below 200 rows Model Monitor writes no standard deviation.
	if !math.IsNaN(m.Recall.StandardDeviation) || !math.IsNaN(m.AUC.StandardDeviation) {
		t.Errorf("standard deviations %v %v under 200 rows, want NaN", m.Recall.StandardDeviation, m.AUC.StandardDeviation)
	}
	if st.Dataset.ItemCount != 9 || st.Dataset.NumMissing != 2 {
		t.Errorf("dataset %+v", st.Dataset)
	}
	// One point per score, thresholds decreasing, between (0, 0) and the
	// (1, 1) Spark appends.
	wantFPR := []float64{0, 0, 0, .2, .2, .4, .4, .6, .8, 1, 1}
	wantTPR := []float64{0, .25, .5, .5, .75, .75, 1, 1, 1, 1, 1}
	wantP := []float64{1, 1, 1, 2.0 / 3, 3.0 / 4, 3.0 / 5, 4.0 / 6, 4.0 / 7, 4.0 / 8, 4.0 / 9}
	wantR := []float64{0, .25, .5, .5, .75, .75, 1, 1, 1, 1}
	for _, c := range []struct {
		name      string
		got, want []float64
	}{{"fpr", m.ROC.FalsePositiveRates, wantFPR}, {"tpr", m.ROC.TruePositiveRates, wantTPR},
		{"precisions", m.PR.Precisions, wantP}, {"recalls", m.PR.Recalls, wantR}} {
		if len(c.got) != len(c.want) {
			t.Fatalf("%s: %v, want %v", c.name, c.got, c.want)
		}
		for i := range c.want {
			if !near(c.got[i], c.want[i], 1e-15) {
				t.Fatalf("%s: %v, want %v", c.name, c.got, c.want)
			}
		}
	}
}

func TestBinaryTiesAndClamping(t *testing.T) {
	b := NewBinary(Options{Threshold: 0.5, Bins: 10})
	// A positive and a negative in one bin count one half: AUC 0.5.
	b.Add(0.51, true)
	b.Add(0.52, false)
	if got := b.Statistics().Binary.AUC.Value; got != 0.5 {
		t.Errorf("auc of a tied pair %v, want 0.5", got)
	}
	if got := b.AUCErrorBound(); got != 0.5 {
		t.Errorf("error bound of one shared bin %v, want 0.5", got)
	}
	// Scores outside [0, 1] are read as its ends: a perfect Brier score,
	// and the predicted class of the raw score.
	c := NewBinary(Options{})
	c.Add(-0.3, false)
	c.Add(1.7, true)
	m := c.Statistics().Binary
	if m.BrierScore.Value != 0 || m.ConfusionMatrix.TruePositives != 1 || m.ConfusionMatrix.TrueNegatives != 1 || m.AUC.Value != 1 {
		t.Errorf("clamped scores: brier %v, matrix %+v, auc %v", m.BrierScore.Value, m.ConfusionMatrix, m.AUC.Value)
	}
	// The threshold is inclusive.
	d := NewBinary(Options{Threshold: 0.7})
	d.Add(0.7, true)
	d.Add(0.69, false)
	if cm := d.Statistics().Binary.ConfusionMatrix; cm.TruePositives != 1 || cm.TrueNegatives != 1 {
		t.Errorf("score == threshold: %+v", cm)
	}
}

func TestBinaryOneClassAndEmpty(t *testing.T) {
	b := NewBinary(Options{})
	for range 300 {
		b.Add(0.2, false)
	}
	m := b.Statistics().Binary
	if !math.IsNaN(m.AUC.Value) || !math.IsNaN(m.AUPRC.Value) {
		t.Errorf("auc %v, au_prc %v of negatives only, want NaN", m.AUC.Value, m.AUPRC.Value)
	}
	if m.Recall.Value != 0 || m.Accuracy.Value != 1 || m.AccuracyBestConstantClassifier.Value != 1 {
		t.Errorf("recall %v accuracy %v bcc %v", m.Recall.Value, m.Accuracy.Value, m.AccuracyBestConstantClassifier.Value)
	}
	var buf bytes.Buffer
	if err := b.Statistics().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"auc": {
      "value": "NaN",
      "standard_deviation": "NaN"
    }`) {
		t.Errorf("NaN auc not written as Model Monitor writes NaN:\n%s", buf.String())
	}
	if err := NewBinary(Options{}).Statistics().WriteJSON(&buf); err != nil {
		t.Errorf("an empty accumulator's statistics: %v", err)
	}
}

// TestStandardDeviations: the analytic standard errors, times ½ for Model
// Monitor's 80% samples, against closed forms and against the spread of
// the metric over bootstrap resamples of the rows.
func TestStandardDeviations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type row struct {
		s float64
		y bool
	}
	rows := make([]row, 1000)
	for i := range rows {
		y := rng.Float64() < 0.3
		s := rng.NormFloat64()*0.15 + 0.35
		if y {
			s += 0.25
		}
		rows[i] = row{s, y}
	}
	b := NewBinary(Options{})
	for _, r := range rows {
		b.Add(r.s, r.y)
	}
	m := b.Statistics().Binary
	cm := m.ConfusionMatrix
	p := float64(cm.TruePositives + cm.FalseNegatives)
	r := m.Recall.Value
	if want := 0.5 * math.Sqrt(r*(1-r)/p); !near(m.Recall.StandardDeviation, want, 1e-12) {
		t.Errorf("recall standard deviation %v, want ½√(r(1-r)/P) = %v", m.Recall.StandardDeviation, want)
	}
	a := m.Accuracy.Value
	if want := 0.5 * math.Sqrt(a*(1-a)/1000); !near(m.Accuracy.StandardDeviation, want, 1e-12) {
		t.Errorf("accuracy standard deviation %v, want %v", m.Accuracy.StandardDeviation, want)
	}
	// Bootstrap: the standard deviation of each metric over resamples of
	// all n rows is its standard error, twice what is written.
	const resamples = 400
	metrics := map[string]func(*BinaryMetrics) Metric{
		"precision": func(m *BinaryMetrics) Metric { return m.Precision },
		"f0_5":      func(m *BinaryMetrics) Metric { return m.F0_5 },
		"f1":        func(m *BinaryMetrics) Metric { return m.F1 },
		"f2":        func(m *BinaryMetrics) Metric { return m.F2 },
		"auc":       func(m *BinaryMetrics) Metric { return m.AUC },
		"au_prc":    func(m *BinaryMetrics) Metric { return *m.AUPRC },
		"brier":     func(m *BinaryMetrics) Metric { return *m.BrierScore },
	}
	sum, sum2 := map[string]float64{}, map[string]float64{}
	rb := NewBinary(Options{})
	for range resamples {
		rb.Reset()
		for range rows {
			r := rows[rng.IntN(len(rows))]
			rb.Add(r.s, r.y)
		}
		rm := rb.Statistics().Binary
		for k, f := range metrics {
			v := f(rm).Value
			sum[k] += v
			sum2[k] += v * v
		}
	}
	for k, f := range metrics {
		mean := sum[k] / resamples
		boot := math.Sqrt(sum2[k]/resamples - mean*mean)
		analytic := 2 * f(m).StandardDeviation
		t.Logf("%s: analytic standard error %.5f, bootstrap %.5f", k, analytic, boot)
		// 400 resamples estimate a standard deviation to about 4%; the
		// delta method and Hanley-McNeil are approximations on top.
		if math.Abs(analytic-boot) > 0.1*boot {
			t.Errorf("%s: analytic standard error %.5f, bootstrap %.5f", k, analytic, boot)
		}
	}
}

// TestModelMonitorChurnBaseline: rows with the confusion matrix of the
// baseline in Amazon's model-quality churn notebook (173, 0, 12, 16) give
// its published values, and standard deviations near its bootstrapped
// ones. Five 80% samples estimate a standard deviation to about ±35%,
// so the check is loose; without the ½ for 80% samples every ratio
// would be near 2.2.
func TestModelMonitorChurnBaseline(t *testing.T) {
	b := NewBinary(Options{})
	for range 173 {
		b.Add(0.1, false)
	}
	for range 12 {
		b.Add(0.3, true)
	}
	for range 16 {
		b.Add(0.9, true)
	}
	m := b.Statistics().Binary
	for _, c := range []struct {
		name      string
		got       Metric
		value, sd float64
	}{
		{"recall", m.Recall, 0.571429, 0.0417634},
		{"precision", m.Precision, 1, 0},
		{"accuracy", m.Accuracy, 0.940299, 0.00817967},
		{"recall_best_constant_classifier", m.RecallBestConstantClassifier, 0, 0},
		{"precision_best_constant_classifier", m.PrecisionBestConstantClassifier, 0, 0},
		{"accuracy_best_constant_classifier", m.AccuracyBestConstantClassifier, 0.860697, 0.00883993},
		{"true_negative_rate", m.TrueNegativeRate, 1, 0},
		{"false_positive_rate", m.FalsePositiveRate, 0, 0},
		{"false_negative_rate", m.FalseNegativeRate, 0.428571, 0.0417634},
		{"f0_5", m.F0_5, 0.869565, 0.0183259},
		{"f1", m.F1, 0.727273, 0.032845},
		{"f2", m.F2, 0.625, 0.039555},
		{"f1_best_constant_classifier", m.F1BestConstantClassifier, 0, 0},
	} {
		if math.Abs(c.got.Value-c.value) > 5e-7 {
			t.Errorf("%s = %v, published %v", c.name, c.got.Value, c.value)
		}
		switch {
		case c.sd == 0 && c.got.StandardDeviation != 0:
			t.Errorf("%s standard deviation %v, published 0", c.name, c.got.StandardDeviation)
		case c.sd != 0:
			ratio := c.got.StandardDeviation / c.sd
			t.Logf("%s: standard deviation %.5f, published %.5f (ratio %.2f)", c.name, c.got.StandardDeviation, c.sd, ratio)
			if ratio < 0.7 || ratio > 1.45 {
				t.Errorf("%s standard deviation %v is %.2f times the published %v", c.name, c.got.StandardDeviation, ratio, c.sd)
			}
		}
	}
}

func TestCurvesAreCapped(t *testing.T) {
	b := NewBinary(Options{})
	for i := range 1000 {
		b.Add((float64(i)+0.5)/1000, i%3 == 0)
	}
	m := b.Statistics().Binary
	fpr, tpr := m.ROC.FalsePositiveRates, m.ROC.TruePositiveRates
	if n := len(fpr); n > maxCurveThresholds+2 || n < maxCurveThresholds/2 {
		t.Fatalf("roc has %d points for 1000 thresholds, want at most %d", n, maxCurveThresholds+2)
	}
	if len(m.PR.Precisions) != len(fpr)-1 {
		t.Errorf("pr has %d points, roc %d", len(m.PR.Precisions), len(fpr))
	}
	n := len(fpr)
	if fpr[0] != 0 || tpr[0] != 0 || fpr[n-2] != 1 || tpr[n-2] != 1 || fpr[n-1] != 1 || tpr[n-1] != 1 {
		t.Errorf("roc ends: first (%v, %v), last two (%v, %v) (%v, %v)", fpr[0], tpr[0], fpr[n-2], tpr[n-2], fpr[n-1], tpr[n-1])
	}
	for i := 1; i < n; i++ {
		if fpr[i] < fpr[i-1] || tpr[i] < tpr[i-1] {
			t.Fatalf("roc not monotone at %d", i)
		}
	}
	if m.PR.Recalls[len(m.PR.Recalls)-1] != 1 {
		t.Errorf("the lowest threshold (every row) is not kept: last recall %v", m.PR.Recalls[len(m.PR.Recalls)-1])
	}
}

func TestOptions(t *testing.T) {
	b := NewBinary(Options{})
	if o := b.Options(); o.Threshold != DefaultThreshold || o.Bins != DefaultBins {
		t.Errorf("zero options resolve to %+v", o)
	}
	if got := b.MemoryBytes(); got < 16*DefaultBins || got > 16*DefaultBins+1024 {
		t.Errorf("MemoryBytes %d for %d bins", got, DefaultBins)
	}
	for _, o := range []Options{{Threshold: -0.1}, {Threshold: 1.5}, {Threshold: math.NaN()}, {Bins: 1}, {Bins: -3}, {Bins: MaxBins + 1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewBinary(%+v) did not panic", o)
				}
			}()
			NewBinary(o)
		}()
	}
	if err := (Options{Threshold: 1, Bins: MaxBins}).Validate(); err != nil {
		t.Errorf("threshold 1, MaxBins: %v", err)
	}
}

func randomRows(seed uint64, n int) [][2]float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	rows := make([][2]float64, n)
	for i := range rows {
		y := 0.0
		if rng.Float64() < 0.4 {
			y = 1
		}
		s := min(max(rng.NormFloat64()*0.2+0.4+0.2*y, -0.1), 1.1)
		if rng.IntN(50) == 0 {
			s = math.NaN()
		}
		rows[i] = [2]float64{s, y}
	}
	return rows
}

// TestBinaryMergeIsExact: parts merged in any order are the accumulator
// fed every row, to the byte, state and statistics alike.
func TestBinaryMergeIsExact(t *testing.T) {
	rows := randomRows(3, 5000)
	whole := NewBinary(Options{})
	feedBinary(whole, rows)
	parts := []*Binary{NewBinary(Options{}), NewBinary(Options{}), NewBinary(Options{})}
	feedBinary(parts[0], rows[:1234])
	feedBinary(parts[1], rows[1234:1300])
	feedBinary(parts[2], rows[1300:])
	wantState, _ := whole.MarshalJSON()
	var wantStats bytes.Buffer
	if err := whole.Statistics().WriteJSON(&wantStats); err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]int{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}} {
		m := NewBinary(Options{})
		for _, i := range order {
			if err := m.Merge(parts[i]); err != nil {
				t.Fatal(err)
			}
		}
		gotState, _ := m.MarshalJSON()
		if !bytes.Equal(gotState, wantState) {
			t.Errorf("order %v: merged state differs from one accumulator's", order)
		}
		var gotStats bytes.Buffer
		if err := m.Statistics().WriteJSON(&gotStats); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gotStats.Bytes(), wantStats.Bytes()) {
			t.Errorf("order %v: merged statistics differ", order)
		}
	}
	if err := NewBinary(Options{Threshold: 0.3}).Merge(whole); err == nil || !strings.Contains(err.Error(), "threshold 0.3 and 0.5") {
		t.Errorf("different thresholds: %v", err)
	}
	if err := NewBinary(Options{Bins: 10}).Merge(whole); err == nil || !strings.Contains(err.Error(), "bins 10 and 1000") {
		t.Errorf("different bins: %v", err)
	}
	whole.Reset()
	if whole.Count() != 0 || whole.Missing() != 0 {
		t.Errorf("after Reset: count %d missing %d", whole.Count(), whole.Missing())
	}
	empty, _ := NewBinary(Options{}).MarshalJSON()
	if got, _ := whole.MarshalJSON(); !bytes.Equal(got, empty) {
		t.Error("a reset accumulator is not an empty one")
	}
}
