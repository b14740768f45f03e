package monitor

import (
	"bytes"
	"os"
	"reflect"
	"testing"
)

// FuzzReadConstraints: no input panics the reader; what it accepts,
// WriteJSON writes and ReadConstraints reads back unchanged.
func FuzzReadConstraints(f *testing.F) {
	if b, err := os.ReadFile("testdata/compare/constraints_modelmonitor.json"); err == nil {
		f.Add(b)
	}
	var buf bytes.Buffer
	if err := Suggest(suggestStats()).WriteJSON(&buf); err == nil {
		f.Add(buf.Bytes())
	}
	for _, s := range []string{
		`{}`,
		`{"version": 0, "features": [], "monitoring_config": {}}`,
		`{"features": [{"name": "a", "inferred_type": "String", "completeness": 0.5, "string_constraints": {"domains": ["x", "y"]}}]}`,
		`{"features": [{"name": "a", "inferred_type": "Integral", "monitoringConfigOverrides": {"evaluate_constraints": "Disabled", "distribution_constraints": {"comparison_threshold": 0.2}}}]}`,
		`{"monitoring_config": {"distribution_constraints": {"categorical_drift_method": "ChiSquared", "comparison_method": "Simple"}}}`,
		`{"features": [{"name": "a", "inferred_type": "Text"}]}`,
		`{"features": null, "monitoring_config": null}`,
		`[1, 2]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadConstraints(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := c.WriteJSON(&out); err != nil {
			t.Fatalf("accepted constraints do not write: %v", err)
		}
		back, err := ReadConstraints(bytes.NewReader(out.Bytes()), "rewritten.json")
		if err != nil {
			t.Fatalf("written constraints do not read back: %v\n%s", err, out.String())
		}
		if c.Features == nil {
			c.Features = []ConstraintFeature{}
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the constraints:\n got %+v\nwant %+v", back, c)
		}
	})
}

// FuzzReadViolations: no input panics the reader; what it accepts is
// written and read back unchanged.
func FuzzReadViolations(f *testing.F) {
	for _, s := range []string{
		`{"violations": []}`,
		`{"violations": [{"feature_name": "a", "constraint_check_type": "baseline_drift_check", "description": "Numerical distance: 0.2 exceeds numerical threshold: 0.1"}]}`,
		`{"violations": [{"feature_name": "", "constraint_check_type": "x"}]}`,
		`{"violations": null}`,
		`{"violations": [{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ReadViolations(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := (&Report{Violations: v.Violations}).WriteViolations(&out); err != nil {
			t.Fatalf("accepted violations do not write: %v", err)
		}
		back, err := ReadViolations(bytes.NewReader(out.Bytes()), "rewritten.json")
		if err != nil {
			t.Fatalf("written violations do not read back: %v\n%s", err, out.String())
		}
		if !reflect.DeepEqual(back, v) {
			t.Fatalf("round trip changed the violations:\n got %+v\nwant %+v", back, v)
		}
	})
}
