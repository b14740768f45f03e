package loadtest

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/pipeline"
)

// The loop's section says what a user judges the loop by: the promotion
// line names the last verdict that weighed the challenger (not a later
// period with no positives), a version that scored no labelled row of a
// period is left out of the table, and a loop that did not close is marked.
func TestSummaryShowsTheModelLoop(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 42, 0, 0, time.UTC)
	fw := &FlywheelReport{Scorer: "failure", Labels: 9,
		Requests: []RetrainRun{{At: at, ID: "req1", Trigger: "drift", Status: "SUCCEEDED", Finished: at.Add(time.Second), Version: "etag:new"}},
		Periods: []QualityPeriod{
			{Start: at, End: at.Add(30 * time.Second),
				Models: []ModelQuality{
					{Role: "champion", Version: "sha256:champ", Labelled: 111, Precision: 0.6, Recall: 1},
					{Role: "challenger", Version: "etag:new", Labelled: 111, Precision: 0.43, Recall: 0.5, Violated: []string{"precision"}},
					{Role: "challenger", Version: "etag:gone", Precision: math.NaN(), Recall: math.NaN()},
				},
				Promotion: []pipeline.JudgedPromotion{{Outcome: "margin-not-met", Reason: "auc 0.9175 does not beat 0.9857", Labelled: 111}}},
			{Start: at.Add(30 * time.Second), End: at.Add(time.Minute),
				Models:    []ModelQuality{{Role: "challenger", Version: "etag:new", Labelled: 99, Precision: math.NaN(), Recall: 0}},
				Promotion: []pipeline.JudgedPromotion{{Outcome: "no-evidence", Reason: "auc undefined", Labelled: 99}}},
		}}
	rep := &Report{Started: at, Duration: time.Minute, Scenarios: []*ScenarioReport{{Name: "factory", Stream: "s", PerSecond: map[int64]int{}, Flywheel: fw}}}
	var out bytes.Buffer
	rep.WriteSummary(&out)
	s := out.String()
	for _, want := range []string{
		"9 failures published as labels",
		"req1 (drift) at 12:42:00: SUCCEEDED in 1s",
		"champion kept; the last verdict (period ending 12:42:30): margin-not-met: auc 0.9175 does not beat 0.9857",
		"labelled  111  precision 0.43  recall 0.50  violates precision",
		"precision   -   recall 0.00",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "etag:gone") {
		t.Errorf("a version with no labelled row is in the table:\n%s", s)
	}
	if strings.Contains(s, "<-") {
		t.Errorf("a closed loop is marked as a problem:\n%s", s)
	}
	fw.Unjudged = "the model request req1 trained (etag:new) was not judged on labelled rows in time"
	out.Reset()
	rep.WriteSummary(&out)
	if !strings.Contains(out.String(), "was not judged on labelled rows in time  <-") {
		t.Errorf("an open loop is not marked:\n%s", out.String())
	}
}
