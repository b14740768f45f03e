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
	// Scorers are the scorers that read the window, for the event: what
	// a training pipeline would retrain. May be empty.
	Scorers []string
	// ModelVersion is the champion's version scoring the window, when
	// known; may be empty.
	ModelVersion string
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

// driftRequest builds the event of a window's run.
func (t *Trigger) driftRequest(v DriftVerdict, run []periodMark) *RetrainingRequested {
	r := t.request(ReasonDrift, v.Window, v.PeriodEnd, t.cfg.DriftPeriods, run)
	r.Window, r.ModelVersion = v.Window, v.ModelVersion
	r.Scorers = slices.Clone(v.Scorers)
	for _, f := range v.Features {
		if f.Drifted {
			r.Features = append(r.Features, FeatureEvidence{Name: f.Name, Distance: Number(f.Distance), Threshold: Number(f.Threshold), Method: f.Method})
		}
	}
	// Worst first: the furthest past its threshold; undefined last.
	slices.SortStableFunc(r.Features, func(a, b FeatureEvidence) int {
		return cmp.Compare(excess(float64(b.Distance), float64(b.Threshold)), excess(float64(a.Distance), float64(a.Threshold)))
	})
	if len(r.Features) > MaxEvidence {
		r.Omitted = len(r.Features) - MaxEvidence
		r.Features = r.Features[:MaxEvidence:MaxEvidence]
	}
	return r
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
// window or scorer and the triggering period's end. A Trigger rebuilt
// after a failover that decides again on the same periods gives the same
// id, so a consumer can drop the repeat (e.g. as a Step Functions
// execution name).
func RequestID(pipeline, reason, subject string, at time.Time) string {
	h := sha256.Sum256([]byte(pipeline + "\x1f" + reason + "\x1f" + subject + "\x1f" + strconv.FormatInt(at.UnixNano(), 10)))
	return hex.EncodeToString(h[:16])
}
