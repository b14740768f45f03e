package retrain

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// The Trigger's defaults, each in this one place.
const (
	// DefaultDriftPeriods is how many consecutive periods a window must
	// drift in before retraining is asked for: one drifted hour may be a
	// blip; three in a row is a shift.
	DefaultDriftPeriods = 3
	// DefaultQualityPeriods is how many consecutive periods a scorer's
	// model must violate a quality constraint in: one, because a quality
	// violation is measured against labels, not a proxy for them.
	DefaultQualityPeriods = 1
	// DefaultCooldown is how much event time must pass after a request
	// before the same window or scorer asks again: a bad day asks once.
	DefaultCooldown = 24 * time.Hour
	// DefaultDataLookback is how far before the triggering period's end
	// the event's labelled data range starts.
	DefaultDataLookback = 7 * 24 * time.Hour
	// MaxPeriods bounds DriftPeriods and QualityPeriods, and so what the
	// Trigger keeps per window or scorer and what an event lists.
	MaxPeriods = 48
)

// Config is a Trigger's rule and what its events say about the data.
type Config struct {
	// Pipeline names the pipeline the verdicts are about; required.
	Pipeline string
	// DriftPeriods is N: a window that drifted in N consecutive periods
	// asks for retraining. 0 means DefaultDriftPeriods.
	DriftPeriods int
	// QualityPeriods is M: a scorer whose model violated a quality
	// constraint in M consecutive periods asks. 0 means
	// DefaultQualityPeriods.
	QualityPeriods int
	// Cooldown is the event time after a request (from the triggering
	// period's end) during which the same window or scorer does not ask
	// again, and no verdict asks again for a scorer already asked for (a
	// drift and a quality run of one scorer retrain it once). 0 means
	// DefaultCooldown.
	Cooldown time.Duration
	// ResultsPrefix is the s3:// prefix of the S3 sink's results (the
	// predictions); ResultsPrefix and GroundTruthPrefix (the labels)
	// together are the labelled data a training job reads. Either may be
	// empty; an event then leaves it out.
	ResultsPrefix, GroundTruthPrefix string
	// DataLookback is how far before the triggering period's end the
	// event's data range starts. 0 means DefaultDataLookback.
	DataLookback time.Duration
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.DriftPeriods == 0 {
		c.DriftPeriods = DefaultDriftPeriods
	}
	if c.QualityPeriods == 0 {
		c.QualityPeriods = DefaultQualityPeriods
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.DataLookback == 0 {
		c.DataLookback = DefaultDataLookback
	}
	return c
}

// Validate reports every problem of the configuration, each naming its
// field; zero fields take their defaults and are valid.
func (c Config) Validate() error {
	var errs []string
	if c.Pipeline == "" {
		errs = append(errs, "pipeline: required")
	}
	for _, p := range []struct {
		name string
		n    int
	}{{"drift_periods", c.DriftPeriods}, {"quality_periods", c.QualityPeriods}} {
		if p.n < 0 || p.n > MaxPeriods {
			errs = append(errs, fmt.Sprintf("%s: %d is outside 1..%d", p.name, p.n, MaxPeriods))
		}
	}
	if c.Cooldown < 0 {
		errs = append(errs, fmt.Sprintf("cooldown: %s is negative", c.Cooldown))
	}
	if c.DataLookback < 0 {
		errs = append(errs, fmt.Sprintf("data_lookback: %s is negative", c.DataLookback))
	}
	for _, p := range []struct{ name, uri string }{{"results_prefix", c.ResultsPrefix}, {"ground_truth_prefix", c.GroundTruthPrefix}} {
		if err := checkS3(p.uri); err != nil {
			errs = append(errs, p.name+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("retrain: trigger of pipeline %q: %s", c.Pipeline, strings.Join(errs, "; "))
	}
	return nil
}

// checkS3 accepts "" or s3://bucket[/key].
func checkS3(uri string) error {
	if uri == "" {
		return nil
	}
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok || rest == "" || strings.HasPrefix(rest, "/") {
		return fmt.Errorf("%q is not an s3://bucket/key URI", uri)
	}
	return nil
}

// Outcome is what a verdict made of its window's or scorer's run.
type Outcome string

// The outcomes, in the order a run goes through them.
const (
	// Healthy: the period is not bad; the run is over.
	Healthy Outcome = "healthy"
	// Building: the period is bad, but the run is shorter than the rule's.
	Building Outcome = "building"
	// Requested: the run is long enough and no cooldown holds: ask.
	Requested Outcome = "requested"
	// CoolingDown: the run is long enough, but a request for the same
	// window or scorer was made less than a cooldown ago.
	CoolingDown Outcome = "cooldown"
	// Stale: the period ends before the last one judged for this window
	// or scorer; the verdict changes nothing.
	Stale Outcome = "stale"
)

// Decision is what the Trigger made of one verdict.
type Decision struct {
	Outcome Outcome
	// Run is how many consecutive bad periods end with this one, counted
	// up to the rule's number of periods.
	Run int
	// Requests are the event details to publish when Outcome is
	// Requested, none otherwise: one per scorer to retrain (a drifted
	// window's scorers, or the quality verdict's scorer).
	Requests []*RetrainingRequested
	// Why says it in one sentence, with the numbers, for logs.
	Why string
}

// Trigger decides when to ask for retraining. It is safe for concurrent
// use; it does no I/O and reads no clock (all times are the verdicts'
// event times).
//
// Memory: one entry per window and per scorer ever fed, each holding at
// most N (drift) or M (quality) period records of two times, a bool and
// the violations URI: about 100 bytes plus N × (60 bytes + the URI), and
// one time per scorer asked for. The windows and scorers are the
// configuration's, so the total is bounded by it.
type Trigger struct {
	cfg Config

	mu    sync.Mutex
	state map[stateKey]*runState
	asked map[string]time.Time // per scorer: the triggering period's end of its last request, any reason
}

// stateKey names a run: drift per window, quality per scorer.
type stateKey struct {
	reason string
	name   string
}

// periodMark is what a run remembers of one judged period.
type periodMark struct {
	start, end time.Time
	bad        bool
	model      string // quality: the model version judged
	violations string
}

// runState is one window's or scorer's recent periods, oldest first, at
// most need of them, and when it last asked.
type runState struct {
	marks     []periodMark
	requested time.Time // the triggering period's end of the last request
}

// NewTrigger returns a Trigger with the configuration's rule.
func NewTrigger(c Config) (*Trigger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Trigger{cfg: c.withDefaults(), state: make(map[stateKey]*runState), asked: make(map[string]time.Time)}, nil
}

// Config returns the configuration with its defaults filled in.
func (t *Trigger) Config() Config { return t.cfg }

// Drift judges one monitored window's verdict for one period. A period
// is bad when any feature drifted. Verdicts of one window should come in
// period order; one for the last period judged again replaces it, an
// older one is Stale.
func (t *Trigger) Drift(v DriftVerdict) (Decision, error) {
	if err := v.check(); err != nil {
		return Decision{}, err
	}
	m := periodMark{start: v.PeriodStart, end: v.PeriodEnd, bad: v.drifted() > 0, violations: v.Violations}
	return t.judge(stateKey{ReasonDrift, v.Window}, m, t.cfg.DriftPeriods, func(run []periodMark) []*RetrainingRequested {
		return t.driftRequests(v, run)
	})
}

// Quality judges one scorer's model-quality verdict for one period: feed
// the champion's (a challenger's violation argues against promoting it,
// not for retraining). A period is bad when any metric violated its
// constraint; a new model version starts a new run, the cooldown stays.
func (t *Trigger) Quality(v QualityVerdict) (Decision, error) {
	if err := v.check(); err != nil {
		return Decision{}, err
	}
	m := periodMark{start: v.PeriodStart, end: v.PeriodEnd, bad: v.violated() > 0, model: v.ModelVersion, violations: v.Violations}
	return t.judge(stateKey{ReasonQuality, v.Scorer}, m, t.cfg.QualityPeriods, func(run []periodMark) []*RetrainingRequested {
		return []*RetrainingRequested{t.qualityRequest(v, run)}
	})
}

// judge applies one period's mark to its run and decides. need is the
// rule's number of periods; requests builds the events from the run's
// periods, oldest first.
func (t *Trigger) judge(k stateKey, m periodMark, need int, requests func([]periodMark) []*RetrainingRequested) (Decision, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.state[k]
	if st == nil {
		st = &runState{marks: make([]periodMark, 0, need)}
		t.state[k] = st
	}
	if n := len(st.marks); n > 0 {
		last := st.marks[n-1]
		switch {
		case m.end.Before(last.end):
			return Decision{Outcome: Stale, Why: fmt.Sprintf("%s %s: period ending %s is older than the last judged (%s); ignored",
				k.reason, k.name, stamp(m.end), stamp(last.end))}, nil
		case m.end.Equal(last.end):
			// The monitor judged the period again (more parts came): its
			// new verdict replaces the old one.
			st.marks = st.marks[:n-1]
		}
	}
	if len(st.marks) == need {
		copy(st.marks, st.marks[1:])
		st.marks = st.marks[:need-1]
	}
	st.marks = append(st.marks, m)

	run := runLength(st.marks)
	subject := k.reason + " " + k.name
	if !m.bad {
		return Decision{Outcome: Healthy, Why: fmt.Sprintf("%s: period ending %s is healthy", subject, stamp(m.end))}, nil
	}
	if run < need {
		return Decision{Outcome: Building, Run: run, Why: fmt.Sprintf("%s: %d of %d consecutive bad periods, the last ending %s",
			subject, run, need, stamp(m.end))}, nil
	}
	if !st.requested.IsZero() {
		if until := st.requested.Add(t.cfg.Cooldown); m.end.Before(until) {
			return Decision{Outcome: CoolingDown, Run: run, Why: fmt.Sprintf("%s: %d consecutive bad periods, but retraining was asked for at %s; cooling down until %s",
				subject, run, stamp(st.requested), stamp(until))}, nil
		}
	}
	// A scorer asked for by another run (a drifted window's, its own
	// quality's) within the cooldown is not asked for again.
	var kept []*RetrainingRequested
	var cooling []string
	for _, r := range requests(st.marks[len(st.marks)-run:]) {
		if at, ok := t.asked[r.Scorer]; ok && m.end.Before(at.Add(t.cfg.Cooldown)) {
			cooling = append(cooling, fmt.Sprintf("%s (asked at %s)", r.Scorer, stamp(at)))
			continue
		}
		kept = append(kept, r)
	}
	if len(kept) == 0 {
		return Decision{Outcome: CoolingDown, Run: run, Why: fmt.Sprintf("%s: %d consecutive bad periods, but retraining of %s was asked for less than the cooldown (%s) ago",
			subject, run, strings.Join(cooling, ", "), t.cfg.Cooldown)}, nil
	}
	st.requested = m.end
	for _, r := range kept {
		t.asked[r.Scorer] = m.end
	}
	return Decision{Outcome: Requested, Run: run, Requests: kept,
		Why: fmt.Sprintf("%s: %d consecutive bad periods, the last ending %s: retraining requested", subject, run, stamp(m.end))}, nil
}

// runLength counts the bad periods at the end of marks that follow each
// other without a gap and judged the same model.
func runLength(marks []periodMark) int {
	n := 0
	for i := len(marks) - 1; i >= 0; i-- {
		m := marks[i]
		if !m.bad {
			break
		}
		if i < len(marks)-1 {
			next := marks[i+1]
			if m.end.Before(next.start) || m.model != next.model {
				break
			}
		}
		n++
	}
	return n
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
