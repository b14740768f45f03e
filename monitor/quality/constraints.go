package quality

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
)

// Operator is a constraint's comparison_operator: the comparison of the
// metric with the threshold that makes a violation.
type Operator string

// The operators. Model Monitor's baselining writes the first two; the
// OrEqualTo forms are CloudWatch's names for the inclusive comparisons,
// accepted for constraints a user writes.
const (
	LessThanThreshold             Operator = "LessThanThreshold"
	GreaterThanThreshold          Operator = "GreaterThanThreshold"
	LessThanOrEqualToThreshold    Operator = "LessThanOrEqualToThreshold"
	GreaterThanOrEqualToThreshold Operator = "GreaterThanOrEqualToThreshold"
)

// Violated reports whether value breaks a constraint of this operator and
// threshold. NaN breaks none: a metric the rows cannot define is not
// judged (Check lists it in NotEvaluated).
func (o Operator) Violated(value, threshold float64) bool {
	switch o {
	case LessThanThreshold:
		return value < threshold
	case GreaterThanThreshold:
		return value > threshold
	case LessThanOrEqualToThreshold:
		return value <= threshold
	case GreaterThanOrEqualToThreshold:
		return value >= threshold
	}
	return false
}

func (o Operator) valid() bool {
	switch o {
	case LessThanThreshold, GreaterThanThreshold, LessThanOrEqualToThreshold, GreaterThanOrEqualToThreshold:
		return true
	}
	return false
}

// Constraints is Model Monitor's model-quality constraints.json:
//
//	{"version": 0.0,
//	 "binary_classification_constraints": {
//	     "recall": {"threshold": 0.57, "comparison_operator": "LessThanThreshold"}, ...}}
//
// with regression_constraints for a regression model. Keys are the
// metrics' names in statistics.json.
type Constraints struct {
	Version    float64           `json:"version"`
	Binary     MetricConstraints `json:"binary_classification_constraints,omitempty"`
	Regression MetricConstraints `json:"regression_constraints,omitempty"`
}

// MetricConstraints maps a metric's name to its constraint.
type MetricConstraints map[string]Constraint

// Constraint is one metric's threshold and comparison.
type Constraint struct {
	Threshold          float64  `json:"threshold"`
	ComparisonOperator Operator `json:"comparison_operator"`
}

// Suggest returns the constraints Model Monitor's model-quality baselining
// suggests for a baseline: for a binary classifier, recall, precision,
// accuracy, the true positive and negative rates, AUC and the three
// F-scores must not fall below the baseline's value, and the false
// positive and negative rates not rise above it; for a regression model,
// MAE, MSE and RMSE must not rise above and R² not fall below it. The
// threshold is the baseline's value itself, as Model Monitor's is, so any
// degradation fires: loosen them before use. A metric whose baseline value
// is NaN gets no constraint.
func Suggest(baseline *Statistics) *Constraints {
	c := &Constraints{}
	if baseline == nil {
		return c
	}
	if baseline.Binary != nil {
		c.Binary = suggest(binaryMetrics, baseline.Binary)
	}
	if baseline.Regression != nil {
		c.Regression = suggest(regressionMetrics, baseline.Regression)
	}
	return c
}

func suggest[T any](defs []metricDef[T], m *T) MetricConstraints {
	out := MetricConstraints{}
	for i := range defs {
		d := &defs[i]
		mt := d.field(m, false)
		if d.suggest == "" || mt == nil || math.IsNaN(mt.Value) {
			continue
		}
		out[d.key] = Constraint{Threshold: mt.Value, ComparisonOperator: d.suggest}
	}
	return out
}

// ReadConstraints decodes and validates a model-quality constraints.json:
// Model Monitor's, or one WriteJSON wrote. Errors name the file, the line
// and column of a syntax error, or the block, metric and field at fault.
// Unknown top-level fields are ignored; a multiclass block is refused.
func ReadConstraints(r io.Reader, name string) (*Constraints, error) {
	var c Constraints
	if err := readJSON(r, name, "constraints", &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

// WriteJSON writes the constraints indented by two spaces, each block's
// metrics in Model Monitor's order. It refuses constraints Validate
// refuses.
func (c *Constraints) WriteJSON(w io.Writer) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write constraints: %w", err)
	}
	return mmjson.Write(w, "constraints", c)
}

// Validate checks what Check relies on: at least one block, metrics of
// the block's problem type, known operators, finite thresholds.
func (c *Constraints) Validate() error {
	if !finite(c.Version) {
		return errors.New("version: not a finite number")
	}
	if len(c.Binary) == 0 && len(c.Regression) == 0 {
		return errors.New("binary_classification_constraints, regression_constraints: no constraint in either")
	}
	if err := validateConstraints(binaryMetrics, c.Binary, "binary_classification_constraints"); err != nil {
		return err
	}
	return validateConstraints(regressionMetrics, c.Regression, "regression_constraints")
}

func validateConstraints[T any](defs []metricDef[T], mc MetricConstraints, block string) error {
	for _, key := range sortedKeys(mc) {
		con := mc[key]
		at := block + "." + key
		if findDef(defs, key) == nil {
			return fmt.Errorf("%s: not a metric of this block (one of %s)", at, metricKeys(defs))
		}
		if !con.ComparisonOperator.valid() {
			return fmt.Errorf("%s.comparison_operator: %q is not %s, %s, %s or %s", at, con.ComparisonOperator,
				LessThanThreshold, GreaterThanThreshold, LessThanOrEqualToThreshold, GreaterThanOrEqualToThreshold)
		}
		if !finite(con.Threshold) {
			return fmt.Errorf("%s.threshold: not a finite number", at)
		}
	}
	return nil
}

func sortedKeys(mc MetricConstraints) []string {
	keys := make([]string, 0, len(mc))
	for k := range mc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// metricOrder ranks a metric name by its place in Model Monitor's files;
// names of neither problem type come last.
func metricOrder(key string) int {
	for i := range binaryMetrics {
		if binaryMetrics[i].key == key {
			return i
		}
	}
	for i := range regressionMetrics {
		if regressionMetrics[i].key == key {
			return len(binaryMetrics) + i
		}
	}
	return len(binaryMetrics) + len(regressionMetrics)
}

// orderedKeys are the keys in metricOrder, ties by name.
func (mc MetricConstraints) orderedKeys() []string {
	keys := sortedKeys(mc)
	slices.SortStableFunc(keys, func(a, b string) int { return metricOrder(a) - metricOrder(b) })
	return keys
}

// MarshalJSON writes the metrics in Model Monitor's order.
func (mc MetricConstraints) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range mc.orderedKeys() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(k))
		b.WriteByte(':')
		v, err := json.Marshal(mc[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a block; each constraint needs its threshold (a
// number) and comparison_operator, and errors name the metric.
func (mc *MetricConstraints) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := make(MetricConstraints, len(raw))
	for k, v := range raw {
		var c struct {
			Threshold          *float64  `json:"threshold"`
			ComparisonOperator *Operator `json:"comparison_operator"`
		}
		if err := decodeField(v, &c, k); err != nil {
			return err
		}
		switch {
		case c.Threshold == nil:
			return atField(k+".threshold", errMissing)
		case c.ComparisonOperator == nil:
			return atField(k+".comparison_operator", errMissing)
		}
		out[k] = Constraint{Threshold: *c.Threshold, ComparisonOperator: *c.ComparisonOperator}
	}
	*mc = out
	return nil
}

// UnmarshalJSON reads a constraints.json object, errors naming the block.
func (c *Constraints) UnmarshalJSON(data []byte) error {
	var raw struct {
		Version    json.RawMessage `json:"version"`
		Binary     json.RawMessage `json:"binary_classification_constraints"`
		Regression json.RawMessage `json:"regression_constraints"`
		Multiclass json.RawMessage `json:"multiclass_classification_constraints"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if present(raw.Multiclass) {
		return atField("multiclass_classification_constraints", errors.New("multiclass models are not supported"))
	}
	var out Constraints
	for _, f := range []struct {
		key string
		raw json.RawMessage
		v   any
	}{
		{"version", raw.Version, &out.Version},
		{"binary_classification_constraints", raw.Binary, &out.Binary},
		{"regression_constraints", raw.Regression, &out.Regression},
	} {
		if !present(f.raw) {
			continue
		}
		if err := decodeField(f.raw, f.v, f.key); err != nil {
			return err
		}
	}
	*c = out
	return nil
}
