package retrain

import (
	"encoding/json"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// hour is the end of hourly period h (it starts an hour before).
func hour(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

// drift is window w's verdict for hourly period h.
func drift(w string, h int, drifted bool) DriftVerdict {
	return DriftVerdict{Window: w, Scorers: []ScorerModel{{Scorer: "failure"}}, PeriodStart: hour(h - 1), PeriodEnd: hour(h),
		Features:   []Feature{{Name: "temp_mean", Distance: 0.4, Threshold: 0.1, Method: "Simple", Drifted: drifted}, {Name: "rpm_max", Distance: 0.01, Threshold: 0.1, Method: "Simple"}},
		Violations: "s3://bkt/monitoring/factory/" + w + "/" + hour(h-1).Format("2006/01/02/15") + "/constraint_violations.json"}
}

// quality is scorer s's verdict on model m for hourly period h.
func quality(s, m string, h int, violated bool) QualityVerdict {
	return QualityVerdict{Scorer: s, ModelVersion: m, PeriodStart: hour(h - 1), PeriodEnd: hour(h),
		Metrics: []Metric{{Name: "precision", Value: 0.6, Threshold: 0.8, Comparison: "LessThanThreshold", Violated: violated}}}
}

// step is one verdict and what the Trigger must make of it.
type step struct {
	d       *DriftVerdict
	q       *QualityVerdict
	outcome Outcome
	run     int
}

func d(w string, h int, bad bool, o Outcome, run int) step {
	v := drift(w, h, bad)
	return step{d: &v, outcome: o, run: run}
}

func q(s, m string, h int, bad bool, o Outcome, run int) step {
	v := quality(s, m, h, bad)
	return step{q: &v, outcome: o, run: run}
}

func TestTriggerRules(t *testing.T) {
	// A drifting window held for a day and then some: three to ask,
	// twenty-three held back, and the period a full day after the request
	// asks again.
	dayLong := []step{d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 3, true, Requested, 3)}
	for h := 4; h < 27; h++ {
		dayLong = append(dayLong, d("w", h, true, CoolingDown, 3))
	}
	dayLong = append(dayLong, d("w", 27, true, Requested, 3))

	cases := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"three drifted periods in a row ask", Config{}, []step{
			d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 3, true, Requested, 3)}},
		{"a healthy period resets the run", Config{}, []step{
			d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 3, false, Healthy, 0),
			d("w", 4, true, Building, 1), d("w", 5, true, Building, 2), d("w", 6, true, Requested, 3)}},
		{"a missing period resets the run", Config{}, []step{
			d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 4, true, Building, 1),
			d("w", 5, true, Building, 2), d("w", 6, true, Requested, 3)}},
		{"the cooldown holds a day of event time, then asks again", Config{}, dayLong},
		{"healthy periods do not end the cooldown", Config{}, []step{
			d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 3, true, Requested, 3),
			d("w", 4, false, Healthy, 0), d("w", 5, true, Building, 1), d("w", 6, true, Building, 2), d("w", 7, true, CoolingDown, 3)}},
		{"an older period is stale and changes nothing", Config{}, []step{
			d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 1, false, Stale, 0), d("w", 3, true, Requested, 3)}},
		{"a period judged again replaces its verdict", Config{}, []step{
			d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 3, false, Healthy, 0), d("w", 3, true, Requested, 3)}},
		{"the requesting period judged again does not ask twice", Config{}, []step{
			d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 3, true, Requested, 3), d("w", 3, true, CoolingDown, 3),
			d("w", 3, false, Healthy, 0), d("w", 4, true, Building, 1)}},
		// Both windows feed scorer "failure": it is retrained once.
		{"windows run apart, and one scorer is asked for once a cooldown", Config{}, []step{
			d("a", 1, true, Building, 1), d("a", 2, true, Building, 2),
			d("b", 1, true, Building, 1), d("b", 2, true, Building, 2), d("b", 3, true, Requested, 3),
			d("a", 3, true, CoolingDown, 3), d("b", 4, true, CoolingDown, 3), d("a", 27, true, Building, 1)}},
		{"a scorer retrained for drift is not asked for by its quality within the cooldown", Config{}, []step{
			d("w", 1, true, Building, 1), d("w", 2, true, Building, 2), d("w", 3, true, Requested, 3),
			q("failure", "v1", 4, true, CoolingDown, 1), q("failure", "v1", 27, true, Requested, 1)}},
		{"N and the cooldown are configurable", Config{DriftPeriods: 1, Cooldown: 2 * time.Hour}, []step{
			d("w", 1, true, Requested, 1), d("w", 2, true, CoolingDown, 1), d("w", 3, true, Requested, 1)}},
		{"one quality violation asks, the next period cools down", Config{}, []step{
			q("s", "v1", 1, true, Requested, 1), q("s", "v1", 2, true, CoolingDown, 1), q("s", "v1", 3, false, Healthy, 0)}},
		{"a new model version starts a new run", Config{QualityPeriods: 2}, []step{
			q("s", "v1", 1, true, Building, 1), q("s", "v2", 2, true, Building, 1), q("s", "v2", 3, true, Requested, 2)}},
		{"the cooldown outlives a new model version", Config{}, []step{
			q("s", "v1", 1, true, Requested, 1), q("s", "v2", 2, true, CoolingDown, 1), q("s", "v2", 25, true, Requested, 1)}},
		{"drift and quality runs are apart", Config{QualityPeriods: 2}, []step{
			d("failure", 1, true, Building, 1), q("failure", "v1", 1, true, Building, 1), d("failure", 2, false, Healthy, 0),
			q("failure", "v1", 2, true, Requested, 2)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Pipeline = "factory"
			tr, err := NewTrigger(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				var dec Decision
				var what string
				if s.d != nil {
					dec, err = tr.Drift(*s.d)
					what = "drift " + s.d.Window + " " + stamp(s.d.PeriodEnd)
				} else {
					dec, err = tr.Quality(*s.q)
					what = "quality " + s.q.Scorer + " " + s.q.ModelVersion + " " + stamp(s.q.PeriodEnd)
				}
				if err != nil {
					t.Fatalf("step %d (%s): %v", i, what, err)
				}
				if dec.Outcome != s.outcome || dec.Run != s.run {
					t.Fatalf("step %d (%s): %s run %d (%s); want %s run %d", i, what, dec.Outcome, dec.Run, dec.Why, s.outcome, s.run)
				}
				if (len(dec.Requests) == 1) != (dec.Outcome == Requested) || len(dec.Requests) > 1 {
					t.Fatalf("step %d (%s): outcome %s with %d requests", i, what, dec.Outcome, len(dec.Requests))
				}
				if len(dec.Requests) == 1 && len(dec.Requests[0].Periods) != s.run {
					t.Fatalf("step %d (%s): request lists %d periods; want the run's %d", i, what, len(dec.Requests[0].Periods), s.run)
				}
			}
		})
	}
}

func TestDriftRequestEvidence(t *testing.T) {
	tr, err := NewTrigger(Config{Pipeline: "factory", ResultsPrefix: "s3://bkt/results/", GroundTruthPrefix: "s3://bkt/labels/"})
	if err != nil {
		t.Fatal(err)
	}
	var dec Decision
	for h := 1; h <= 3; h++ {
		v := drift("machine_5m", h, true)
		v.Scorers = []ScorerModel{{Scorer: "failure", ModelVersion: "sha256:2da5e2a8df7d5dfc"}, {Scorer: "wear"}}
		if h == 3 {
			v.Features = []Feature{
				{Name: "a", Distance: 0.2, Threshold: 0.1, Method: "Simple", Drifted: true},        // 2x
				{Name: "b", Distance: math.NaN(), Threshold: 0.1, Method: "Simple", Drifted: true}, // undefined: last
				{Name: "c", Distance: 0.5, Threshold: 0.1, Method: "Robust", Drifted: true},        // 5x: first
				{Name: "d", Distance: 0.05, Threshold: 0.1, Method: "Simple"},                      // not drifted: left out
			}
		}
		if dec, err = tr.Drift(v); err != nil {
			t.Fatal(err)
		}
	}
	if len(dec.Requests) != 2 {
		t.Fatalf("%d requests (%s); want one per scorer reading the window", len(dec.Requests), dec.Why)
	}
	r, wear := dec.Requests[0], dec.Requests[1]
	if wear.Scorer != "wear" || wear.ModelVersion != "" || wear.RequestID == r.RequestID || len(wear.Features) != len(r.Features) {
		t.Errorf("the second scorer's request: %+v", wear)
	}
	var names []string
	for _, f := range r.Features {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "c,a,b" {
		t.Errorf("features %s; want the drifted ones worst first, undefined last: c,a,b", got)
	}
	if r.Reason != ReasonDrift || r.Window != "machine_5m" || r.Scorer != "failure" || r.ModelVersion != "sha256:2da5e2a8df7d5dfc" {
		t.Errorf("subject: %+v", r)
	}
	if !r.At.Equal(hour(3)) || !r.Periods[0].Start.Equal(hour(0)) || !r.Periods[2].End.Equal(hour(3)) {
		t.Errorf("at %s, periods %+v; want the three hours ending %s", r.At, r.Periods, stamp(hour(3)))
	}
	if want := drift("machine_5m", 2, true).Violations; r.Periods[1].Violations != want {
		t.Errorf("period 2's violations %q; want %q", r.Periods[1].Violations, want)
	}
	if r.Rule != (Rule{Periods: 3, CooldownSeconds: 86400}) {
		t.Errorf("rule %+v", r.Rule)
	}
	if r.Data != (Data{ResultsPrefix: "s3://bkt/results/", GroundTruthPrefix: "s3://bkt/labels/", From: hour(3).Add(-7 * 24 * time.Hour), To: hour(3)}) {
		t.Errorf("data %+v", r.Data)
	}
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `{"name":"b","distance":null,"threshold":0.1,"method":"Simple"}`) {
		t.Errorf("an undefined distance must be null: %s", body)
	}
	var back RetrainingRequested
	if err := json.Unmarshal(body, &back); err != nil || !math.IsNaN(float64(back.Features[2].Distance)) {
		t.Errorf("null reads back as NaN: %v %+v", err, back.Features)
	}
}

func TestEvidenceIsBounded(t *testing.T) {
	tr, _ := NewTrigger(Config{Pipeline: "p", DriftPeriods: 1, QualityPeriods: 1})
	v := drift("w", 1, true)
	v.Features = nil
	qv := quality("s", "v1", 1, true)
	qv.Metrics = nil
	for i := range MaxEvidence + 7 {
		name := "f" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		v.Features = append(v.Features, Feature{Name: name, Distance: float64(i), Threshold: 1, Drifted: true})
		qv.Metrics = append(qv.Metrics, Metric{Name: name, Value: float64(i), Threshold: 1, Violated: true})
	}
	dd, _ := tr.Drift(v)
	qd, _ := tr.Quality(qv)
	for _, r := range []*RetrainingRequested{dd.Requests[0], qd.Requests[0]} {
		if n := len(r.Features) + len(r.Metrics); n != MaxEvidence || r.Omitted != 7 {
			t.Errorf("%s: %d items, %d omitted; want %d and 7", r.Reason, n, r.Omitted, MaxEvidence)
		}
	}
	if got := dd.Requests[0].Features[0].Distance; got != MaxEvidence+6 {
		t.Errorf("the worst feature must be kept first, got distance %v", got)
	}
}

func TestRequestIDIsStableAcrossAFailover(t *testing.T) {
	ids := map[string]bool{}
	for range 2 { // two Triggers: the reducer before and after a failover
		tr, _ := NewTrigger(Config{Pipeline: "factory"})
		var dec Decision
		for h := 5; h <= 7; h++ {
			dec, _ = tr.Drift(drift("w", h, true))
		}
		ids[dec.Requests[0].RequestID] = true
	}
	if len(ids) != 1 {
		t.Errorf("request ids %v; a replay of the same periods must give one id", ids)
	}
	if RequestID("factory", ReasonDrift, "w", hour(7)) == RequestID("factory", ReasonDrift, "w", hour(8)) ||
		RequestID("factory", ReasonDrift, "w", hour(7)) == RequestID("factory", ReasonQuality, "w", hour(7)) {
		t.Error("request ids must differ by period and reason")
	}
}

func TestStateIsBoundedPerWindow(t *testing.T) {
	tr, _ := NewTrigger(Config{Pipeline: "p"})
	for h := 1; h <= 1000; h++ {
		for _, w := range []string{"a", "b"} {
			if _, err := tr.Drift(drift(w, h, h%5 != 0)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tr.Quality(quality("s", "v"+string(rune('0'+h%3)), h, true)); err != nil {
			t.Fatal(err)
		}
	}
	if len(tr.state) != 3 {
		t.Errorf("%d runs kept; want one per window and scorer (3)", len(tr.state))
	}
	for k, st := range tr.state {
		need := tr.cfg.DriftPeriods
		if k.reason == ReasonQuality {
			need = tr.cfg.QualityPeriods
		}
		if len(st.marks) > need || cap(st.marks) > need {
			t.Errorf("%v keeps %d periods (capacity %d); want at most %d", k, len(st.marks), cap(st.marks), need)
		}
	}
}

func TestBadInputNamesTheField(t *testing.T) {
	tr, _ := NewTrigger(Config{Pipeline: "p"})
	bad := func(mut func(*DriftVerdict)) DriftVerdict { v := drift("w", 1, true); mut(&v); return v }
	for _, c := range []struct {
		v    DriftVerdict
		want string
	}{
		{bad(func(v *DriftVerdict) { v.Window = "" }), "window is required"},
		{bad(func(v *DriftVerdict) { v.Scorers = nil }), "scorers: at least one is required"},
		{bad(func(v *DriftVerdict) { v.Scorers[0].Scorer = "" }), "scorers[0]: scorer is required"},
		{bad(func(v *DriftVerdict) { v.PeriodStart = time.Time{} }), "period start and end are required"},
		{bad(func(v *DriftVerdict) { v.PeriodStart = v.PeriodEnd }), "is not before its end"},
		{bad(func(v *DriftVerdict) { v.Violations = "/tmp/x.json" }), `violations: "/tmp/x.json" is not an s3://bucket/key URI`},
		{bad(func(v *DriftVerdict) { v.Features[1].Name = "" }), "features[1]: name is required"},
	} {
		if _, err := tr.Drift(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v; want an error saying %q", err, c.want)
		}
	}
	qv := quality("s", "", 1, true)
	if _, err := tr.Quality(qv); err == nil || !strings.Contains(err.Error(), "model version is required") {
		t.Errorf("quality verdict without a model version: %v", err)
	}
	qv = quality("s", "v1", 1, true)
	qv.Metrics[0].Name = ""
	if _, err := tr.Quality(qv); err == nil || !strings.Contains(err.Error(), "metrics[0]: name is required") {
		t.Errorf("quality metric without a name: %v", err)
	}
	if len(tr.state) != 0 {
		t.Errorf("refused verdicts must leave no state, got %d runs", len(tr.state))
	}
	_, err := NewTrigger(Config{DriftPeriods: -1, QualityPeriods: MaxPeriods + 1, Cooldown: -time.Hour, ResultsPrefix: "bkt/results"})
	for _, want := range []string{"pipeline: required", "drift_periods: -1 is outside 1..48", "quality_periods: 49 is outside 1..48",
		"cooldown: -1h0m0s is negative", `results_prefix: "bkt/results" is not an s3://bucket/key URI`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config error %v; want it to say %q", err, want)
		}
	}
	if c, _ := NewTrigger(Config{Pipeline: "p"}); c.Config() != (Config{Pipeline: "p", DriftPeriods: DefaultDriftPeriods,
		QualityPeriods: DefaultQualityPeriods, Cooldown: DefaultCooldown, DataLookback: DefaultDataLookback}) {
		t.Errorf("defaults: %+v", c.Config())
	}
}

// BenchmarkTriggerState measures what the Trigger holds per window with a
// full run of the default three periods (docs/flywheel.md, "State and
// memory"): the violations URIs are the verdicts', so they are not counted.
func BenchmarkTriggerState(b *testing.B) {
	const windows = 10000
	vs := make([][]DriftVerdict, windows)
	for i := range vs {
		w := "window_" + strconv.Itoa(i)
		for h := 1; h <= DefaultDriftPeriods; h++ {
			vs[i] = append(vs[i], drift(w, h, h < DefaultDriftPeriods))
		}
	}
	var perWindow float64
	for b.Loop() {
		tr, _ := NewTrigger(Config{Pipeline: "factory"})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, run := range vs {
			for _, v := range run {
				if _, err := tr.Drift(v); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perWindow = float64(after.HeapAlloc-before.HeapAlloc) / windows
		runtime.KeepAlive(tr)
	}
	b.ReportMetric(perWindow, "B/window")
}
