package sinks

import (
	"math"
	"reflect"
	"testing"
	"time"
)

// Unmarshal reads back what Marshal wrote, under a custom layout as under
// the default one: the item layout is one type, so the writer (the
// feature table) and its readers (the login Lambda) cannot drift apart.
// Non-finite values are left out, times keep their stored precision.
func TestFeatureItemRoundTrip(t *testing.T) {
	t.Parallel()
	ws := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	in := FeatureItem{
		Entity: "user 1 ✓", FeatureSet: FeatureSet("churn", "user_day"), Stream: "app-events",
		WindowStart: ws, WindowEnd: ws.Add(24 * time.Hour),
		Features:     map[string]float64{"events": 40, "spend": 120.5, "tiny": 1e-300, "gone": math.NaN(), "inf": math.Inf(1)},
		Scores:       map[string]float64{ColScore: 0.25, ColScore + "_1": math.NaN()},
		ModelVersion: "churn-7", Fallback: true, ResultID: ResultID("app-events", "user 1 ✓", ws, ws.Add(24*time.Hour), "churn-7"),
		UpdatedAt: ws.Add(25*time.Hour + 123*time.Millisecond + 456), Expires: ws.Add(8*24*time.Hour + 700*time.Millisecond),
	}
	want := in
	want.Features = map[string]float64{"events": 40, "spend": 120.5, "tiny": 1e-300}
	want.Scores = map[string]float64{ColScore: 0.25}
	want.UpdatedAt = ws.Add(25*time.Hour + 123*time.Millisecond)
	want.Expires = ws.Add(8 * 24 * time.Hour)
	for _, l := range []FeatureLayout{{}, {PartitionKey: "user", SortKey: "set", TTLAttribute: "expires_at"}} {
		item := l.Marshal(&in)
		d := l.withDefaults()
		for _, name := range []string{d.PartitionKey, d.SortKey, d.TTLAttribute} {
			if _, ok := item[name]; !ok {
				t.Errorf("layout %+v: item has no %q attribute", l, name)
			}
		}
		for name, v := range l.Key(in.Entity, in.FeatureSet) {
			if !reflect.DeepEqual(item[name], v) {
				t.Errorf("layout %+v: key attribute %q is %v in the item, %v in Key", l, name, item[name], v)
			}
		}
		got, err := l.Unmarshal(item)
		if err != nil {
			t.Fatalf("layout %+v: %v", l, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("layout %+v: round trip\n got %+v\nwant %+v", l, got, want)
		}
	}
}
