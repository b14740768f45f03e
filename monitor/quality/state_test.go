package quality

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestStateRoundTrip: a worker's part read back is the same accumulator,
// and still merges and renders as the original.
func TestStateRoundTrip(t *testing.T) {
	b := NewBinary(Options{Threshold: 0.3, Bins: 50})
	feedBinary(b, randomRows(11, 2000))
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var back Binary // a zero value must do
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, b) {
		t.Fatalf("binary state changed in a round trip")
	}
	if err := back.Merge(b); err != nil {
		t.Fatal(err)
	}
	if back.Count() != 2*b.Count() || back.Options() != b.Options() {
		t.Errorf("merged count %d options %+v", back.Count(), back.Options())
	}

	r := NewRegression()
	for _, row := range readRows(t, "regression.csv") {
		r.Add(row[0], row[1])
	}
	data, err = json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var rback Regression
	if err := json.Unmarshal(data, &rback); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&rback, r) {
		t.Fatalf("regression state changed in a round trip:\n%+v\n%+v", rback, *r)
	}
	var a, c bytes.Buffer
	if err := r.Statistics().WriteJSON(&a); err != nil {
		t.Fatal(err)
	}
	if err := rback.Statistics().WriteJSON(&c); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("statistics of the state read back differ")
	}
}

// TestStateErrors: each refusal names the field.
func TestStateErrors(t *testing.T) {
	b := NewBinary(Options{Bins: 4})
	b.Add(0.9, true)
	b.Add(0.1, false)
	valid, _ := json.Marshal(b)
	edit := func(old, new string) string {
		if !strings.Contains(string(valid), old) {
			t.Fatalf("state has no %q: %s", old, valid)
		}
		return strings.Replace(string(valid), old, new, 1)
	}
	reg, _ := json.Marshal(NewRegression())
	for _, tc := range []struct {
		name, input, want string
	}{
		{"kind", string(reg), `kind: "regression", not "binary"`},
		{"version", edit(`"version":1`, `"version":7`), "version: 7 is not a state version"},
		{"threshold", edit(`"threshold":0.5`, `"threshold":2`), "threshold: 2 is not in (0, 1]"},
		{"zero threshold", edit(`"threshold":0.5`, `"threshold":0`), "never 0"},
		{"no bins", edit(`"bins":4,`, ``), "bins: missing"},
		{"negative count", edit(`"true_positives":1`, `"true_positives":-1`), "true_positives: -1 is negative"},
		{"count type", edit(`"true_positives":1`, `"true_positives":1.5`), "true_positives: a JSON number 1.5 where a whole number belongs"},
		{"histogram length", edit(`"positives":[0,0,0,1]`, `"positives":[0,0,1]`), "positives: 3 counts for 4 bins"},
		{"histogram sum", edit(`"positives":[0,0,0,1]`, `"positives":[0,0,0,2]`), "positives: counts add up to 2, the class's confusion counts to 1"},
		{"histogram negative", edit(`"negatives":[1,0,0,0]`, `"negatives":[2,-1,0,0]`), "negatives[1]: -1 is negative"},
		{"sum text", edit(`"squared_error_sum":"`, `"squared_error_sum":"x`), `squared_error_sum: "x`},
		{"sum too large", edit(`"squared_error_sum":"`, `"squared_error_sum":"99999999999999999999`), "squared_error_sum: larger than the rows' count allows"},
		{"quad above sq", edit(`"squared_error_square_sum":"`, `"squared_error_square_sum":"99`), "squared_error_square_sum: above squared_error_sum"},
		{"regression m2", `{"kind":"regression","version":1,"count":2,"missing":0,"actual":{"mean":1,"m2":-1},"absolute_error":{"mean":0,"m2":0},"squared_error":{"mean":0,"m2":0}}`, "actual.m2: -1 is negative"},
		{"regression empty", `{"kind":"regression","version":1,"count":0,"missing":0,"actual":{"mean":1,"m2":0},"absolute_error":{"mean":0,"m2":0},"squared_error":{"mean":0,"m2":0}}`, "actual: not zero with count 0"},
		{"regression abs", `{"kind":"regression","version":1,"count":2,"missing":0,"actual":{"mean":1,"m2":0},"absolute_error":{"mean":-1,"m2":0},"squared_error":{"mean":0,"m2":0}}`, "absolute_error.mean: -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if strings.HasPrefix(tc.name, "regression") {
				err = json.Unmarshal([]byte(tc.input), new(Regression))
			} else {
				err = json.Unmarshal([]byte(tc.input), new(Binary))
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
