package monitor

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

const validStats = `{"version": 0, "dataset": {"item_count": 3}, "features": [
 {"name": "x", "inferred_type": "Fractional", "numerical_statistics": {"common": {"num_present": 2, "num_missing": 1},
  "mean": 1.5, "sum": 3, "std_dev": 0.5, "min": 1, "max": 2,
  "distribution": {"kll": {"buckets": [{"lower_bound": 1, "upper_bound": 2, "count": 2}],
   "sketch": {"parameters": {"c": 0.64, "k": 2048}, "data": [[1, 2]]}}}}},
 {"name": "s", "inferred_type": "String", "string_statistics": {"common": {"num_present": 3, "num_missing": 0},
  "distinct_count": 2, "distribution": {"categorical": {"buckets": [{"value": "a", "count": 2}, {"value": "b", "count": 1}]}}}}]}`

func TestReadStatisticsAcceptsTheSchema(t *testing.T) {
	s, err := ReadStatistics(strings.NewReader(validStats), "stats.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Features[0].NumericalStatistics.Distribution.KLL.Sketch.Data[0][1] != 2 ||
		s.Features[1].StringStatistics.Distribution.Categorical.Buckets[0] != (CategoricalBucket{"a", 2}) {
		t.Fatalf("decoded %+v", s)
	}
}

// TestReadStatisticsNamesWhatIsWrong: each refusal names the file, the
// feature (index and name) and the field.
func TestReadStatisticsNamesWhatIsWrong(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{`"version": 0`, `"version": "0"`, "stats.json: decode statistics"},
		{`"item_count": 3`, `"item_count": -3`, "dataset.item_count"},
		{`"item_count": 3`, `"item_count": 3.5`, "item_count: 3.5 is not a whole count"},
		{`"inferred_type": "Fractional"`, `"inferred_type": "Float"`, `features[0] "x": inferred_type`},
		{`"inferred_type": "String"`, `"inferred_type": "Integral"`, `features[1] "s": string_statistics: present on a feature of type Integral`},
		{`"inferred_type": "String", "string_statistics"`, `"inferred_type": "String", "x_statistics"`, `features[1] "s": string_statistics: missing`},
		{`"num_present": 2,`, `"num_present": -2,`, `features[0] "x": numerical_statistics.common.num_present`},
		{`"std_dev": 0.5`, `"std_dev": -0.5`, "numerical_statistics.std_dev"},
		{`"min": 1, "max": 2`, `"min": 3, "max": 2`, "numerical_statistics.min: 3 is above max 2"},
		{`"count": 2}],`, `"count": -2}],`, "kll.buckets[0].count"},
		{`"c": 0.64`, `"c": 64`, "kll.sketch.parameters.c"},
		{`"k": 2048`, `"k": 2048.5`, "kll.sketch.parameters.k"},
		{`"distinct_count": 2`, `"distinct_count": -2`, `features[1] "s": string_statistics.distinct_count`},
		{`{"value": "b", "count": 1}`, `{"value": "a", "count": 1}`, `buckets[1]: value "a" already in buckets[0]`},
		{`{"value": "b", "count": 1}`, `{"count": 1}`, "value: missing"},
		{`{"name": "s"`, `{"name": "x"`, `features[1] "x": name already used by features[0]`},
		{`{"name": "s"`, `{"name": ""`, "name: empty"},
		{`"data": [[1, 2]]`, `"data": [[1, 2e999]]`, "decode statistics"},
		{`]}}}}]}`, `]}}}}]} {}`, "trailing data"},
	}
	for _, c := range cases {
		in := strings.Replace(validStats, c.from, c.to, 1)
		if in == validStats {
			t.Fatalf("case %q does not change the input", c.want)
		}
		_, err := ReadStatistics(strings.NewReader(in), "stats.json")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "stats.json: ") {
			t.Errorf("%s -> %s: error %v, want one naming %q", c.from, c.to, err, c.want)
		}
	}
}

func TestWriteJSONIsStableAndRefusesNonFinite(t *testing.T) {
	s, err := ReadStatistics(strings.NewReader(validStats), "stats.json")
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := s.WriteJSON(&a); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() || !strings.HasPrefix(a.String(), "{\n  \"version\": 0,\n  \"dataset\": {\n    \"item_count\": 3\n  },\n  \"features\": [\n    {\n      \"name\": \"x\",\n      \"inferred_type\": \"Fractional\",\n      \"numerical_statistics\": {") {
		t.Fatalf("not the schema's order with two-space indent:\n%s", a.String())
	}
	s.Features[0].NumericalStatistics.Sum = math.Inf(1)
	var c bytes.Buffer
	err = s.WriteJSON(&c)
	if err == nil || !strings.Contains(err.Error(), `features[0] "x": numerical_statistics.sum`) || c.Len() != 0 {
		t.Fatalf("an infinite sum: error %v, %d bytes written", err, c.Len())
	}
}
