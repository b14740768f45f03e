package quality

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
)

// Statistics is Model Monitor's model-quality statistics.json: the field
// names, nesting and curve shapes of the AWS page "Model quality metrics
// and Amazon CloudWatch monitoring" and of the container's published
// outputs (doc.go says which). One of Binary and Regression is set.
type Statistics struct {
	Version    float64            `json:"version"`
	Dataset    Dataset            `json:"dataset"`
	Binary     *BinaryMetrics     `json:"binary_classification_metrics,omitempty"`
	Regression *RegressionMetrics `json:"regression_metrics,omitempty"`
}

// Dataset is statistics.json's dataset block.
type Dataset struct {
	// ItemCount is the number of rows the metrics are over.
	ItemCount int64 `json:"item_count"`
	// NumMissing is streamscore's addition (readers ignore unknown
	// fields): rows left out of the metrics for a missing score or
	// prediction. Absent when none were.
	NumMissing int64 `json:"num_missing,omitempty"`
}

// Metric is one metric: its value and standard deviation. Either may be
// NaN, written "NaN" as Model Monitor writes it (JSON has no NaN): the
// standard deviation below 200 rows, a value the rows cannot define (the
// AUC of rows of one class).
type Metric struct {
	Value             float64 `json:"value"`
	StandardDeviation float64 `json:"standard_deviation"`
}

// BinaryMetrics is binary_classification_metrics, in Model Monitor's field
// order. The metrics and curves are those of every published Model Monitor
// output; AUPRC and BrierScore may be absent from a file read (nil).
type BinaryMetrics struct {
	ConfusionMatrix ConfusionMatrix `json:"confusion_matrix"`
	Recall          Metric          `json:"recall"`
	Precision       Metric          `json:"precision"`
	Accuracy        Metric          `json:"accuracy"`
	// The best constant classifier predicts, for every row, the class most
	// rows have (the positive one on a tie); see doc.go.
	RecallBestConstantClassifier    Metric   `json:"recall_best_constant_classifier"`
	PrecisionBestConstantClassifier Metric   `json:"precision_best_constant_classifier"`
	AccuracyBestConstantClassifier  Metric   `json:"accuracy_best_constant_classifier"`
	TruePositiveRate                Metric   `json:"true_positive_rate"`
	TrueNegativeRate                Metric   `json:"true_negative_rate"`
	FalsePositiveRate               Metric   `json:"false_positive_rate"`
	FalseNegativeRate               Metric   `json:"false_negative_rate"`
	ROC                             ROCCurve `json:"receiver_operating_characteristic_curve"`
	PR                              PRCurve  `json:"precision_recall_curve"`
	AUC                             Metric   `json:"auc"`
	F0_5                            Metric   `json:"f0_5"`
	F1                              Metric   `json:"f1"`
	F2                              Metric   `json:"f2"`
	F0_5BestConstantClassifier      Metric   `json:"f0_5_best_constant_classifier"`
	F1BestConstantClassifier        Metric   `json:"f1_best_constant_classifier"`
	F2BestConstantClassifier        Metric   `json:"f2_best_constant_classifier"`
	// AUPRC is the area under the precision-recall curve, named as the
	// CloudWatch metric SageMaker's model-quality dashboard reads.
	AUPRC *Metric `json:"au_prc,omitempty"`
	// BrierScore is streamscore's addition: the mean squared difference
	// between the score and the label, the calibration the issue asks for.
	BrierScore *Metric `json:"brier_score,omitempty"`
}

// ConfusionMatrix holds the counts at the threshold. In JSON it is Model
// Monitor's nested object, the outer key the actual label and the inner
// key the predicted one: {"0": {"0": TN, "1": FP}, "1": {"0": FN, "1": TP}}.
type ConfusionMatrix struct {
	TrueNegatives, FalsePositives, FalseNegatives, TruePositives int64
}

// ROCCurve is receiver_operating_characteristic_curve: points from (0, 0)
// to (1, 1), thresholds decreasing.
type ROCCurve struct {
	FalsePositiveRates []float64 `json:"false_positive_rates"`
	TruePositiveRates  []float64 `json:"true_positive_rates"`
}

// PRCurve is precision_recall_curve: recalls increasing from 0, the first
// point carrying the precision of the highest threshold.
type PRCurve struct {
	Precisions []float64 `json:"precisions"`
	Recalls    []float64 `json:"recalls"`
}

// RegressionMetrics is regression_metrics.
type RegressionMetrics struct {
	MAE  Metric `json:"mae"`
	MSE  Metric `json:"mse"`
	RMSE Metric `json:"rmse"`
	R2   Metric `json:"r2"`
}

// maxFileBytes bounds what the readers read, so a hostile or wrong file
// cannot make them hold unbounded memory.
const maxFileBytes = 64 << 20

// ReadStatistics decodes and validates a model-quality statistics.json:
// Model Monitor's or one WriteJSON wrote. name is the file's name, used in
// errors with the line and column of a syntax error or the field at fault.
func ReadStatistics(r io.Reader, name string) (*Statistics, error) {
	var s Statistics
	if err := readJSON(r, name, "statistics", &s); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &s, nil
}

// WriteJSON writes the statistics as indented JSON (two spaces), fields in
// Model Monitor's order, so equal statistics give equal bytes. It refuses
// statistics Validate refuses.
func (s *Statistics) WriteJSON(w io.Writer) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("write statistics: %w", err)
	}
	return mmjson.Write(w, "statistics", s)
}

// Validate checks what a reader relies on: one problem type's block,
// counts that are not negative, rates and their curves in [0, 1], standard
// deviations not negative, curves of matching lengths.
func (s *Statistics) Validate() error {
	if !finite(s.Version) {
		return errors.New("version: not a finite number")
	}
	if s.Dataset.ItemCount < 0 {
		return fmt.Errorf("dataset.item_count: %d is negative", s.Dataset.ItemCount)
	}
	if s.Dataset.NumMissing < 0 {
		return fmt.Errorf("dataset.num_missing: %d is negative", s.Dataset.NumMissing)
	}
	if s.Binary == nil && s.Regression == nil {
		return errors.New("binary_classification_metrics, regression_metrics: neither is there")
	}
	if s.Binary != nil {
		if err := s.Binary.validate(); err != nil {
			return fmt.Errorf("binary_classification_metrics.%w", err)
		}
	}
	if s.Regression != nil {
		if err := validateMetrics(regressionMetrics, s.Regression); err != nil {
			return fmt.Errorf("regression_metrics.%w", err)
		}
	}
	return nil
}

func (m *BinaryMetrics) validate() error {
	c := m.ConfusionMatrix
	for _, n := range []int64{c.TrueNegatives, c.FalsePositives, c.FalseNegatives, c.TruePositives} {
		if n < 0 {
			return fmt.Errorf("confusion_matrix: count %d is negative", n)
		}
	}
	if err := validateMetrics(binaryMetrics, m); err != nil {
		return err
	}
	if err := validateCurve("receiver_operating_characteristic_curve", "false_positive_rates", "true_positive_rates",
		m.ROC.FalsePositiveRates, m.ROC.TruePositiveRates); err != nil {
		return err
	}
	return validateCurve("precision_recall_curve", "precisions", "recalls", m.PR.Precisions, m.PR.Recalls)
}

func validateCurve(curve, xName, yName string, x, y []float64) error {
	if len(x) != len(y) {
		return fmt.Errorf("%s: %d %s and %d %s", curve, len(x), xName, len(y), yName)
	}
	for _, a := range [2]struct {
		name string
		v    []float64
	}{{xName, x}, {yName, y}} {
		for i, v := range a.v {
			if !(v >= 0 && v <= 1) {
				return fmt.Errorf("%s.%s[%d]: %g is not in [0, 1]", curve, a.name, i, v)
			}
		}
	}
	return nil
}

// MarshalJSON writes NaN and infinities as Model Monitor does, as the
// strings "NaN", "Infinity" and "-Infinity".
func (m Metric) MarshalJSON() ([]byte, error) {
	b := append([]byte(nil), `{"value":`...)
	b = appendFloat(b, m.Value)
	b = append(b, `,"standard_deviation":`...)
	b = appendFloat(b, m.StandardDeviation)
	return append(b, '}'), nil
}

func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// UnmarshalJSON reads the value and standard deviation as numbers or as
// Model Monitor's "NaN" strings. The value must be there; a missing
// standard deviation reads as NaN.
func (m *Metric) UnmarshalJSON(data []byte) error {
	var raw struct {
		Value             json.RawMessage `json:"value"`
		StandardDeviation json.RawMessage `json:"standard_deviation"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if !present(raw.Value) {
		return atField("value", errMissing)
	}
	v, err := parseFloat(raw.Value)
	if err != nil {
		return atField("value", err)
	}
	sd := math.NaN()
	if present(raw.StandardDeviation) {
		if sd, err = parseFloat(raw.StandardDeviation); err != nil {
			return atField("standard_deviation", err)
		}
	}
	m.Value, m.StandardDeviation = v, sd
	return nil
}

// parseFloat reads a JSON number or one of the strings "NaN", "Infinity"
// and "-Infinity".
func parseFloat(raw json.RawMessage) (float64, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		switch s {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("%s is not a number", raw)
	}
	return f, nil
}

// MarshalJSON writes Model Monitor's nested form.
func (c ConfusionMatrix) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"0":{"0":%d,"1":%d},"1":{"0":%d,"1":%d}}`,
		c.TrueNegatives, c.FalsePositives, c.FalseNegatives, c.TruePositives), nil
}

// UnmarshalJSON reads Model Monitor's nested form. Labels may be written
// "0" and "1" or as floats ("0.0", "1.0"); counts as integers or whole
// floats. All four cells must be there (a null one is not).
func (c *ConfusionMatrix) UnmarshalJSON(data []byte) error {
	var raw map[string]map[string]json.Number
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	var cell [2][2]*int64
	for actualKey, row := range raw {
		a, err := binaryLabel(actualKey)
		if err != nil {
			return err
		}
		for predKey, n := range row {
			p, err := binaryLabel(predKey)
			if err != nil {
				return atField(strconv.Quote(actualKey), err)
			}
			if n == "" {
				continue // a null cell is not there: missing, below
			}
			v, err := mmjson.WholeNumber(n)
			if err != nil {
				return atField(strconv.Quote(actualKey)+"."+strconv.Quote(predKey), err)
			}
			cell[a][p] = &v
		}
	}
	for a := range 2 {
		for p := range 2 {
			if cell[a][p] == nil {
				return atField(fmt.Sprintf("%q.%q", strconv.Itoa(a), strconv.Itoa(p)), errMissing)
			}
		}
	}
	*c = ConfusionMatrix{TrueNegatives: *cell[0][0], FalsePositives: *cell[0][1],
		FalseNegatives: *cell[1][0], TruePositives: *cell[1][1]}
	return nil
}

func binaryLabel(key string) (int, error) {
	f, err := strconv.ParseFloat(key, 64)
	switch {
	case err == nil && f == 0:
		return 0, nil
	case err == nil && f == 1:
		return 1, nil
	}
	return 0, fmt.Errorf("%q is not a binary label (0 or 1)", key)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// readJSON reads one JSON value of at most maxFileBytes into v, and
// nothing after it. Errors name the file, and the line and column of a
// syntax or type error.
func readJSON(r io.Reader, name, what string, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return fmt.Errorf("%s: read %s: %w", name, what, err)
	}
	if len(data) > maxFileBytes {
		return fmt.Errorf("%s: larger than %d bytes", name, maxFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s%s: decode %s: %w", name, mmjson.Position(data, err), what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s%s: trailing data after the %s object", name, mmjson.LineCol(data, dec.InputOffset()+1), what)
	}
	return nil
}
