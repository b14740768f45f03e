package retrain

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/streamscore/streamscore/promotion"
)

// Source is the source of every event streamscore puts on EventBridge.
const Source = "streamscore"

// The detail types of the flywheel's events: what a rule matches on.
const (
	// DetailTypeRetrainingRequested: a window drifted or a scorer's model
	// violated its quality constraints for long enough (RetrainingRequested).
	DetailTypeRetrainingRequested = "Retraining Requested"
	// DetailTypeModelPromoted: a decision made a model the scorer's
	// champion (ModelDecision).
	DetailTypeModelPromoted = "Model Promoted"
	// DetailTypeModelRolledBack: a decision restored the previous champion
	// (ModelDecision).
	DetailTypeModelRolledBack = "Model Rolled Back"
)

// SchemaVersion is the version of every detail's layout
// (schema/events-v1.schema.json). Adding an optional field keeps it;
// removing or changing one makes the next version, and a consumer should
// refuse a version it does not know.
const SchemaVersion = 1

// The reasons a retraining is requested for.
const (
	ReasonDrift   = "drift"
	ReasonQuality = "quality"
)

// Detail is an event's detail: what it is (its detail type) and which
// pipeline and window or scorer it is about, for errors and logs.
type Detail interface {
	DetailType() string
	Subject() string
}

// RetrainingRequested is the detail of a "Retraining Requested" event:
// the evidence a training pipeline needs to decide what to train on.
type RetrainingRequested struct {
	SchemaVersion int `json:"schema_version"`
	// RequestID is stable across a replay of the same decision (RequestID).
	RequestID string `json:"request_id"`
	Pipeline  string `json:"pipeline"`
	// Reason is ReasonDrift or ReasonQuality.
	Reason string `json:"reason"`
	// Scorer is the scorer to retrain: the one whose model violated its
	// constraints, or one reading the drifted window (a window read by
	// several scorers gives one request each).
	Scorer string `json:"scorer"`
	// Window is the drifted monitored window (drift only).
	Window string `json:"window,omitempty"`
	// ModelVersion is the model judged (quality), or the scorer's
	// champion when known (drift).
	ModelVersion string `json:"model_version,omitempty"`
	// At is the triggering period's end, in event time.
	At time.Time `json:"at"`
	// Rule is the rule that fired.
	Rule Rule `json:"rule"`
	// Periods are the run's consecutive bad periods, oldest first, the
	// triggering one last.
	Periods []Period `json:"periods"`
	// Features are the triggering period's drifted features, worst first
	// (drift only); Metrics its violated metrics (quality only). At most
	// MaxEvidence; Omitted counts the rest.
	Features []FeatureEvidence `json:"features,omitempty"`
	Metrics  []MetricEvidence  `json:"metrics,omitempty"`
	Omitted  int               `json:"omitted,omitempty"`
	// Data is where the recent labelled data is.
	Data Data `json:"data"`
}

// Rule is the rule a request fired under.
type Rule struct {
	// Periods is the number of consecutive bad periods it needs.
	Periods int `json:"periods"`
	// CooldownSeconds is the event time after this request during which
	// the same window or scorer does not ask again (a scorer: for any reason).
	CooldownSeconds int64 `json:"cooldown_seconds"`
}

// Period is one bad period of a run.
type Period struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Violations is its constraint_violations.json (s3://), when known.
	Violations string `json:"violations,omitempty"`
}

// FeatureEvidence is a drifted feature of the triggering period.
type FeatureEvidence struct {
	Name      string `json:"name"`
	Distance  Number `json:"distance"`
	Threshold Number `json:"threshold"`
	Method    string `json:"method,omitempty"`
}

// MetricEvidence is a violated metric of the triggering period.
type MetricEvidence struct {
	Name       string `json:"name"`
	Value      Number `json:"value"`
	Threshold  Number `json:"threshold"`
	Comparison string `json:"comparison,omitempty"`
}

// Data locates the recent labelled data: the S3 sink's results and the
// ground truth, and the event-time range [From, To) worth reading.
type Data struct {
	ResultsPrefix     string    `json:"results_prefix,omitempty"`
	GroundTruthPrefix string    `json:"ground_truth_prefix,omitempty"`
	From              time.Time `json:"from"`
	To                time.Time `json:"to"`
}

// DetailType is "Retraining Requested".
func (r *RetrainingRequested) DetailType() string { return DetailTypeRetrainingRequested }

// Subject names the request in errors and logs.
func (r *RetrainingRequested) Subject() string {
	what := "scorer " + r.Scorer
	if r.Window != "" {
		what = "window " + r.Window + " " + what
	}
	return fmt.Sprintf("pipeline %s %s %s at %s, request %s", r.Pipeline, r.Reason, what, stamp(r.At), r.RequestID)
}

// ModelDecision is the detail of a "Model Promoted" or "Model Rolled
// Back" event: a champion decision as promotion records it.
type ModelDecision struct {
	SchemaVersion int    `json:"schema_version"`
	Pipeline      string `json:"pipeline"`
	Scorer        string `json:"scorer"`
	// Generation counts the scorer's decisions, from 1.
	Generation int64 `json:"generation"`
	// Action is "promote" or "rollback".
	Action   string   `json:"action"`
	Champion ModelRef `json:"champion"`
	// Previous is the champion replaced: what a rollback restores.
	Previous ModelRef  `json:"previous,omitzero"`
	Reason   string    `json:"reason,omitempty"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at"`
}

// ModelRef is a model a decision names.
type ModelRef struct {
	Key     string `json:"key"`
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

// NewModelDecision is the detail of d's latest decision; nil for
// generation 0 (no decision was made).
func NewModelDecision(d promotion.Decision) *ModelDecision {
	if d.Generation == 0 {
		return nil
	}
	ref := func(m promotion.Model) ModelRef {
		return ModelRef{Key: m.Key, Path: m.Path, Version: m.Version, SHA256: m.SHA256}
	}
	return &ModelDecision{SchemaVersion: SchemaVersion, Pipeline: d.Pipeline, Scorer: d.Scorer, Generation: d.Generation,
		Action: d.Action, Champion: ref(d.Champion), Previous: ref(d.Previous), Reason: d.Reason, By: d.By, At: d.At.UTC()}
}

// DetailType is "Model Promoted" or "Model Rolled Back", by the action.
func (m *ModelDecision) DetailType() string {
	if m.Action == promotion.ActionRollback {
		return DetailTypeModelRolledBack
	}
	return DetailTypeModelPromoted
}

// Subject names the decision in errors and logs.
func (m *ModelDecision) Subject() string {
	return fmt.Sprintf("pipeline %s scorer %s generation %d (%s %s)", m.Pipeline, m.Scorer, m.Generation, m.Action, m.Champion.Key)
}

// Number is a float that is null in JSON when it is not finite (a
// distance the period gave none of, an undefined metric), since JSON has
// no NaN.
type Number float64

// MarshalJSON writes null for NaN and ±Inf.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads null as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}
