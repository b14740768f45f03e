package quality

import (
	"fmt"
	"io"
	"math"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
)

// Violation is one entry of a model-quality constraint_violations.json, in
// the field order Model Monitor writes:
//
//	{"constraint_check_type": "LessThanThreshold",
//	 "description": "Metric f2 with 0.42 +/- 0.003 was LessThanThreshold '0.625'",
//	 "metric_name": "f2"}
type Violation struct {
	// ConstraintCheckType is the constraint's comparison operator.
	ConstraintCheckType string `json:"constraint_check_type"`
	Description         string `json:"description"`
	// MetricName is the metric as Model Monitor names it in violations:
	// the rates in camel case (truePositiveRate), the others as in
	// statistics.json.
	MetricName string `json:"metric_name"`

	// Metric is the metric's key in statistics.json and constraints.json
	// (true_positive_rate), and Value, StandardDeviation and Threshold
	// what was compared: for a caller's alerts and metrics, not written.
	Metric            string  `json:"-"`
	Value             float64 `json:"-"`
	StandardDeviation float64 `json:"-"`
	Threshold         float64 `json:"-"`
}

// Report is the outcome of Check.
type Report struct {
	// Violations are in Model Monitor's order of the metrics.
	Violations []Violation
	// NotEvaluated names the constrained metrics Check could not judge: not
	// in the statistics (no block of the constraint's problem type), or NaN
	// there (the AUC of a period whose labels are all of one class). They
	// are not violations; a caller may want to say so.
	NotEvaluated []string
}

// Check compares statistics with constraints as Model Monitor's model
// quality job does: a metric violates its constraint when its value
// compares with the threshold as the operator says (LessThanThreshold:
// value < threshold). The standard deviation is reported, not used.
func Check(c *Constraints, st *Statistics) *Report {
	r := &Report{}
	if c == nil {
		return r
	}
	var bin *BinaryMetrics
	var reg *RegressionMetrics
	if st != nil {
		bin, reg = st.Binary, st.Regression
	}
	check(r, binaryMetrics, c.Binary, bin)
	check(r, regressionMetrics, c.Regression, reg)
	return r
}

func check[T any](r *Report, defs []metricDef[T], mc MetricConstraints, m *T) {
	for _, key := range mc.orderedKeys() {
		con := mc[key]
		d := findDef(defs, key)
		var mt *Metric
		if d != nil && m != nil {
			mt = d.field(m, false)
		}
		if mt == nil || math.IsNaN(mt.Value) {
			r.NotEvaluated = append(r.NotEvaluated, key)
			continue
		}
		if !con.ComparisonOperator.Violated(mt.Value, con.Threshold) {
			continue
		}
		name := d.violationName()
		r.Violations = append(r.Violations, Violation{
			ConstraintCheckType: string(con.ComparisonOperator),
			Description: fmt.Sprintf("Metric %s with %s +/- %s was %s '%s'", name,
				mmjson.JavaDouble(mt.Value), mmjson.JavaDouble(mt.StandardDeviation), con.ComparisonOperator, mmjson.JavaDouble(con.Threshold)),
			MetricName:        name,
			Metric:            key,
			Value:             mt.Value,
			StandardDeviation: mt.StandardDeviation,
			Threshold:         con.Threshold,
		})
	}
}

// WriteViolations writes the report's violations as constraint_violations
// .json, {"violations": [...]}, indented by two spaces; no violation
// writes an empty array.
func (r *Report) WriteViolations(w io.Writer) error {
	v := struct {
		Violations []Violation `json:"violations"`
	}{r.Violations}
	if v.Violations == nil {
		v.Violations = []Violation{}
	}
	return mmjson.Write(w, "violations", &v)
}
