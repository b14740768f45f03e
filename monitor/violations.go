package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// The constraint_check_type values of Model Monitor's "Schema for Violations
// (constraint_violations.json file)".
const (
	DataTypeCheck          = "data_type_check"
	CompletenessCheck      = "completeness_check"
	BaselineDriftCheck     = "baseline_drift_check"
	MissingColumnCheck     = "missing_column_check"
	ExtraColumnCheck       = "extra_column_check"
	CategoricalValuesCheck = "categorical_values_check"
)

// Violation is one entry of constraint_violations.json.
type Violation struct {
	FeatureName         string `json:"feature_name"`
	ConstraintCheckType string `json:"constraint_check_type"`
	Description         string `json:"description"`
}

// Violations is constraint_violations.json: {"violations": [...]}.
type Violations struct {
	Violations []Violation `json:"violations"`
}

// WriteViolations writes the report's violations as
// constraint_violations.json, indented by two spaces, in the report's order;
// no violation writes {"violations": []}.
func (r *Report) WriteViolations(w io.Writer) error {
	v := Violations{Violations: r.Violations}
	if v.Violations == nil {
		v.Violations = []Violation{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&v); err != nil {
		return fmt.Errorf("write violations: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write violations: %w", err)
	}
	return nil
}

// maxViolationsBytes bounds what ReadViolations reads.
const maxViolationsBytes = 64 << 20

// ReadViolations decodes a constraint_violations.json: Model Monitor's, or
// one WriteViolations wrote. The violations array must be there; each entry
// needs a feature_name (Model Monitor writes one even for column-count
// checks) and a constraint_check_type. Check types other than the six data
// quality ones are accepted, since Model Monitor's other monitors (model
// quality, bias) write their own into files of the same shape. Errors name
// the file, the line and column of a syntax error, or the entry.
func ReadViolations(r io.Reader, name string) (*Violations, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxViolationsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read violations: %w", name, err)
	}
	if len(data) > maxViolationsBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxViolationsBytes)
	}
	var raw struct {
		Violations *[]struct {
			FeatureName         *string `json:"feature_name"`
			ConstraintCheckType *string `json:"constraint_check_type"`
			Description         *string `json:"description"`
		} `json:"violations"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s%s: decode violations: %w", name, jsonPosition(data, err), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s%s: trailing data after the violations object", name, lineCol(data, dec.InputOffset()))
	}
	if raw.Violations == nil {
		return nil, fmt.Errorf("%s: violations: missing", name)
	}
	out := &Violations{Violations: make([]Violation, 0, len(*raw.Violations))}
	for i, v := range *raw.Violations {
		switch {
		case v.FeatureName == nil:
			return nil, fmt.Errorf("%s: violations[%d]: feature_name: missing", name, i)
		case v.ConstraintCheckType == nil || *v.ConstraintCheckType == "":
			return nil, fmt.Errorf("%s: violations[%d] %q: constraint_check_type: missing", name, i, *v.FeatureName)
		}
		vi := Violation{FeatureName: *v.FeatureName, ConstraintCheckType: *v.ConstraintCheckType}
		if v.Description != nil {
			vi.Description = *v.Description
		}
		out.Violations = append(out.Violations, vi)
	}
	return out, nil
}

// javaDouble formats f as Java's Double.toString does for the numbers the
// descriptions hold, since Model Monitor's (Scala) container writes them
// that way: "0.1", "100.0", "99.71751412429379", "1.0E-4".
func javaDouble(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'E', -1, 64) // 1E-04, 1.5E+07
	mant, exp, _ := strings.Cut(s, "E")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}
