package loadtest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPaceCountsEventsSentWithinASecondOfTheirSchedule(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	p := pace{due: func(e Event) time.Time { return e.Arrival }}
	ev := func(at time.Duration, late bool) Event {
		return Event{EventTime: t0.Add(at), Arrival: t0.Add(at), Late: late}
	}
	// Sent 0.2 s after it was due: on schedule.
	p.sent([]Event{ev(0, false), ev(100*time.Millisecond, false)}, t0.Add(300*time.Millisecond))
	// A batch that waited 2.5 s: both late.
	p.sent([]Event{ev(time.Second, false), ev(1500*time.Millisecond, false)}, t0.Add(3500*time.Millisecond))
	if p.onTime != 2 {
		t.Errorf("on schedule: got %d, want 2", p.onTime)
	}
	if p.maxLag != 2500*time.Millisecond {
		t.Errorf("worst lag: got %s, want 2.5s", p.maxLag)
	}
	// The stream carried event time 1.2 s only when the second batch landed.
	if at, ok := p.carried(t0.Add(1200 * time.Millisecond)); !ok || !at.Equal(t0.Add(3500*time.Millisecond)) {
		t.Errorf("carried(1.2s) = %s, %v; want +3.5s", at.Sub(t0), ok)
	}
	if at, ok := p.carried(t0.Add(50 * time.Millisecond)); !ok || !at.Equal(t0.Add(300*time.Millisecond)) {
		t.Errorf("carried(0.05s) = %s, %v; want +0.3s", at.Sub(t0), ok)
	}
	if _, ok := p.carried(t0.Add(2 * time.Second)); ok {
		t.Error("event time past everything sent reported as carried")
	}
	// A late event (old event time, sent on purpose after the lateness)
	// does not move the clock backwards or forwards.
	p.sent([]Event{{EventTime: t0, Arrival: t0.Add(4 * time.Second), Late: true}}, t0.Add(4*time.Second))
	if len(p.marks) != 2 {
		t.Errorf("a late event added a clock mark: %v", p.marks)
	}
}

func TestReplayDueCompressesHistory(t *testing.T) {
	start := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	from := start.Add(-21 * 24 * time.Hour)
	due := replayDue(start, 40*time.Second, from, 21*24*time.Hour)
	if got := due(Event{Arrival: from.Add(21 * 12 * time.Hour)}); !got.Equal(start.Add(20 * time.Second)) {
		t.Errorf("the middle of the history is due at +%s, want +20s", got.Sub(start))
	}
}

func TestSummaryLeadsWithTheVerdict(t *testing.T) {
	ok := &ScenarioReport{Name: "factory", Stream: "s", Published: 100, Scored: 90, Held: 10, OnSchedule: 100,
		ClosedWindows: 5, MatchedWindows: 5, PublishRate: 10,
		Detection: &Detection{Failing: 10, TruePositives: 10, Recall: 1, Precision: 1, MedianLead: 40 * time.Second, MinLead: 20 * time.Second, leads: []time.Duration{time.Second}}}
	rep := &Report{Duration: time.Minute, Workers: 2, Scenarios: []*ScenarioReport{ok}}
	var out bytes.Buffer
	rep.WriteSummary(&out)
	s := out.String()
	verdict, details := strings.Index(s, "PASS:"), strings.Index(s, "details")
	if verdict < 0 || details < 0 || verdict > details {
		t.Fatalf("the verdict does not come before the details:\n%s", s)
	}
	for _, want := range []string{"100 of 100: 90 scored, 10 held", "recall 1.00", "median 40s before the failure", "100 of 100 events sent within 1s"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "WARNING") {
		t.Errorf("a publisher on schedule drew a warning:\n%s", s)
	}

	behind := *ok
	behind.OnSchedule, behind.MaxLag = 60, 12*time.Second
	rep.Scenarios = []*ScenarioReport{&behind}
	out.Reset()
	rep.WriteSummary(&out)
	s = out.String()
	warn := strings.Index(s, "WARNING: the factory publisher fell behind its schedule: 40 events")
	if warn < 0 || warn > strings.Index(s, "events accounted") {
		t.Errorf("a publisher that fell behind is not the first thing the summary says:\n%s", s)
	}

	lost := *ok
	lost.Unaccounted = 3
	rep.Scenarios = []*ScenarioReport{&lost}
	out.Reset()
	rep.WriteSummary(&out)
	if s := out.String(); !strings.Contains(s, "FAIL: factory: 3 events unaccounted") {
		t.Errorf("lost events do not fail the verdict:\n%s", s)
	}
	var page bytes.Buffer
	if err := rep.WriteHTML(&page, ""); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	if v, c := strings.Index(html, "FAIL: factory: 3 events unaccounted"), strings.Index(html, "echarts.init"); v < 0 || c < 0 || v > c {
		t.Errorf("the HTML report does not lead with the verdict (verdict at %d, first chart at %d)", v, c)
	}
}

func TestAlertLatencyCountsTheFirstDeliveryOnly(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	s := &scenarioRun{name: "factory", stream: "s", window: hopping(30*time.Second, 10*time.Second), perSec: map[int64]int{}}
	s.pace = pace{due: func(e Event) time.Time { return e.Arrival }, marks: []mark{{t0.Add(30 * time.Second), t0.Add(30 * time.Second)}}}
	end := t0.Add(30 * time.Second)
	alert := ReceivedAlert{Rule: "failure-risk", State: "firing", Stream: "s", Entity: "press-001", WindowEnd: end, Received: end.Add(2 * time.Second)}
	// The same alert again, 30 s later, from the worker that took over.
	repeat := alert
	repeat.Received = end.Add(32 * time.Second)
	sr := s.measure(nil, 0, nil, []ReceivedAlert{repeat, alert}, &Report{Started: t0})
	if sr.AlertLatency.N != 1 || sr.AlertLatency.P99 != 2*time.Second || sr.AlertRepeats != 1 {
		t.Errorf("latency %+v, repeats %d; want one alert at 2s and one repeat", sr.AlertLatency, sr.AlertRepeats)
	}
}
