package retrain

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// MaxEvidence bounds the features or metrics one event lists, worst
// first, so an event of a wide window stays far below EventBridge's
// 256 KB entry limit; the rest are counted in Omitted.
const MaxEvidence = 100

// DriftVerdict is the drift monitor's verdict on one monitored window for
// one period, as its reducer judged it (constraint_violations.json).
type DriftVerdict struct {
	// Window is the monitored window; required.
	Window string
	// Scorers are the scorers that read the window: what a request
	// retrains, one request each; at least one.
	Scorers []ScorerModel
	// PeriodStart and PeriodEnd bound the period in event time; both
	// required. A period following the last one without a gap continues
	// its run.
	PeriodStart, PeriodEnd time.Time
	// Features are the period's monitored features; Drifted marks the
	// bad ones. Only drifted ones are evidence.
	Features []Feature
	// Violations is the period's constraint_violations.json, an s3://
	// URI; may be empty.
	Violations string
}

// ScorerModel is a scorer reading a drifted window, and its champion's
// version when known ("" otherwise).
type ScorerModel struct {
	Scorer, ModelVersion string
}

// Feature is one feature's drift verdict.
type Feature struct {
	Name string
	// Distance is the period's distance from the baseline and Threshold
	// the constraint's; NaN when there is none (null in an event).
	Distance, Threshold float64
	// Method is the distance's: "Simple" or "Robust" (numerical),
	// "LInfinity" or "ChiSquared" (categorical).
	Method  string
	Drifted bool
}

// QualityVerdict is the quality monitor's verdict on one scorer's model
// version for one period.
type QualityVerdict struct {
	// Scorer and ModelVersion name the model judged; both required.
	Scorer, ModelVersion string
	// PeriodStart and PeriodEnd bound the period in event time; both
	// required.
	PeriodStart, PeriodEnd time.Time
	// Metrics are the period's metrics with constraints; Violated marks
	// the bad ones. Only violated ones are evidence.
	Metrics []Metric
	// Violations is the period's constraint_violations.json, an s3://
	// URI; may be empty.
	Violations string
}

// Metric is one model-quality metric's verdict.
type Metric struct {
	// Name is Model Monitor's: accuracy, precision, recall, f1, auc, mae,
	// rmse, ...
	Name string
	// Value is the period's; Threshold and Comparison (Model Monitor's
	// operator, e.g. LessThanThreshold) the constraint's. NaN when there
	// is none (null in an event).
	Value, Threshold float64
	Comparison       string
	Violated         bool
}

func checkPeriod(what string, start, end time.Time, violations string) error {
	switch {
	case start.IsZero() || end.IsZero():
		return fmt.Errorf("retrain: %s: period start and end are required (runs and cooldowns are measured in them)", what)
	case !start.Before(end):
		return fmt.Errorf("retrain: %s: period start %s is not before its end %s", what, stamp(start), stamp(end))
	}
	if err := checkS3(violations); err != nil {
		return fmt.Errorf("retrain: %s: violations: %w", what, err)
	}
	return nil
}

func (v *DriftVerdict) check() error {
	what := fmt.Sprintf("drift verdict of window %q for the period ending %s", v.Window, stamp(v.PeriodEnd))
	if v.Window == "" {
		return fmt.Errorf("retrain: %s: window is required", what)
	}
	if len(v.Scorers) == 0 {
		return fmt.Errorf("retrain: %s: scorers: at least one is required (the scorers reading the window are what a request retrains)", what)
	}
	for i, s := range v.Scorers {
		if s.Scorer == "" {
			return fmt.Errorf("retrain: %s: scorers[%d]: scorer is required", what, i)
		}
	}
	for i, f := range v.Features {
		if f.Name == "" {
			return fmt.Errorf("retrain: %s: features[%d]: name is required", what, i)
		}
	}
	return checkPeriod(what, v.PeriodStart, v.PeriodEnd, v.Violations)
}

func (v *DriftVerdict) drifted() int {
	n := 0
	for _, f := range v.Features {
		if f.Drifted {
			n++
		}
	}
	return n
}

func (v *QualityVerdict) check() error {
	what := fmt.Sprintf("quality verdict of scorer %q model %q for the period ending %s", v.Scorer, v.ModelVersion, stamp(v.PeriodEnd))
	switch {
	case v.Scorer == "":
		return fmt.Errorf("retrain: %s: scorer is required", what)
	case v.ModelVersion == "":
		return fmt.Errorf("retrain: %s: model version is required (a new version starts a new run)", what)
	}
	for i, m := range v.Metrics {
		if m.Name == "" {
			return fmt.Errorf("retrain: %s: metrics[%d]: name is required", what, i)
		}
	}
	return checkPeriod(what, v.PeriodStart, v.PeriodEnd, v.Violations)
}

func (v *QualityVerdict) violated() int {
	n := 0
	for _, m := range v.Metrics {
		if m.Violated {
			n++
		}
	}
	return n
}

// driftRequests builds the events of a window's run, one per scorer
// reading it; they share the evidence.
func (t *Trigger) driftRequests(v DriftVerdict, run []periodMark) []*RetrainingRequested {
	var features []FeatureEvidence
	for _, f := range v.Features {
		if f.Drifted {
			features = append(features, FeatureEvidence{Name: f.Name, Distance: Number(f.Distance), Threshold: Number(f.Threshold), Method: f.Method})
		}
	}
	// Worst first: the furthest past its threshold; undefined last.
	slices.SortStableFunc(features, func(a, b FeatureEvidence) int {
		return cmp.Compare(excess(float64(b.Distance), float64(b.Threshold)), excess(float64(a.Distance), float64(a.Threshold)))
	})
	omitted := 0
	if len(features) > MaxEvidence {
		omitted = len(features) - MaxEvidence
		features = features[:MaxEvidence:MaxEvidence]
	}
	out := make([]*RetrainingRequested, 0, len(v.Scorers))
	for _, s := range v.Scorers {
		r := t.request(ReasonDrift, v.Window+"/"+s.Scorer, v.PeriodEnd, t.cfg.DriftPeriods, run)
		r.Window, r.Scorer, r.ModelVersion = v.Window, s.Scorer, s.ModelVersion
		r.Features, r.Omitted = features, omitted
		out = append(out, r)
	}
	return out
}

// excess is how far a distance is past its threshold, as a ratio; -Inf
// when either is undefined, so those sort last.
func excess(d, th float64) float64 {
	if math.IsNaN(d) || math.IsNaN(th) || th <= 0 {
		return math.Inf(-1)
	}
	return d / th
}

// qualityRequest builds the event of a scorer's run.
func (t *Trigger) qualityRequest(v QualityVerdict, run []periodMark) *RetrainingRequested {
	r := t.request(ReasonQuality, v.Scorer, v.PeriodEnd, t.cfg.QualityPeriods, run)
	r.Scorer, r.ModelVersion = v.Scorer, v.ModelVersion
	for _, m := range v.Metrics {
		if m.Violated {
			if len(r.Metrics) == MaxEvidence {
				r.Omitted++
				continue
			}
			r.Metrics = append(r.Metrics, MetricEvidence{Name: m.Name, Value: Number(m.Value), Threshold: Number(m.Threshold), Comparison: m.Comparison})
		}
	}
	return r
}

// request fills what drift and quality events share.
func (t *Trigger) request(reason, subject string, at time.Time, need int, run []periodMark) *RetrainingRequested {
	at = at.UTC()
	r := &RetrainingRequested{
		SchemaVersion: SchemaVersion,
		RequestID:     RequestID(t.cfg.Pipeline, reason, subject, at),
		Pipeline:      t.cfg.Pipeline,
		Reason:        reason,
		At:            at,
		Rule:          Rule{Periods: need, CooldownSeconds: int64(t.cfg.Cooldown / time.Second)},
		Data: Data{ResultsPrefix: t.cfg.ResultsPrefix, GroundTruthPrefix: t.cfg.GroundTruthPrefix,
			From: at.Add(-t.cfg.DataLookback), To: at},
	}
	for _, m := range run {
		r.Periods = append(r.Periods, Period{Start: m.start.UTC(), End: m.end.UTC(), Violations: m.violations})
	}
	return r
}

// RequestID is the request's stable id: a hash of the pipeline, reason,
// subject ("<window>/<scorer>" for drift, the scorer for quality) and the
// triggering period's end. A Trigger rebuilt
// after a failover that decides again on the same periods gives the same
// id, so a consumer can drop the repeat (e.g. as a Step Functions
// execution name).
func RequestID(pipeline, reason, subject string, at time.Time) string {
	h := sha256.Sum256([]byte(pipeline + "\x1f" + reason + "\x1f" + subject + "\x1f" + strconv.FormatInt(at.UnixNano(), 10)))
	return hex.EncodeToString(h[:16])
}
