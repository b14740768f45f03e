package quality

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
)

func readFile(t *testing.T, name string) *Statistics {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := ReadStatistics(f, name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// roundTrip writes st, reads it back and writes it again: the two files
// must be the same bytes, and the statistics read the same.
func roundTrip(t *testing.T, st *Statistics) []byte {
	t.Helper()
	var a, b bytes.Buffer
	if err := st.WriteJSON(&a); err != nil {
		t.Fatal(err)
	}
	back, err := ReadStatistics(bytes.NewReader(a.Bytes()), "written.json")
	if err != nil {
		t.Fatalf("written statistics do not read: %v\n%s", err, a.String())
	}
	if err := back.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("round trip changed the file:\n%s\n%s", a.String(), b.String())
	}
	return a.Bytes()
}

func TestReadsModelMonitorExamples(t *testing.T) {
	st := readFile(t, "modelmonitor_doc_binary.json")
	m := st.Binary
	if want := (ConfusionMatrix{TrueNegatives: 1, FalsePositives: 2, FalseNegatives: 0, TruePositives: 1}); m.ConfusionMatrix != want {
		t.Errorf("confusion matrix %+v, want %+v (outer key actual, inner predicted)", m.ConfusionMatrix, want)
	}
	if m.Precision.Value != 0.3333333333333333 || !math.IsNaN(m.Precision.StandardDeviation) {
		t.Errorf("precision %+v", m.Precision)
	}
	if len(m.ROC.TruePositiveRates) != 6 || len(m.PR.Recalls) != 5 || m.AUPRC != nil || m.BrierScore != nil {
		t.Errorf("curves %d/%d points, au_prc %v, brier %v", len(m.ROC.TruePositiveRates), len(m.PR.Recalls), m.AUPRC, m.BrierScore)
	}
	out := roundTrip(t, st)
	if !bytes.Contains(out, []byte(`"standard_deviation": "NaN"`)) || bytes.Contains(out, []byte("au_prc")) {
		t.Errorf("rewritten file:\n%s", out)
	}
	reg := readFile(t, "modelmonitor_doc_regression.json").Regression
	if reg.R2.Value != -1.3766111872212665 || reg.RMSE.StandardDeviation != 0.003079253267651125 {
		t.Errorf("regression %+v", reg)
	}
}

func TestStatisticsRoundTrip(t *testing.T) {
	b := NewBinary(Options{})
	feedBinary(b, randomRows(5, 3000))
	out := roundTrip(t, b.Statistics())
	for _, field := range []string{`"binary_classification_metrics"`, `"confusion_matrix": {`, `"0": {`,
		`"receiver_operating_characteristic_curve"`, `"au_prc"`, `"brier_score"`, `"num_missing"`} {
		if !bytes.Contains(out, []byte(field)) {
			t.Errorf("no %s in\n%s", field, out)
		}
	}
	r := NewRegression()
	for _, row := range readRows(t, "regression.csv") {
		r.Add(row[0], row[1])
	}
	roundTrip(t, r.Statistics())
	// An empty regression: every metric NaN, still a valid file.
	roundTrip(t, NewRegression().Statistics())
}

// TestReadStatisticsErrors: each refusal names the file and the field.
func TestReadStatisticsErrors(t *testing.T) {
	valid, err := os.ReadFile("testdata/modelmonitor_doc_binary.json")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(string(valid), old) {
			t.Fatalf("fixture has no %q", old)
		}
		return strings.Replace(string(valid), old, new, 1)
	}
	for _, tc := range []struct {
		name, input, want string
	}{
		{"syntax", `{"version": 0,` + "\n" + `  "dataset": {"item_count": 1},}`, "stats.json:2:32: decode statistics: invalid character '}'"},
		{"trailing", `{"dataset": {"item_count": 1}, "regression_metrics": {"mae": {"value": 1}, "mse": {"value": 1}, "rmse": {"value": 1}, "r2": {"value": 0}}} {}`, "stats.json:1:"},
		{"no block", `{"version": 0, "dataset": {"item_count": 3}}`, "binary_classification_metrics, regression_metrics: neither is there"},
		{"no dataset", `{"regression_metrics": {}}`, "dataset: missing"},
		{"multiclass", `{"dataset": {"item_count": 1}, "multiclass_classification_metrics": {}}`, "multiclass_classification_metrics: multiclass models are not supported"},
		{"missing metric", edit(`"f1" : {`, `"f9" : {`), "binary_classification_metrics.f1: missing"},
		{"bad value", edit(`"value" : 0.5,`, `"value" : "half",`), `binary_classification_metrics.accuracy.value: "half" is not a number`},
		{"value out of range", edit(`"value" : 0.5,`, `"value" : 1.5,`), "binary_classification_metrics.accuracy.value: 1.5 is not in [0, 1]"},
		{"negative sd", edit(`"value" : 0.5,
      "standard_deviation" : "NaN"`, `"value" : 0.5,
      "standard_deviation" : -1`), "binary_classification_metrics.accuracy.standard_deviation: -1 is not a finite number >= 0"},
		{"matrix label", edit(`"1" : {
        "0" : 0,`, `"2" : {
        "0" : 0,`), `binary_classification_metrics.confusion_matrix: "2" is not a binary label`},
		{"matrix count", edit(`"0" : 1,`, `"0" : 1.5,`), `binary_classification_metrics.confusion_matrix."0"."0": 1.5 is not a whole count`},
		{"matrix null", edit(`"0" : 1,`, `"0" : null,`), `binary_classification_metrics.confusion_matrix."0"."0": missing`},
		{"matrix negative", edit(`"0" : 1,`, `"0" : -1,`), "binary_classification_metrics.confusion_matrix: count -1 is negative"},
		{"curve lengths", edit(`[ 0.0, 0.0, 0.0, 0.0, 0.0, 1.0 ]`, `[ 0.0, 1.0 ]`), "receiver_operating_characteristic_curve: 2 false_positive_rates and 6 true_positive_rates"},
		{"curve type", edit(`[ 0.0, 0.0, 0.0, 0.0, 0.0, 1.0 ]`, `"none"`), "binary_classification_metrics.receiver_operating_characteristic_curve.false_positive_rates: a JSON string where an array belongs"},
		{"item count", edit(`"item_count" : 4`, `"item_count" : -4`), "dataset.item_count: -4 is negative"},
		{"item count type", edit(`"item_count" : 4`, `"item_count" : "four"`), "dataset: json: invalid number literal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadStatistics(strings.NewReader(tc.input), "stats.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "stats.json") {
				t.Errorf("error %v, want it to start with the file and hold %q", err, tc.want)
			}
		})
	}
}

func TestWriteJSONRefusesInvalid(t *testing.T) {
	st := NewBinary(Options{}).Statistics()
	st.Binary.Recall.Value = 2
	if err := st.WriteJSON(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "recall.value") {
		t.Errorf("error %v", err)
	}
}
