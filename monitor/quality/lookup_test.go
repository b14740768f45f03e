package quality

import (
	"math"
	"slices"
	"testing"
)

// Metrics and Metric read the values statistics.json holds, by the keys it
// holds them under, and nothing of another problem type.
func TestMetricsByName(t *testing.T) {
	b := NewBinary(Options{Threshold: 0.5})
	for i, s := range []float64{0.9, 0.8, 0.3, 0.6, 0.1, 0.2} {
		b.Add(s, i%2 == 0)
	}
	st := b.Statistics()
	names := make([]string, 0)
	for _, m := range st.Metrics() {
		names = append(names, m.Name)
		if got, ok := st.Metric(m.Name); !ok || !sameMetric(got, m.Metric) {
			t.Errorf("Metric(%q) = %v %v, want %v", m.Name, got, ok, m.Metric)
		}
	}
	if want := MetricNames(false); !slices.Equal(names, want) {
		t.Errorf("binary metrics %v, want %v", names, want)
	}
	if f1, _ := st.Metric("f1"); !sameMetric(f1, st.Binary.F1) {
		t.Errorf("f1 %v, want %v", f1, st.Binary.F1)
	}
	if _, ok := st.Metric("mae"); ok {
		t.Error("a binary statistics file has an mae")
	}
	if _, ok := st.Metric("nope"); ok {
		t.Error("an unknown metric was found")
	}
	r := NewRegression()
	r.Add(1, 2)
	r.Add(3, 3)
	rs := r.Statistics()
	if m, ok := rs.Metric("mae"); !ok || m.Value != 0.5 {
		t.Errorf("mae %v %v, want 0.5", m, ok)
	}
	if got := len(rs.Metrics()); got != len(MetricNames(true)) {
		t.Errorf("%d regression metrics, want %d", got, len(MetricNames(true)))
	}
}

// sameMetric compares two metrics, a NaN equal to a NaN (the standard
// deviation under 200 rows is one).
func sameMetric(a, b Metric) bool {
	eq := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	return eq(a.Value, b.Value) && eq(a.StandardDeviation, b.StandardDeviation)
}
