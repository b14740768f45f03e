package dataset

import (
	"testing"
	"time"
)

// TestQualityJoinDuplicatePredictions: of two predictions of one id, the
// one written first is kept (a replay's row comes later, whichever is read
// first); without write times, the first read.
func TestQualityJoinDuplicatePredictions(t *testing.T) {
	j := NewQualityJoin()
	for _, id := range []string{"a", "b"} {
		if err := j.Label(Label{ID: id, Value: 1}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	j.Prediction(Prediction{ID: "a", Score: 0.2, Written: t0.Add(time.Minute)}, "")
	j.Prediction(Prediction{ID: "a", Score: 0.8, Written: t0}, "")
	j.Prediction(Prediction{ID: "a", Score: 0.5, Written: t0.Add(time.Hour)}, "")
	j.Prediction(Prediction{ID: "b", Score: 0.3}, "")
	j.Prediction(Prediction{ID: "b", Score: 0.9}, "")
	if a, b := j.entries[j.index["a"]].score, j.entries[j.index["b"]].score; a != 0.8 || b != 0.3 {
		t.Errorf("kept scores a %v, b %v; want 0.8 (written first) and 0.3 (read first)", a, b)
	}
	if j.DuplicateIDs != 3 || j.Joined() != 2 {
		t.Errorf("%d duplicates, %d joined; want 3 and 2", j.DuplicateIDs, j.Joined())
	}
}
