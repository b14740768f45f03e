package quality

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

func seedFiles(f *testing.F, names ...string) {
	for _, name := range names {
		if b, err := os.ReadFile("testdata/" + name); err == nil {
			f.Add(b)
		}
	}
}

// FuzzReadStatistics: no input panics the reader; what it accepts writes,
// reads back and writes again to the same bytes; and a baseline never
// violates the constraints suggested from it.
func FuzzReadStatistics(f *testing.F) {
	seedFiles(f, "modelmonitor_doc_binary.json", "modelmonitor_doc_regression.json")
	b := NewBinary(Options{Bins: 20})
	feedBinary(b, randomRows(1, 300))
	for _, st := range []*Statistics{b.Statistics(), NewBinary(Options{}).Statistics(), NewRegression().Statistics()} {
		var buf bytes.Buffer
		if err := st.WriteJSON(&buf); err == nil {
			f.Add(buf.Bytes())
		}
	}
	for _, s := range []string{
		`{"dataset": {"item_count": 1.0}, "regression_metrics": {"mae": {"value": 1}, "mse": {"value": "NaN"}, "rmse": {"value": 1, "standard_deviation": "NaN"}, "r2": {"value": -3}}}`,
		`{"dataset": {}, "binary_classification_metrics": null}`,
		`{"version": 0.0, "dataset": {"item_count": 2}, "multiclass_classification_metrics": {}}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ReadStatistics(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		var a bytes.Buffer
		if err := st.WriteJSON(&a); err != nil {
			t.Fatalf("accepted statistics do not write: %v", err)
		}
		back, err := ReadStatistics(bytes.NewReader(a.Bytes()), "again.json")
		if err != nil {
			t.Fatalf("written statistics do not read: %v\n%s", err, a.String())
		}
		var c bytes.Buffer
		if err := back.WriteJSON(&c); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), c.Bytes()) {
			t.Fatalf("round trip changed the file:\n%s\n%s", a.String(), c.String())
		}
		if r := Check(Suggest(st), st); len(r.Violations) != 0 {
			t.Fatalf("a baseline violates its own suggested constraints: %+v", r.Violations)
		}
	})
}

// FuzzReadConstraints: no input panics the reader; what it accepts writes
// and reads back to the same constraints, and the same bytes.
func FuzzReadConstraints(f *testing.F) {
	var buf bytes.Buffer
	if err := Suggest(binaryWith(churnBaseline)).WriteJSON(&buf); err == nil {
		f.Add(buf.Bytes())
	}
	for _, s := range []string{
		`{"version": 0.0, "regression_constraints": {"mae": {"threshold": 0.5, "comparison_operator": "GreaterThanThreshold"}, "r2": {"threshold": -1e3, "comparison_operator": "LessThanOrEqualToThreshold"}}}`,
		`{"binary_classification_constraints": {}, "regression_constraints": {"rmse": {"threshold": 1, "comparison_operator": "GreaterThanOrEqualToThreshold"}}}`,
		`{"binary_classification_constraints": {"brier_score": {"threshold": 0.2, "comparison_operator": "GreaterThanThreshold"}}}`,
		`{"binary_classification_constraints": {"f1": {"threshold": "x"}}}`,
		`{"multiclass_classification_constraints": {"accuracy": {}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadConstraints(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		var a bytes.Buffer
		if err := c.WriteJSON(&a); err != nil {
			t.Fatalf("accepted constraints do not write: %v", err)
		}
		back, err := ReadConstraints(bytes.NewReader(a.Bytes()), "again.json")
		if err != nil {
			t.Fatalf("written constraints do not read: %v\n%s", err, a.String())
		}
		for _, mc := range []*MetricConstraints{&c.Binary, &c.Regression} {
			if len(*mc) == 0 {
				*mc = nil // an empty block is not written
			}
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the constraints:\n got %+v\nwant %+v", back, c)
		}
		var b bytes.Buffer
		if err := back.WriteJSON(&b); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("second write differs (%v):\n%s\n%s", err, a.String(), b.String())
		}
	})
}

// FuzzBinaryUnmarshalJSON: no state panics the reader; a state it accepts
// writes back unchanged and renders statistics that WriteJSON accepts.
func FuzzBinaryUnmarshalJSON(f *testing.F) {
	for _, o := range []Options{{Bins: 4}, {Threshold: 0.2, Bins: 3}} {
		b := NewBinary(o)
		feedBinary(b, randomRows(2, 40))
		data, _ := json.Marshal(b)
		f.Add(data)
	}
	f.Add([]byte(`{"kind":"binary","version":1,"threshold":1,"bins":2,"true_positives":0,"false_positives":0,"false_negatives":0,"true_negatives":0,"missing":3,"squared_error_sum":"0","squared_error_square_sum":"0","positives":[0,0],"negatives":[0,0]}`))
	f.Add([]byte(`{"kind":"regression","version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Binary
		if err := json.Unmarshal(data, &b); err != nil {
			return
		}
		out, err := json.Marshal(&b)
		if err != nil {
			t.Fatalf("accepted state does not write: %v", err)
		}
		var back Binary
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("written state does not read: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(&back, &b) {
			t.Fatalf("state changed in a round trip:\n%s", out)
		}
		if err := b.Statistics().WriteJSON(&bytes.Buffer{}); err != nil {
			t.Fatalf("an accepted state renders invalid statistics: %v\n%s", err, data)
		}
	})
}

// FuzzRegressionUnmarshalJSON: as FuzzBinaryUnmarshalJSON.
func FuzzRegressionUnmarshalJSON(f *testing.F) {
	r := NewRegression()
	r.Add(1, 2)
	r.Add(4, 3)
	r.Add(10, 3)
	data, _ := json.Marshal(r)
	f.Add(data)
	f.Add([]byte(`{"kind":"regression","version":1,"count":5,"missing":1,"actual":{"mean":1e300,"m2":1e308},"absolute_error":{"mean":1e-300,"m2":0},"squared_error":{"mean":1e308,"m2":1e308}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Regression
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		out, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("accepted state does not write: %v", err)
		}
		var back Regression
		if err := json.Unmarshal(out, &back); err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("state changed in a round trip (%v):\n%s", err, out)
		}
		if err := r.Statistics().WriteJSON(&bytes.Buffer{}); err != nil {
			t.Fatalf("an accepted state renders invalid statistics: %v\n%s", err, data)
		}
	})
}
