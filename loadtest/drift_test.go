package loadtest

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/sinks"
)

// driftCfg is the demo factory pipeline as far as the drift report reads
// it: its name and its window's features with their fields.
func driftCfg() *config.Config {
	return &config.Config{Pipeline: "factory-demo", Windows: []config.Window{{Name: "machine_30s", Stream: "s", Features: []config.Feature{
		{Name: "vibration_mean", Agg: "mean", Field: "vibration_rms"},
		{Name: "temperature_mean", Agg: "mean", Field: "temperature_c"},
		{Name: "temperature_max", Agg: "max", Field: "temperature_c"},
		{Name: "temperature_p95", Agg: "quantile", Field: "temperature_c"},
		{Name: "rpm_mean", Agg: "mean", Field: "rpm"},
		{Name: "readings", Agg: "count"},
	}}}}
}

func TestParseAlertReadsDriftAlerts(t *testing.T) {
	// The drift alert as the alert sink sends it.
	sent := sinks.Alert{Rule: "sensor-drift", State: sinks.StateFiring, Severity: "warning", Pipeline: "factory-demo", Window: "machine_30s",
		PeriodStart: time.Date(2026, 12, 2, 9, 1, 0, 0, time.UTC), PeriodEnd: time.Date(2026, 12, 2, 9, 2, 0, 0, time.UTC),
		Drift: []sinks.DriftFeature{
			{Feature: "temperature_mean", Distance: 0.31, Threshold: 0.1, Method: "Robust", Drifted: true},
			{Feature: "temperature_p95", Distance: math.NaN(), Threshold: 0.1, Method: "Robust", Drifted: true},
			{Feature: "rpm_mean", Distance: 0.02, Threshold: 0.1, Method: "Robust"}},
		Violations: "s3://b/monitoring/factory-demo/machine_30s/2026/12/02/09/constraint_violations.json", Subject: "drift"}
	msg, err := json.Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := json.Marshal(map[string]string{"Type": "Notification", "Message": string(msg)})
	a, ok := parseAlert(string(env))
	if !ok || !a.IsDrift() {
		t.Fatalf("a drift alert was not read as one: %+v, %v", a, ok)
	}
	if a.Pipeline != "factory-demo" || a.Window != "machine_30s" || !a.PeriodEnd.Equal(sent.PeriodEnd) || !a.PeriodStart.Equal(sent.PeriodStart) ||
		a.Violations != sent.Violations || len(a.Drift) != 3 {
		t.Fatalf("drift alert read as %+v", a)
	}
	if f := a.Drift[0]; f.Feature != "temperature_mean" || f.Distance != 0.31 || f.Threshold != 0.1 || f.Method != "Robust" || !f.Drifted {
		t.Errorf("first feature read as %+v", f)
	}
	// A distance the sink could not send is unknown, not 0.
	if f := a.Drift[1]; !math.IsNaN(f.Distance) {
		t.Errorf("a feature without a distance read as %+v", f)
	}
	if got := a.named(); len(got) != 2 || got[1].Feature != "temperature_p95" {
		t.Errorf("named features %+v, want temperature_mean and temperature_p95 (rpm_mean did not drift)", got)
	}

	score, ok := parseAlert(`{"rule":"failure-risk","state":"firing","stream":"s","entity":"press-001","score":0.97,"window_end":"2026-12-02T09:00:30Z",
		"top_features":[{"feature":"vibration_max","value":0.9,"contribution":1.2}]}`)
	if !ok || score.IsDrift() || len(score.TopFeatures) != 1 || score.TopFeatures[0] != "vibration_max" {
		t.Errorf("a score alert read as %+v (drift %v, ok %v)", score, score.IsDrift(), ok)
	}
	if _, ok := parseAlert(`{"rule":"endpoint-breaker","state":"firing","message":"circuit open"}`); ok {
		t.Error("a breaker notice (no entity, no window) was read as an alert the run judges")
	}
}

// A synthetic alert stream around a shift at T of temperature_c: each
// alert tests one of the report's rules.
func TestDriftReportJudgesAlertsAgainstTheShift(t *testing.T) {
	runStart := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	shiftAt := runStart.Add(90 * time.Second)
	shift := &ShiftTruth{Field: "temperature_c", By: 4.12, Machines: []string{"press-001", "press-004"}, FleetSize: 4, Start: shiftAt}
	drift := func(state string, from, to, received time.Duration, fs ...sinks.DriftFeature) ReceivedAlert {
		return ReceivedAlert{Rule: "sensor-drift", State: state, Pipeline: "factory-demo", Window: "machine_30s",
			PeriodStart: shiftAt.Add(from), PeriodEnd: shiftAt.Add(to), Received: shiftAt.Add(received), Drift: fs}
	}
	on := func(f string, d float64) sinks.DriftFeature {
		return sinks.DriftFeature{Feature: f, Distance: d, Threshold: 0.1, Method: "Robust", Drifted: true}
	}
	early := drift("firing", -60*time.Second, 0, 2*time.Second, on("temperature_mean", 0.12))                 // its period ended as the shift began
	straddle := drift("firing", -30*time.Second, 30*time.Second, 40*time.Second, on("temperature_max", 0.21), // the first after the shift
		sinks.DriftFeature{Feature: "vibration_mean", Distance: 0.03, Threshold: 0.1, Drifted: false}) // listed, not drifted: not named
	later := drift("firing", 0, 60*time.Second, 75*time.Second, on("temperature_mean", 0.31), on("temperature_p95", 0.27))
	again := later
	again.Received = later.Received.Add(30 * time.Second) // delivered again after a failover
	untouched := drift("firing", 60*time.Second, 120*time.Second, 135*time.Second, on("rpm_mean", 0.14), on("score", 0.2))
	resolved := drift("resolved", 120*time.Second, 180*time.Second, 190*time.Second, sinks.DriftFeature{Feature: "rpm_mean", Distance: 0.02, Threshold: 0.1})
	otherPipeline := drift("firing", 0, 60*time.Second, 3*time.Second, on("readings", 0.5))
	otherPipeline.Pipeline = "churn"
	score := ReceivedAlert{Rule: "failure-risk", State: "firing", Stream: "s", Entity: "press-001", Received: shiftAt}

	cfg := driftCfg()
	alerts := driftAlertsOf(cfg, []ReceivedAlert{later, early, score, straddle, again, untouched, resolved, otherPipeline})
	if len(alerts) != 6 {
		t.Fatalf("%d alerts kept as the pipeline's drift alerts, want 6 (not the score alert, not churn's)", len(alerts))
	}
	d := driftReport(shift, featureFields(cfg), alerts, runStart, time.Time{})

	if want := []string{"temperature_max", "temperature_mean", "temperature_p95"}; !slices.Equal(d.Features, want) {
		t.Errorf("features of the shifted field %v, want %v", d.Features, want)
	}
	if d.ShiftOffset != 90*time.Second {
		t.Errorf("shift %s into the run, want 90s", d.ShiftOffset)
	}
	if d.Firing != 4 || d.Resolved != 1 || d.Repeats != 1 {
		t.Errorf("firing %d, resolved %d, repeats %d; want 4, 1, 1", d.Firing, d.Resolved, d.Repeats)
	}
	if d.First == nil || !d.First.PeriodEnd.Equal(straddle.PeriodEnd) {
		t.Fatalf("first drift alert %+v, want the one for the period straddling the shift", d.First)
	}
	if d.ReceivedDelay != 40*time.Second || !d.HasPeriod || d.PeriodDelay != 30*time.Second {
		t.Errorf("delay: received %s, period end %s (has period %v); want 40s and 30s", d.ReceivedDelay, d.PeriodDelay, d.HasPeriod)
	}
	if len(d.FirstNamed) != 1 || d.FirstNamed[0].Feature != "temperature_max" {
		t.Errorf("the first alert named %+v, want temperature_max alone", d.FirstNamed)
	}
	if len(d.Untouched) != 1 || !slices.Equal(d.UntouchedFeatures, []string{"rpm_mean"}) || !strings.Contains(d.Untouched[0], "rpm_mean") {
		t.Errorf("untouched %v (features %v), want one alert naming rpm_mean", d.Untouched, d.UntouchedFeatures)
	}
	if !slices.Equal(d.Other, []string{"score"}) {
		t.Errorf("features outside the window %v, want [score]", d.Other)
	}
	if len(d.Early) != 1 || !strings.Contains(d.Early[0], "[09:00:30, 09:01:30)") {
		t.Errorf("alerts before the shift %v, want the one whose period ended at the shift", d.Early)
	}

	// Without a shift every drift alert naming a window feature is a
	// false alarm, and there is no first alert to time.
	none := driftReport(nil, featureFields(cfg), alerts, runStart, time.Time{})
	if none.First != nil || len(none.Early) != 0 || !slices.Equal(none.UntouchedFeatures, []string{"rpm_mean", "temperature_max", "temperature_mean", "temperature_p95"}) ||
		len(none.Untouched) != 4 {
		t.Errorf("with nothing shifted: first %v, early %v, untouched %v %v", none.First, none.Early, none.Untouched, none.UntouchedFeatures)
	}

	// A shift that no alert followed is marked.
	quiet := driftReport(shift, featureFields(cfg), []ReceivedAlert{early}, runStart, time.Time{})
	if quiet.First != nil || !slices.ContainsFunc(quiet.claims(), func(c claim) bool { return c.label == "first drift alert" && c.bad }) {
		t.Errorf("a shift with only a false alarm before it: first %v, claims %+v", quiet.First, quiet.claims())
	}
}

// The run's measurement keeps drift alerts out of the score alerts'
// latency and detection, and gives them the Drift section.
func TestMeasureSeparatesDriftAlertsFromScoreAlerts(t *testing.T) {
	start := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	cfg := driftCfg()
	s := &scenarioRun{name: "factory", cfg: cfg, stream: "s", window: cfg.Windows[0], perSec: map[int64]int{},
		failures: []Failure{{Machine: "press-002", At: start.Add(time.Minute)}},
		shift:    &ShiftTruth{Field: "temperature_c", By: 4, Machines: []string{"press-001"}, FleetSize: 2, Start: start.Add(20 * time.Second)}}
	end := start.Add(30 * time.Second)
	s.pace = pace{due: func(e Event) time.Time { return e.Arrival }, marks: []mark{{end, end}}}
	score := ReceivedAlert{Rule: "failure-risk", State: "firing", Stream: "s", Entity: "press-002", WindowEnd: end, Received: end.Add(time.Second)}
	// A drift alert that also names the stream, as a sink might.
	drift := ReceivedAlert{Rule: "sensor-drift", State: "firing", Stream: "s", Pipeline: "factory-demo", Window: "machine_30s",
		PeriodStart: start, PeriodEnd: start.Add(time.Minute), WindowEnd: end, Received: start.Add(65 * time.Second),
		Drift: []sinks.DriftFeature{{Feature: "temperature_mean", Distance: 0.3, Threshold: 0.1, Drifted: true}}}
	sr := s.measure(nil, 0, nil, []ReceivedAlert{score, drift}, &Report{Started: start, PublishEnded: start.Add(2 * time.Minute)})
	if sr.AlertLatency.N != 1 || sr.Detection.FalsePositives != 0 || sr.Detection.TruePositives != 1 {
		t.Errorf("score alerts: latency over %d, detection %+v; want the one score alert only", sr.AlertLatency.N, sr.Detection)
	}
	if sr.Drift == nil || sr.Drift.First == nil || sr.Drift.ReceivedDelay != 45*time.Second || sr.Drift.PeriodDelay != 40*time.Second {
		t.Fatalf("drift report %+v, want the drift alert 45 s after the shift (period end 40 s)", sr.Drift)
	}
	// No shift and no drift alert: no Drift section.
	s.shift = nil
	if sr := s.measure(nil, 0, nil, []ReceivedAlert{score}, &Report{Started: start}); sr.Drift != nil {
		t.Errorf("a run without shift or drift alerts has a drift report: %+v", sr.Drift)
	}
}

func TestSummaryAndReportShowTheDriftSection(t *testing.T) {
	runStart := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	shiftAt := runStart.Add(40 * time.Second)
	cfg := driftCfg()
	alerts := []ReceivedAlert{
		{Rule: "sensor-drift", State: "firing", Pipeline: "factory-demo", Window: "machine_30s", PeriodStart: runStart.Add(time.Minute),
			PeriodEnd: runStart.Add(2 * time.Minute), Received: runStart.Add(125 * time.Second),
			Drift: []sinks.DriftFeature{{Feature: "temperature_mean", Distance: 0.312, Threshold: 0.1, Method: "Robust", Drifted: true}}},
		{Rule: "sensor-drift", State: "firing", Pipeline: "factory-demo", Window: "machine_30s", PeriodStart: runStart,
			PeriodEnd: runStart.Add(time.Minute), Received: runStart.Add(62 * time.Second),
			Drift: []sinks.DriftFeature{{Feature: "rpm_mean", Distance: 0.15, Threshold: 0.1, Method: "Robust", Drifted: true}}},
	}
	shift := &ShiftTruth{Field: "temperature_c", By: 4.123, Machines: []string{"a", "b"}, FleetSize: 4, Start: shiftAt}
	sr := &ScenarioReport{Name: "factory", Stream: "s", PerSecond: map[int64]int{}, Drift: driftReport(shift, featureFields(cfg), alerts, runStart, time.Time{})}
	rep := &Report{Started: runStart, Duration: 3 * time.Minute, Scenarios: []*ScenarioReport{sr}, Alerts: alerts}
	var out bytes.Buffer
	rep.WriteSummary(&out)
	s := out.String()
	for _, want := range []string{
		"factory: Drift",
		"temperature_c +4.123 °C on 2 of 4 machines from 09:00:40.000 (40s into the run)",
		"received 1m25s after the shift (on the queue); its period [09:01:00, 09:02:00) ended 1m20s after the shift (event time); named temperature_mean (distance 0.312, threshold 0.100)",
		"untouched features  1 drift alert named rpm_mean  <-",
		"before the shift    no drift alert for a period before the shift",
		"drift on untouched  sensor-drift on machine_30s period [09:00:00, 09:01:00): rpm_mean",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if d, v := strings.Index(s, "factory: Drift"), strings.Index(s, "details"); d > v {
		t.Errorf("the Drift section comes after the details:\n%s", s)
	}
	var page bytes.Buffer
	if err := rep.WriteHTML(&page, ""); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	for _, want := range []string{"<h3>Drift</h3>", "ended 1m20s after the shift (event time)", "1 drift alert named rpm_mean",
		"drift alerts against the calibration shift", `"name":"shift"`} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
}

// Alerts come off a queue anyone who can publish to the topic can write
// to: whatever arrives, parseAlert must not panic, and what it accepts is
// either a score alert (an entity) or a drift alert.
func FuzzParseAlert(f *testing.F) {
	f.Add(`{"rule":"failure-risk","state":"firing","stream":"s","entity":"press-001","score":0.97,"top_features":[{"feature":"vibration_max"}]}`)
	f.Add(`{"Type":"Notification","Message":"{\"rule\":\"d\",\"state\":\"firing\",\"window\":\"w\",\"period_end\":\"2026-12-02T09:02:00Z\",\"drift\":[{\"feature\":\"t\",\"distance\":null}]}"}`)
	f.Add(`{"rule":"d","state":"resolved","pipeline":"p","window":"w","drift":[]}`)
	f.Add(`{"rule":"endpoint-breaker","message":"open"}`)
	f.Add(`{"drift":[{"drifted":"yes"}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		a, ok := parseAlert(body)
		if !ok {
			return
		}
		if a.Entity == "" && !a.IsDrift() {
			t.Fatalf("accepted an alert that is neither about an entity nor a drift alert: %+v", a)
		}
		for _, n := range a.named() {
			if !n.Drifted {
				t.Fatalf("named a feature the alert says did not drift: %+v", n)
			}
		}
	})
}
