package sinks

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// qualityScript, one period a minute: f1 falls under its constraint at
// 0-2 (fires at 1, fire_after 2) and recovers from 3 (resolves at 4);
// auc stays above its own throughout.
var qualityScript = "VVV......."

func qualityReport(p int, version string) QualityReport {
	start, end := driftPeriod(p)
	f1 := QualityMetric{Metric: "f1", Value: 0.81, Threshold: 0.7, Comparison: "LessThanThreshold"}
	if qualityScript[p] == 'V' {
		f1.Value, f1.Violated = 0.52, true
	}
	return QualityReport{Pipeline: "factory", Scorer: "failure", ModelVersion: version, PeriodStart: start, PeriodEnd: end,
		Violations: "s3://lake/monitoring/model-quality/factory/failure/p/" + version + "/constraint_violations.json",
		Metrics:    []QualityMetric{f1, {Metric: "auc", Value: 0.93, Threshold: 0.8, Comparison: "LessThanThreshold"}}}
}

// TestAlertsQualityHysteresis: through the real SNS to SQS path, a quality
// rule fires after fire_after periods of a violated metric, naming the
// metric, its value and its constraint, and resolves after clear_after;
// the rule restricted to one model version ignores another's reports,
// and score rules never see quality reports.
func TestAlertsQualityHysteresis(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	topic, queue := env.CreateTopicQueue(t, false)
	rules := []AlertRule{
		{Name: "model-quality", Quality: "failure", Model: "xgb-7", Levels: []AlertLevel{{"critical", 0}}, FireAfter: 2, ClearAfter: 2},
		{Name: "risk", Levels: []AlertLevel{{"warning", 0.5}}},
	}
	s, err := NewAlerts(AlertOptions{Client: env.SNS, TopicARN: topic, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	for p := range len(qualityScript) {
		for _, v := range []string{"xgb-7", "xgb-8"} {
			if err := s.Quality(devstacktest.Ctx(t), qualityReport(p, v)); err != nil {
				t.Fatalf("period %d: %v", p, err)
			}
		}
	}
	got := drain(t, env, queue, 2, 2*time.Second)
	slices.SortFunc(got, func(a, b received) int { return a.alert.PeriodEnd.Compare(b.alert.PeriodEnd) })
	want := []struct {
		state   string
		period  int
		subject string
	}{
		{StateFiring, 1, "[CRITICAL] model-quality firing: failure xgb-7 f1 0.52 (want >= 0.70)"},
		{StateResolved, 4, "[CRITICAL] model-quality resolved: failure xgb-7 f1 0.81 (want >= 0.70)"},
	}
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("got %s at %v: %s", g.alert.State, g.alert.PeriodEnd, g.subj)
		}
		t.Fatalf("received %d alerts, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i].alert
		start, end := driftPeriod(w.period)
		if g.Rule != "model-quality" || g.State != w.state || g.Scorer != "failure" || g.Model != "xgb-7" || g.Pipeline != "factory" ||
			!g.PeriodStart.Equal(start) || !g.PeriodEnd.Equal(end) || g.Window != "" || !strings.HasSuffix(g.Violations, "xgb-7/constraint_violations.json") {
			t.Errorf("alert %d = %+v, want %s of period %d", i, g, w.state, w.period)
		}
		if len(g.Quality) != 1 || g.Quality[0] != qualityReport(w.period, "xgb-7").Metrics[0] {
			t.Errorf("alert %d quality %+v, want f1 of period %d alone", i, g.Quality, w.period)
		}
		if got[i].subj != w.subject {
			t.Errorf("alert %d subject %q, want %q", i, got[i].subj, w.subject)
		}
		if got[i].attrs["scorer"] != "failure" || got[i].attrs["model"] != "xgb-7" {
			t.Errorf("alert %d attributes %v, want scorer and model", i, got[i].attrs)
		}
	}
}

// A quality report the rules cannot judge is refused, naming the field.
func TestAlertsQualityRefusesBadInput(t *testing.T) {
	h := &alertHandler{}
	a := &Alerts{h: h}
	for _, tc := range []struct {
		name string
		edit func(*QualityReport)
		want string
	}{
		{"no scorer", func(r *QualityReport) { r.Scorer = "" }, "scorer is required"},
		{"no period end", func(r *QualityReport) { r.PeriodEnd = time.Time{} }, "period end is required"},
		{"metric twice", func(r *QualityReport) { r.Metrics[1].Metric = "f1" }, `metrics[1]: metric "f1" is listed twice`},
		{"unnamed metric", func(r *QualityReport) { r.Metrics[0].Metric = "" }, "metrics[0]: metric name is required"},
	} {
		r := qualityReport(0, "v1")
		tc.edit(&r)
		if err := a.Quality(t.Context(), r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A metric without a value (too few rows for it) travels as null and
// comes back NaN, so it cannot make an alert unsendable.
func TestQualityMetricJSONCarriesNaNAsNull(t *testing.T) {
	b, err := json.Marshal(QualityMetric{Metric: "auc", Value: math.NaN(), Threshold: 0.8, Comparison: "LessThanThreshold"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"metric":"auc","value":null,"threshold":0.8,"comparison":"LessThanThreshold","violated":false}`; string(b) != want {
		t.Errorf("json %s, want %s", b, want)
	}
	var m QualityMetric
	if err := json.Unmarshal(b, &m); err != nil || !math.IsNaN(m.Value) || m.Threshold != 0.8 {
		t.Errorf("round trip %+v, %v", m, err)
	}
}
