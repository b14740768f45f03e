package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// QualityMetric is one model-quality metric's verdict for a period.
type QualityMetric struct {
	// Metric is Model Monitor's name of it: accuracy, precision, recall,
	// f1, auc, mae, rmse, ...
	Metric string `json:"metric"`
	// Value is the period's value; Threshold and Comparison its
	// constraint (Model Monitor's comparison operator, e.g.
	// LessThanThreshold). NaN (null in a message) when there is none.
	Value      float64 `json:"value"`
	Threshold  float64 `json:"threshold"`
	Comparison string  `json:"comparison,omitempty"`
	// Violated is the monitor's verdict: the monitor owns the
	// constraint, the alert rules only count verdicts.
	Violated bool `json:"violated"`
}

type qualityMetricJSON struct {
	Metric     string   `json:"metric"`
	Value      *float64 `json:"value"`
	Threshold  *float64 `json:"threshold"`
	Comparison string   `json:"comparison,omitempty"`
	Violated   bool     `json:"violated"`
}

// MarshalJSON writes a non-finite value or threshold as null.
func (m QualityMetric) MarshalJSON() ([]byte, error) {
	return json.Marshal(qualityMetricJSON{Metric: m.Metric, Value: finiteOrNil(m.Value), Threshold: finiteOrNil(m.Threshold),
		Comparison: m.Comparison, Violated: m.Violated})
}

// UnmarshalJSON reads a null value or threshold back as NaN.
func (m *QualityMetric) UnmarshalJSON(b []byte) error {
	var j qualityMetricJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = QualityMetric{Metric: j.Metric, Value: nanIfNil(j.Value), Threshold: nanIfNil(j.Threshold), Comparison: j.Comparison, Violated: j.Violated}
	return nil
}

func finiteOrNil(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func nanIfNil(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// QualityReport is one period's model-quality verdicts for one model
// version of a scorer: every metric with a constraint, violated or not.
type QualityReport struct {
	Pipeline, Scorer, ModelVersion string
	// The period's end is the event time the rules' cooldown is measured in.
	PeriodStart, PeriodEnd time.Time
	Metrics                []QualityMetric
	// Violations is where the period's constraint_violations.json is (an
	// s3:// URI); may be empty.
	Violations string
}

func (r *QualityReport) name() string {
	return fmt.Sprintf("%s/%s model %s period ending %s", r.Pipeline, r.Scorer, r.ModelVersion, r.PeriodEnd.UTC().Format(time.RFC3339))
}

func (r *QualityReport) check() error {
	switch {
	case r.Scorer == "":
		return fmt.Errorf("sinks: quality report %s: scorer is required", r.name())
	case r.PeriodEnd.IsZero():
		return fmt.Errorf("sinks: quality report %s: period end is required (cooldowns are measured in it)", r.name())
	case r.PeriodStart.After(r.PeriodEnd):
		return fmt.Errorf("sinks: quality report %s: period starts after it ends (%s)", r.name(), r.PeriodStart.UTC().Format(time.RFC3339))
	}
	seen := make(map[string]bool, len(r.Metrics))
	for i, m := range r.Metrics {
		if m.Metric == "" {
			return fmt.Errorf("sinks: quality report %s: metrics[%d]: metric name is required", r.name(), i)
		}
		if seen[m.Metric] {
			return fmt.Errorf("sinks: quality report %s: metrics[%d]: metric %q is listed twice", r.name(), i, m.Metric)
		}
		seen[m.Metric] = true
	}
	return nil
}

// Quality judges one period's model-quality verdicts with the quality
// rules of its scorer, as Drift does drift verdicts: per model version
// and metric, the rule's hysteresis (fire_after, clear_after periods) and
// cooldown; a rule's Model restricts it to one model version. It returns
// once the alerts are published.
func (a *Alerts) Quality(ctx context.Context, r QualityReport) error {
	if err := r.check(); err != nil {
		return err
	}
	items := make([]periodItem, len(r.Metrics))
	for i, m := range r.Metrics {
		items[i] = periodItem{name: m.Metric, bad: m.Violated}
	}
	return a.h.judgePeriod(ctx, periodReport{
		name: r.name(), pipeline: r.Pipeline, subject: "quality/" + r.Scorer + "/" + r.ModelVersion, end: r.PeriodEnd, items: items,
		rule: func(rl *AlertRule) bool {
			return rl.Quality == r.Scorer && (rl.Model == "" || rl.Model == r.ModelVersion)
		},
		alert: func(rl *AlertRule, state string, idx []int) Alert {
			ms := make([]QualityMetric, len(idx))
			for i, j := range idx {
				ms[i] = r.Metrics[j]
			}
			return qualityAlert(rl, &r, state, ms)
		},
	})
}

// qualityAlert is the one alert of a rule and state for a period, about
// the metrics ms, sorted by name.
func qualityAlert(rl *AlertRule, r *QualityReport, state string, ms []QualityMetric) Alert {
	slices.SortFunc(ms, func(a, b QualityMetric) int { return strings.Compare(a.Metric, b.Metric) })
	sev := rl.Levels[0].Severity
	m := ms[0]
	tail := fmt.Sprintf(" %s %s (%s %s)", m.Metric, driftNumber(m.Value), comparisonWord(m.Comparison), driftNumber(m.Threshold))
	if len(ms) > 1 {
		tail += fmt.Sprintf(" (+%d more)", len(ms)-1)
	}
	head := fmt.Sprintf("[%s] %s %s: %s ", strings.ToUpper(sev), rl.Name, state, r.Scorer)
	// A long model version is cut, not the metric and numbers after it.
	v := r.ModelVersion
	if room := maxSubject - len(head) - len(tail); len(v) > room {
		v = v[:max(room-3, 0)] + "..."
	}
	subject := head + v + tail
	if len(subject) > maxSubject {
		subject = subject[:maxSubject]
	}
	return Alert{
		Rule: rl.Name, State: state, Severity: sev, Model: r.ModelVersion, Scorer: r.Scorer,
		Pipeline: r.Pipeline, PeriodStart: r.PeriodStart, PeriodEnd: r.PeriodEnd,
		Quality: ms, Violations: r.Violations, Subject: subject,
	}
}

// comparisonWord says what a constraint wants, for a subject.
func comparisonWord(op string) string {
	switch op {
	case "LessThanThreshold":
		return "want >="
	case "LessThanOrEqualToThreshold":
		return "want >"
	case "GreaterThanThreshold":
		return "want <="
	case "GreaterThanOrEqualToThreshold":
		return "want <"
	}
	return "constraint"
}
