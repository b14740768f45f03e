package sinks

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DriftFeature is one monitored feature's verdict for a period.
type DriftFeature struct {
	Feature string `json:"feature"`
	// Distance is Model Monitor's baseline_drift_check distance; NaN (null
	// in a message) when the period gave none.
	Distance  float64 `json:"distance"`
	Threshold float64 `json:"threshold"`
	// Method is "Simple" or "Robust" (numerical), "LInfinity" or
	// "ChiSquared" (categorical).
	Method string `json:"method"`
	// Drifted is the monitor's verdict: the monitor owns the rule
	// (threshold and method), the alert rules only count verdicts.
	Drifted bool `json:"drifted"`
}

type driftFeatureJSON struct {
	Feature   string   `json:"feature"`
	Distance  *float64 `json:"distance"`
	Threshold *float64 `json:"threshold"`
	Method    string   `json:"method"`
	Drifted   bool     `json:"drifted"`
}

// MarshalJSON writes a non-finite distance or threshold as null, which JSON
// can carry, so one feature without data cannot make an alert unsendable.
func (f DriftFeature) MarshalJSON() ([]byte, error) {
	finite := func(x float64) *float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return &x
	}
	return json.Marshal(driftFeatureJSON{Feature: f.Feature, Distance: finite(f.Distance), Threshold: finite(f.Threshold), Method: f.Method, Drifted: f.Drifted})
}

// UnmarshalJSON reads a null distance or threshold back as NaN.
func (f *DriftFeature) UnmarshalJSON(b []byte) error {
	var j driftFeatureJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	orNaN := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*f = DriftFeature{Feature: j.Feature, Distance: orNaN(j.Distance), Threshold: orNaN(j.Threshold), Method: j.Method, Drifted: j.Drifted}
	return nil
}

// DriftReport is one period's verdicts for one monitored window.
type DriftReport struct {
	Pipeline, Window, Model string
	// The period's end is the event time the rules' cooldown is measured in.
	PeriodStart, PeriodEnd time.Time
	// Features are every monitored feature, drifted or not; a feature
	// left out is not judged this period.
	Features []DriftFeature
	// Violations is where the period's constraint_violations.json is
	// (an s3:// URI); may be empty.
	Violations string
}

// name is how errors and logs name the report.
func (r *DriftReport) name() string {
	return fmt.Sprintf("%s/%s period ending %s", r.Pipeline, r.Window, r.PeriodEnd.UTC().Format(time.RFC3339))
}

// check refuses a report the rules cannot judge.
func (r *DriftReport) check() error {
	switch {
	case r.Window == "":
		return fmt.Errorf("sinks: drift report %s: window is required", r.name())
	case r.PeriodEnd.IsZero():
		return fmt.Errorf("sinks: drift report %s: period end is required (cooldowns are measured in it)", r.name())
	case r.PeriodStart.After(r.PeriodEnd):
		return fmt.Errorf("sinks: drift report %s: period starts after it ends (%s)", r.name(), r.PeriodStart.UTC().Format(time.RFC3339))
	}
	seen := make(map[string]bool, len(r.Features))
	for i, f := range r.Features {
		if f.Feature == "" {
			return fmt.Errorf("sinks: drift report %s: features[%d]: feature name is required", r.name(), i)
		}
		if seen[f.Feature] {
			return fmt.Errorf("sinks: drift report %s: features[%d]: feature %q is listed twice", r.name(), i, f.Feature)
		}
		seen[f.Feature] = true
	}
	return nil
}

// Drift judges one period's verdicts with the drift rules of its window
// and publishes what they say: per rule at most one firing alert (every
// feature that fired or escalated this period) and one resolved alert
// (every feature that cleared). It returns once they are published. On an
// error nothing of the report is remembered, so the caller may send it
// again; a report for a period no later than one already judged changes
// nothing. Safe for concurrent use: reports are judged one at a time.
func (a *Alerts) Drift(ctx context.Context, r DriftReport) error {
	return a.h.drift(ctx, r)
}

func (h *alertHandler) drift(ctx context.Context, rep DriftReport) error {
	if err := rep.check(); err != nil {
		return err
	}
	items := make([]periodItem, len(rep.Features))
	for i, f := range rep.Features {
		items[i] = periodItem{name: f.Feature, bad: f.Drifted}
	}
	return h.judgePeriod(ctx, periodReport{
		name: rep.name(), pipeline: rep.Pipeline, subject: rep.Window, end: rep.PeriodEnd, items: items,
		rule: func(r *AlertRule) bool { return r.Drift == rep.Window && (r.Model == "" || r.Model == rep.Model) },
		alert: func(r *AlertRule, state string, idx []int) Alert {
			fs := make([]DriftFeature, len(idx))
			for i, j := range idx {
				fs[i] = rep.Features[j]
			}
			return driftAlert(r, &rep, state, fs)
		},
	})
}

// driftAlert is the one alert of a rule and state for a period: fs are
// the features it is about, sorted here, largest distance first.
func driftAlert(r *AlertRule, rep *DriftReport, state string, fs []DriftFeature) Alert {
	slices.SortFunc(fs, func(a, b DriftFeature) int {
		if c := cmp.Compare(b.Distance, a.Distance); c != 0 {
			return c // NaN, no distance, last
		}
		return strings.Compare(a.Feature, b.Feature)
	})
	sev := r.Levels[0].Severity
	op := ">"
	if state == StateResolved {
		op = "<="
	}
	head := fmt.Sprintf("[%s] %s %s: %s ", strings.ToUpper(sev), r.Name, state, rep.Window)
	tail := fmt.Sprintf(" %s %s %s", driftNumber(fs[0].Distance), op, driftNumber(fs[0].Threshold))
	if len(fs) > 1 {
		tail += fmt.Sprintf(" (+%d more)", len(fs)-1)
	}
	// A long feature name is cut, not the numbers or the count after it.
	name := fs[0].Feature
	if room := maxSubject - len(head) - len(tail); len(name) > room {
		name = name[:max(room-3, 0)] + "..."
	}
	return Alert{
		Rule: r.Name, State: state, Severity: sev, Model: rep.Model,
		Pipeline: rep.Pipeline, Window: rep.Window, PeriodStart: rep.PeriodStart, PeriodEnd: rep.PeriodEnd,
		Drift: fs, Violations: rep.Violations, Subject: head + name + tail,
	}
}

// driftNumber writes a distance or threshold for a subject: two decimals,
// or two significant digits below 0.01 so a small threshold is not 0.00.
func driftNumber(x float64) string {
	if x != 0 && math.Abs(x) < 0.01 {
		return strconv.FormatFloat(x, 'g', 2, 64)
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}
