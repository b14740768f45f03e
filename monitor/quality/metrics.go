package quality

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
)

// metricDef describes one metric of a problem type: the one home of its
// name in statistics.json and constraints.json, its name in
// constraint_violations.json, the range of its values, and the
// constraint Model Monitor's baselining suggests for it.
type metricDef[T any] struct {
	key string
	// violation is metric_name in a violation, where Model Monitor's names
	// differ from the statistics' (the container writes the rates in
	// camel case); "" means key.
	violation string
	// field returns the metric in m; for an optional metric, nil when
	// absent unless create, which adds it.
	field    func(m *T, create bool) *Metric
	optional bool
	// lo and hi bound a value that is not NaN.
	lo, hi float64
	// suggest is the comparison operator of the suggested constraint
	// (threshold: the baseline's value); "" when none is suggested.
	suggest Operator
}

func (d *metricDef[T]) violationName() string {
	if d.violation != "" {
		return d.violation
	}
	return d.key
}

func required[T any](f func(*T) *Metric) func(*T, bool) *Metric {
	return func(m *T, _ bool) *Metric { return f(m) }
}

// binaryMetrics is every Metric of BinaryMetrics in Model Monitor's order,
// which is also the order of its suggested constraints.
var binaryMetrics = []metricDef[BinaryMetrics]{
	{key: "recall", field: required(func(m *BinaryMetrics) *Metric { return &m.Recall }), hi: 1, suggest: LessThanThreshold},
	{key: "precision", field: required(func(m *BinaryMetrics) *Metric { return &m.Precision }), hi: 1, suggest: LessThanThreshold},
	{key: "accuracy", field: required(func(m *BinaryMetrics) *Metric { return &m.Accuracy }), hi: 1, suggest: LessThanThreshold},
	{key: "recall_best_constant_classifier", field: required(func(m *BinaryMetrics) *Metric { return &m.RecallBestConstantClassifier }), hi: 1},
	{key: "precision_best_constant_classifier", field: required(func(m *BinaryMetrics) *Metric { return &m.PrecisionBestConstantClassifier }), hi: 1},
	{key: "accuracy_best_constant_classifier", field: required(func(m *BinaryMetrics) *Metric { return &m.AccuracyBestConstantClassifier }), hi: 1},
	{key: "true_positive_rate", violation: "truePositiveRate", field: required(func(m *BinaryMetrics) *Metric { return &m.TruePositiveRate }), hi: 1, suggest: LessThanThreshold},
	{key: "true_negative_rate", violation: "trueNegativeRate", field: required(func(m *BinaryMetrics) *Metric { return &m.TrueNegativeRate }), hi: 1, suggest: LessThanThreshold},
	{key: "false_positive_rate", violation: "falsePositiveRate", field: required(func(m *BinaryMetrics) *Metric { return &m.FalsePositiveRate }), hi: 1, suggest: GreaterThanThreshold},
	{key: "false_negative_rate", violation: "falseNegativeRate", field: required(func(m *BinaryMetrics) *Metric { return &m.FalseNegativeRate }), hi: 1, suggest: GreaterThanThreshold},
	{key: "auc", field: required(func(m *BinaryMetrics) *Metric { return &m.AUC }), hi: 1, suggest: LessThanThreshold},
	{key: "f0_5", field: required(func(m *BinaryMetrics) *Metric { return &m.F0_5 }), hi: 1, suggest: LessThanThreshold},
	{key: "f1", field: required(func(m *BinaryMetrics) *Metric { return &m.F1 }), hi: 1, suggest: LessThanThreshold},
	{key: "f2", field: required(func(m *BinaryMetrics) *Metric { return &m.F2 }), hi: 1, suggest: LessThanThreshold},
	{key: "f0_5_best_constant_classifier", field: required(func(m *BinaryMetrics) *Metric { return &m.F0_5BestConstantClassifier }), hi: 1},
	{key: "f1_best_constant_classifier", field: required(func(m *BinaryMetrics) *Metric { return &m.F1BestConstantClassifier }), hi: 1},
	{key: "f2_best_constant_classifier", field: required(func(m *BinaryMetrics) *Metric { return &m.F2BestConstantClassifier }), hi: 1},
	{key: "au_prc", field: optional(func(m *BinaryMetrics) **Metric { return &m.AUPRC }), optional: true, hi: 1},
	{key: "brier_score", field: optional(func(m *BinaryMetrics) **Metric { return &m.BrierScore }), optional: true, hi: 1},
}

// regressionMetrics is every Metric of RegressionMetrics. Model Monitor's
// suggested regression constraints are not in its published outputs; the
// operators follow the binary ones' rule: a constraint fires when the
// metric gets worse than the baseline.
var regressionMetrics = []metricDef[RegressionMetrics]{
	{key: "mae", field: required(func(m *RegressionMetrics) *Metric { return &m.MAE }), hi: math.Inf(1), suggest: GreaterThanThreshold},
	{key: "mse", field: required(func(m *RegressionMetrics) *Metric { return &m.MSE }), hi: math.Inf(1), suggest: GreaterThanThreshold},
	{key: "rmse", field: required(func(m *RegressionMetrics) *Metric { return &m.RMSE }), hi: math.Inf(1), suggest: GreaterThanThreshold},
	{key: "r2", field: required(func(m *RegressionMetrics) *Metric { return &m.R2 }), lo: math.Inf(-1), hi: 1, suggest: LessThanThreshold},
}

func optional[T any](f func(*T) **Metric) func(*T, bool) *Metric {
	return func(m *T, create bool) *Metric {
		p := f(m)
		if *p == nil && create {
			*p = new(Metric)
		}
		return *p
	}
}

// findDef returns the definition of the metric named key, or nil.
func findDef[T any](defs []metricDef[T], key string) *metricDef[T] {
	for i := range defs {
		if defs[i].key == key {
			return &defs[i]
		}
	}
	return nil
}

func metricKeys[T any](defs []metricDef[T]) string {
	return strings.Join(defKeys(defs), ", ")
}

// validateMetrics checks each present metric: a value NaN or in the
// metric's range, a standard deviation NaN or finite and not negative.
func validateMetrics[T any](defs []metricDef[T], m *T) error {
	for i := range defs {
		d := &defs[i]
		mt := d.field(m, false)
		if mt == nil {
			continue
		}
		if v := mt.Value; !math.IsNaN(v) && !(v >= d.lo && v <= d.hi && finite(v)) {
			return fmt.Errorf("%s.value: %g is not in [%g, %g]", d.key, v, d.lo, d.hi)
		}
		if sd := mt.StandardDeviation; !math.IsNaN(sd) && !(sd >= 0 && finite(sd)) {
			return fmt.Errorf("%s.standard_deviation: %g is not a finite number >= 0", d.key, sd)
		}
	}
	return nil
}

// decodeMetrics fills m's metrics from the fields of a block; a required
// metric that is absent is an error naming it.
func decodeMetrics[T any](defs []metricDef[T], fields map[string]json.RawMessage, m *T) error {
	for i := range defs {
		d := &defs[i]
		raw := fields[d.key]
		if !present(raw) {
			if d.optional {
				continue
			}
			return atField(d.key, errMissing)
		}
		if err := decodeField(raw, d.field(m, true), d.key); err != nil {
			return err
		}
	}
	return nil
}

// fieldError is an error at a path of fields. Nested decoders each add
// their field, so the error reads "a.b.c: reason".
type fieldError struct {
	path string
	err  error
}

func (e *fieldError) Error() string { return e.path + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// atField puts err under path.
func atField(path string, err error) error {
	if fe, ok := err.(*fieldError); ok {
		return &fieldError{path: path + "." + fe.path, err: fe.err}
	}
	return &fieldError{path: path, err: err}
}

var errMissing = errors.New("missing")

// present reports whether a field is there: a null is as missing as an
// absent field, whatever it stands for.
func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// decodeField decodes raw into v, errors under path. A JSON value of the
// wrong type is said in words, without its offset, which is relative to
// raw and would mislead a reader of the whole file.
func decodeField(raw json.RawMessage, v any, path string) error {
	err := json.Unmarshal(raw, v)
	if err == nil {
		return nil
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		switch {
		case path == "":
			path = typ.Field
		case typ.Field != "":
			path += "." + typ.Field
		}
		what := fmt.Errorf("a JSON %s where %s belongs", typ.Value, kindName(typ.Type))
		if path == "" {
			return what
		}
		return &fieldError{path: path, err: what}
	}
	if path == "" {
		return err
	}
	return atField(path, err)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return "a whole number"
	}
	return "a " + t.String()
}

// UnmarshalJSON reads a binary_classification_metrics block: every metric
// Model Monitor writes must be there, au_prc and brier_score may be.
func (m *BinaryMetrics) UnmarshalJSON(data []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	var out BinaryMetrics
	for _, f := range []struct {
		key string
		v   any
	}{
		{"confusion_matrix", &out.ConfusionMatrix},
		{"receiver_operating_characteristic_curve", &out.ROC},
		{"precision_recall_curve", &out.PR},
	} {
		raw := fields[f.key]
		if !present(raw) {
			return atField(f.key, errMissing)
		}
		if err := decodeField(raw, f.v, f.key); err != nil {
			return err
		}
	}
	if out.ROC.FalsePositiveRates == nil || out.ROC.TruePositiveRates == nil {
		return atField("receiver_operating_characteristic_curve", errors.New("false_positive_rates or true_positive_rates: missing"))
	}
	if out.PR.Precisions == nil || out.PR.Recalls == nil {
		return atField("precision_recall_curve", errors.New("precisions or recalls: missing"))
	}
	if err := decodeMetrics(binaryMetrics, fields, &out); err != nil {
		return err
	}
	*m = out
	return nil
}

// UnmarshalJSON reads a regression_metrics block: mae, mse, rmse and r2
// must be there.
func (m *RegressionMetrics) UnmarshalJSON(data []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	var out RegressionMetrics
	if err := decodeMetrics(regressionMetrics, fields, &out); err != nil {
		return err
	}
	*m = out
	return nil
}

// UnmarshalJSON reads item_count (required) and num_missing as integers or
// whole floats.
func (d *Dataset) UnmarshalJSON(data []byte) error {
	var raw struct {
		ItemCount  *json.Number `json:"item_count"`
		NumMissing *json.Number `json:"num_missing"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw.ItemCount == nil {
		return atField("item_count", errMissing)
	}
	n, err := mmjson.WholeNumber(*raw.ItemCount)
	if err != nil {
		return atField("item_count", err)
	}
	var missing int64
	if raw.NumMissing != nil {
		if missing, err = mmjson.WholeNumber(*raw.NumMissing); err != nil {
			return atField("num_missing", err)
		}
	}
	d.ItemCount, d.NumMissing = n, missing
	return nil
}

// UnmarshalJSON reads a statistics.json object. Errors name the field's
// path; unknown fields are ignored, as Model Monitor's readers do. A
// multiclass file is refused: its metrics are not computed here.
func (s *Statistics) UnmarshalJSON(data []byte) error {
	var raw struct {
		Version    json.RawMessage `json:"version"`
		Dataset    json.RawMessage `json:"dataset"`
		Binary     json.RawMessage `json:"binary_classification_metrics"`
		Regression json.RawMessage `json:"regression_metrics"`
		Multiclass json.RawMessage `json:"multiclass_classification_metrics"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if present(raw.Multiclass) {
		return atField("multiclass_classification_metrics", errors.New("multiclass models are not supported"))
	}
	var out Statistics
	if present(raw.Version) {
		if err := decodeField(raw.Version, &out.Version, "version"); err != nil {
			return err
		}
	}
	if !present(raw.Dataset) {
		return atField("dataset", errMissing)
	}
	if err := decodeField(raw.Dataset, &out.Dataset, "dataset"); err != nil {
		return err
	}
	if present(raw.Binary) {
		out.Binary = new(BinaryMetrics)
		if err := decodeField(raw.Binary, out.Binary, "binary_classification_metrics"); err != nil {
			return err
		}
	}
	if present(raw.Regression) {
		out.Regression = new(RegressionMetrics)
		if err := decodeField(raw.Regression, out.Regression, "regression_metrics"); err != nil {
			return err
		}
	}
	*s = out
	return nil
}
