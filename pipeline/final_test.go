package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/streamscore/streamscore/loadtest"
)

// windowKey names a window in the maps below: entity and start time.
func windowKey(entity string, start time.Time) string {
	return entity + " " + start.UTC().Format(time.TimeOnly)
}

// windowCounts reads the results in S3 and applies the readers' rule
// (loadtest.FinalRows): per window, the readings its final rows count
// (parts summed), and how many final rows are partial.
func windowCounts(t *testing.T, tp *testPipeline) (counts map[string]float64, partial int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, _, err := loadtest.ReadResults(ctx, tp.env.S3, tp.bucket, "results/", "readings")
	if err != nil {
		t.Fatal(err)
	}
	final := loadtest.FinalRows(rows)
	ids := loadtest.FinalCounts(final)
	counts = map[string]float64{}
	for _, r := range final {
		if r.Partial != "" {
			partial++
		}
		k := windowKey(r.Entity, r.WindowStart)
		counts[k] = max(counts[k], ids[r.ResultID]) // a result per model version
	}
	return counts, partial
}

// waitCounts polls windowCounts until done says the counts are complete or
// within passes, and returns the last counts.
func waitCounts(t *testing.T, tp *testPipeline, within time.Duration, done func(map[string]float64) bool) (map[string]float64, int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		counts, partial := windowCounts(t, tp)
		if done(counts) || time.Now().After(deadline) {
			return counts, partial
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// countsAtLeast is a done func for waitCounts: every window of want has
// at least its count.
func countsAtLeast(want map[string]float64) func(map[string]float64) bool {
	return func(got map[string]float64) bool {
		for k, n := range want {
			if got[k] < n {
				return false
			}
		}
		return true
	}
}
