package quality

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// binaryWith returns valid binary statistics whose metrics are set from
// values (by statistics.json key); the others are 0.
func binaryWith(values map[string]Metric) *Statistics {
	m := &BinaryMetrics{
		ROC: ROCCurve{FalsePositiveRates: []float64{0, 1}, TruePositiveRates: []float64{0, 1}},
		PR:  PRCurve{Precisions: []float64{}, Recalls: []float64{}},
	}
	for k, v := range values {
		d := findDef(binaryMetrics, k)
		if d == nil {
			panic(k)
		}
		*d.field(m, true) = v
	}
	return &Statistics{Dataset: Dataset{ItemCount: 201}, Binary: m}
}

// The baseline and the monitoring run of Amazon's model-quality churn
// notebook (sagemaker_model_monitor/model_quality/model_quality_churn_sdk
// .ipynb, as run in May 2021): the baseline's values at full precision as
// the violations quote them (f0_5 is 20/23 from its confusion matrix), and
// the run's values and standard deviations as its violations print them.
var (
	churnBaseline = map[string]Metric{
		"recall": {Value: 0.5714285714285714}, "precision": {Value: 1}, "accuracy": {Value: 0.9402985074626866},
		"true_positive_rate": {Value: 0.5714285714285714}, "true_negative_rate": {Value: 1},
		"false_positive_rate": {Value: 0}, "false_negative_rate": {Value: 0.4285714285714286},
		"auc": {Value: 0.9395127993393898}, "f0_5": {Value: 20.0 / 23}, "f1": {Value: 0.7272727272727273}, "f2": {Value: 0.625},
		"accuracy_best_constant_classifier": {Value: 0.8606965174129353},
	}
	churnRun = map[string]Metric{
		"auc":                 {0.5127590160341251, 0.007142408259978924},
		"precision":           {0.6933333333333334, 0.008913499334568326},
		"true_positive_rate":  {0.11353711790393013, 0.002574434249783218},
		"f1":                  {0.19512195121951217, 0.003988472303075431},
		"accuracy":            {0.31976744186046513, 0.00424371790418494},
		"false_positive_rate": {0.13320463320463322, 0.003088585432650178},
		"true_negative_rate":  {0.8667953667953667, 0.003088585432650151},
		"false_negative_rate": {0.8864628820960698, 0.002574434249783216},
		"recall":              {0.11353711790393013, 0.002574434249783218},
		"f2":                  {0.13633980073413737, 0.0030045699484029633},
		// The notebook shows the first ten violations only; f0_5 is kept
		// above its threshold so the ten are all there are.
		"f0_5": {0.9, 0.01},
	}
	// churnViolations are the notebook's ten descriptions, verbatim.
	churnViolations = map[string]string{
		"auc":               "Metric auc with 0.5127590160341251 +/- 0.007142408259978924 was LessThanThreshold '0.9395127993393898'",
		"precision":         "Metric precision with 0.6933333333333334 +/- 0.008913499334568326 was LessThanThreshold '1.0'",
		"truePositiveRate":  "Metric truePositiveRate with 0.11353711790393013 +/- 0.002574434249783218 was LessThanThreshold '0.5714285714285714'",
		"f1":                "Metric f1 with 0.19512195121951217 +/- 0.003988472303075431 was LessThanThreshold '0.7272727272727273'",
		"accuracy":          "Metric accuracy with 0.31976744186046513 +/- 0.00424371790418494 was LessThanThreshold '0.9402985074626866'",
		"falsePositiveRate": "Metric falsePositiveRate with 0.13320463320463322 +/- 0.003088585432650178 was GreaterThanThreshold '0.0'",
		"trueNegativeRate":  "Metric trueNegativeRate with 0.8667953667953667 +/- 0.003088585432650151 was LessThanThreshold '1.0'",
		"falseNegativeRate": "Metric falseNegativeRate with 0.8864628820960698 +/- 0.002574434249783216 was GreaterThanThreshold '0.4285714285714286'",
		"recall":            "Metric recall with 0.11353711790393013 +/- 0.002574434249783218 was LessThanThreshold '0.5714285714285714'",
		"f2":                "Metric f2 with 0.13633980073413737 +/- 0.0030045699484029633 was LessThanThreshold '0.625'",
	}
)

// TestSuggestMatchesModelMonitor: the notebook's suggested constraints,
// which metrics, which operator, the baseline's value as the threshold.
func TestSuggestMatchesModelMonitor(t *testing.T) {
	c := Suggest(binaryWith(churnBaseline))
	want := MetricConstraints{
		"recall":              {0.5714285714285714, LessThanThreshold},
		"precision":           {1, LessThanThreshold},
		"accuracy":            {0.9402985074626866, LessThanThreshold},
		"true_positive_rate":  {0.5714285714285714, LessThanThreshold},
		"true_negative_rate":  {1, LessThanThreshold},
		"false_positive_rate": {0, GreaterThanThreshold},
		"false_negative_rate": {0.4285714285714286, GreaterThanThreshold},
		"auc":                 {0.9395127993393898, LessThanThreshold},
		"f0_5":                {20.0 / 23, LessThanThreshold},
		"f1":                  {0.7272727272727273, LessThanThreshold},
		"f2":                  {0.625, LessThanThreshold},
	}
	if !reflect.DeepEqual(c.Binary, want) || c.Regression != nil {
		t.Fatalf("suggested %+v\nwant %+v", c, want)
	}
	var buf bytes.Buffer
	if err := c.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	// Written in the notebook's order.
	order := []string{"recall", "precision", "accuracy", "true_positive_rate", "true_negative_rate",
		"false_positive_rate", "false_negative_rate", "auc", "f0_5", "f1", "f2"}
	last := -1
	for _, k := range order {
		i := strings.Index(buf.String(), `"`+k+`"`)
		if i < last {
			t.Fatalf("%s out of Model Monitor's order:\n%s", k, buf.String())
		}
		last = i
	}
	back, err := ReadConstraints(&buf, "constraints.json")
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("read back %+v, %v", back, err)
	}

	reg := Suggest(NewRegression().Statistics())
	if len(reg.Regression) != 0 {
		t.Errorf("NaN metrics of an empty regression got constraints: %+v", reg.Regression)
	}
	r := NewRegression()
	r.Add(1, 2)
	r.Add(3, 3)
	wantReg := MetricConstraints{"mae": {0.5, GreaterThanThreshold}, "mse": {0.5, GreaterThanThreshold},
		"rmse": {math.Sqrt(0.5), GreaterThanThreshold}, "r2": {1 - 0.5/0.25, LessThanThreshold}}
	if got := Suggest(r.Statistics()).Regression; !reflect.DeepEqual(got, wantReg) {
		t.Errorf("regression suggested %+v, want %+v", got, wantReg)
	}
}

// TestCheckMatchesModelMonitor: the notebook's run against its baseline's
// constraints gives its ten violations, word for word.
func TestCheckMatchesModelMonitor(t *testing.T) {
	c := Suggest(binaryWith(churnBaseline))
	r := Check(c, binaryWith(churnRun))
	if len(r.Violations) != len(churnViolations) || len(r.NotEvaluated) != 0 {
		t.Fatalf("%d violations, %v not evaluated; want %d", len(r.Violations), r.NotEvaluated, len(churnViolations))
	}
	for _, v := range r.Violations {
		if want := churnViolations[v.MetricName]; v.Description != want {
			t.Errorf("%s:\n got %s\nwant %s", v.MetricName, v.Description, want)
		}
		if !strings.Contains(v.Description, "was "+v.ConstraintCheckType+" '") {
			t.Errorf("check type %s does not match %s", v.ConstraintCheckType, v.Description)
		}
		if con := c.Binary[v.Metric]; v.Threshold != con.Threshold || v.Value != churnRun[v.Metric].Value {
			t.Errorf("%s: value %v threshold %v", v.Metric, v.Value, v.Threshold)
		}
	}
	// The baseline against its own constraints: nothing crosses.
	if r := Check(c, binaryWith(churnBaseline)); len(r.Violations) != 0 {
		t.Errorf("the baseline violates its own constraints: %+v", r.Violations)
	}
}

func TestCheckEdges(t *testing.T) {
	c := &Constraints{
		Binary: MetricConstraints{
			"auc":         {0.8, LessThanThreshold},
			"recall":      {0.5, LessThanOrEqualToThreshold},
			"brier_score": {0.2, GreaterThanOrEqualToThreshold},
			"au_prc":      {0.5, LessThanThreshold},
		},
		Regression: MetricConstraints{"mae": {1, GreaterThanThreshold}},
	}
	st := binaryWith(map[string]Metric{
		"auc":         {Value: math.NaN(), StandardDeviation: math.NaN()},
		"recall":      {Value: 0.5},
		"brier_score": {Value: 0.19},
	})
	r := Check(c, st)
	if len(r.Violations) != 1 || r.Violations[0].Metric != "recall" {
		t.Fatalf("violations %+v", r.Violations)
	}
	if got := r.Violations[0].Description; got != "Metric recall with 0.5 +/- 0.0 was LessThanOrEqualToThreshold '0.5'" {
		t.Errorf("description %q", got)
	}
	// auc is NaN, au_prc absent, mae's block absent: none judged.
	if want := []string{"auc", "au_prc", "mae"}; !reflect.DeepEqual(r.NotEvaluated, want) {
		t.Errorf("not evaluated %v, want %v", r.NotEvaluated, want)
	}
	if r := Check(nil, st); len(r.Violations)+len(r.NotEvaluated) != 0 {
		t.Errorf("nil constraints: %+v", r)
	}
	for _, tc := range []struct {
		op      Operator
		v, th   float64
		violate bool
	}{
		{LessThanThreshold, 0.5, 0.5, false}, {LessThanThreshold, 0.4, 0.5, true},
		{GreaterThanThreshold, 0.5, 0.5, false}, {GreaterThanThreshold, 0.6, 0.5, true},
		{LessThanOrEqualToThreshold, 0.5, 0.5, true}, {GreaterThanOrEqualToThreshold, 0.5, 0.5, true},
		{GreaterThanOrEqualToThreshold, 0.4, 0.5, false}, {LessThanThreshold, math.NaN(), 0.5, false},
	} {
		if got := tc.op.Violated(tc.v, tc.th); got != tc.violate {
			t.Errorf("%s(%v, %v) = %v", tc.op, tc.v, tc.th, got)
		}
	}
}

func TestWriteViolations(t *testing.T) {
	var buf bytes.Buffer
	if err := (&Report{}).WriteViolations(&buf); err != nil || buf.String() != "{\n  \"violations\": []\n}\n" {
		t.Errorf("no violation: %q %v", buf.String(), err)
	}
	buf.Reset()
	r := Check(&Constraints{Binary: MetricConstraints{"f2": {0.625, LessThanThreshold}}},
		binaryWith(map[string]Metric{"f2": {Value: 0.5, StandardDeviation: math.NaN()}}))
	if err := r.WriteViolations(&buf); err != nil {
		t.Fatal(err)
	}
	want := `{
  "violations": [
    {
      "constraint_check_type": "LessThanThreshold",
      "description": "Metric f2 with 0.5 +/- NaN was LessThanThreshold '0.625'",
      "metric_name": "f2"
    }
  ]
}
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestReadConstraintsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input, want string
	}{
		{"empty", `{"version": 0}`, "no constraint in either"},
		{"unknown metric", `{"binary_classification_constraints": {"f3": {"threshold": 1, "comparison_operator": "LessThanThreshold"}}}`,
			"binary_classification_constraints.f3: not a metric of this block"},
		{"regression metric in binary", `{"binary_classification_constraints": {"mae": {"threshold": 1, "comparison_operator": "LessThanThreshold"}}}`,
			"binary_classification_constraints.mae: not a metric"},
		{"operator", `{"regression_constraints": {"mae": {"threshold": 1, "comparison_operator": "Above"}}}`,
			`regression_constraints.mae.comparison_operator: "Above" is not`},
		{"no threshold", `{"regression_constraints": {"mae": {"comparison_operator": "GreaterThanThreshold"}}}`,
			"regression_constraints.mae.threshold: missing"},
		{"no operator", `{"regression_constraints": {"mae": {"threshold": 1}}}`,
			"regression_constraints.mae.comparison_operator: missing"},
		{"threshold type", `{"regression_constraints": {"mae": {"threshold": "NaN", "comparison_operator": "GreaterThanThreshold"}}}`,
			"regression_constraints.mae.threshold: a JSON string where a number belongs"},
		{"multiclass", `{"multiclass_classification_constraints": {}}`, "multiclass models are not supported"},
		{"syntax", `{"regression_constraints": [}`, "c.json:1:29: decode constraints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadConstraints(strings.NewReader(tc.input), "c.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "c.json") {
				t.Errorf("error %v, want it to start with the file and hold %q", err, tc.want)
			}
		})
	}
}

// TestMetricTablesCoverStatistics: every metric statistics.json holds has
// its definition (name, range, suggestion), and no definition names a
// field that is not written.
func TestMetricTablesCoverStatistics(t *testing.T) {
	b := NewBinary(Options{})
	b.Add(0.7, true)
	b.Add(0.2, false)
	check := func(block string, fields map[string]bool, keys []string) {
		for _, k := range keys {
			if !fields[k] {
				t.Errorf("%s: definition %s is not written", block, k)
			}
			delete(fields, k)
		}
		for k := range fields {
			t.Errorf("%s: %s is written but has no definition", block, k)
		}
	}
	bin, _ := writtenMetricKeys(t, b.Statistics())
	keys := []string{}
	for _, d := range binaryMetrics {
		keys = append(keys, d.key)
	}
	check("binary", bin, keys)
	_, reg := writtenMetricKeys(t, NewRegression().Statistics())
	keys = keys[:0]
	for _, d := range regressionMetrics {
		keys = append(keys, d.key)
	}
	check("regression", reg, keys)
}

// writtenMetricKeys returns the keys of st's binary and regression blocks
// whose values are metrics (objects with a value).
func writtenMetricKeys(t *testing.T, st *Statistics) (bin, reg map[string]bool) {
	t.Helper()
	var buf bytes.Buffer
	if err := st.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	keys := func(data json.RawMessage) map[string]bool {
		out := map[string]bool{}
		var block map[string]any
		if len(data) > 0 {
			if err := json.Unmarshal(data, &block); err != nil {
				t.Fatal(err)
			}
		}
		for k, v := range block {
			if o, ok := v.(map[string]any); ok {
				if _, ok := o["value"]; ok {
					out[k] = true
				}
			}
		}
		return out
	}
	return keys(raw["binary_classification_metrics"]), keys(raw["regression_metrics"])
}
