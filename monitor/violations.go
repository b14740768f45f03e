package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
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
	return mmjson.Write(w, "violations", &v)
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
		return nil, fmt.Errorf("%s%s: decode violations: %w", name, mmjson.Position(data, err), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s%s: trailing data after the violations object", name, mmjson.LineCol(data, dec.InputOffset()))
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
