package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/config"
)

// TestEvictionAccountsForEveryEvent runs a window that can hold two
// machines while six report, interleaved, with late readings for windows
// already emitted: keys are evicted with windows open all the time. By the
// readers' rule (loadtest.FinalRows, docs/sinks.md) every window's final
// rows together count exactly the readings sent.
func TestEvictionAccountsForEveryEvent(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t)
	src := strings.Replace(tp.yaml, "    late: dead_letter\n", "    late: dead_letter\n    max_keys: 2\n    allowed_lateness: 10s\n", 1)
	cfg, err := config.Parse([]byte(src), "eviction.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg = cfg
	tp.start(t, "worker-evict")

	machines := []string{"press-001", "press-002", "press-003", "press-004", "press-005", "press-006"}
	sent := map[string]float64{}
	put := func(m string, ts time.Time) {
		tp.put(t, m, reading(m, ts, 0.3))
		sent[windowKey(m, ts.Truncate(time.Second))]++
	}
	t0 := time.Now().UTC().Add(-30 * time.Second).Truncate(time.Second)
	for step := range 40 { // 4 s of event time
		for _, m := range machines {
			put(m, t0.Add(time.Duration(step)*100*time.Millisecond))
		}
	}
	// Late readings, within the allowed lateness, for the first windows.
	for _, m := range machines {
		put(m, t0.Add(300*time.Millisecond))
		put(m, t0.Add(1500*time.Millisecond))
	}
	// Close everything; this last window stays open.
	for _, m := range machines {
		put(m, t0.Add(20*time.Second))
		delete(sent, windowKey(m, t0.Add(20*time.Second)))
	}
	counts, partial := waitCounts(t, tp, 90*time.Second, countsAtLeast(sent))
	if partial == 0 {
		t.Fatal("no partial row: the test did not evict a key with an open window")
	}
	for k, n := range sent {
		if counts[k] != n {
			t.Errorf("window %s: final rows count %v readings, %v were sent", k, counts[k], n)
		}
	}
	t.Logf("%d partial rows among the final ones", partial)
}
