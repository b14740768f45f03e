package retrain

// The Trigger's durable form: its runs, requests and per-scorer asks as
// one small JSON document, so that a worker that becomes the reducer
// carries on a run in progress and keeps a cooldown already started
// instead of starting both afresh (docs/flywheel.md, "After a failover").

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// StateVersion is the version of State this build writes and reads.
const StateVersion = 1

// Bounds of a State, so that a file read back (from S3, which anyone with
// write access to the bucket can change) costs bounded memory.
const (
	// MaxStateEntries bounds the runs and the asked scorers a State may
	// hold: each is a window or a scorer of the configuration, far fewer.
	MaxStateEntries = 10000
	// MaxStateBytes bounds an encoded State: MaxStateEntries runs of a
	// few periods with their URIs fit well within it.
	MaxStateBytes = 16 << 20
)

// State is what a Trigger remembers, in a form that survives the
// process: JSON-serialisable, versioned, and bounded (MaxStateEntries
// entries, MaxPeriods periods per run, MaxStateBytes encoded).
type State struct {
	// Version is StateVersion.
	Version int `json:"version"`
	// Pipeline is the Trigger's Config.Pipeline: a state is restored into
	// the trigger of the same pipeline only.
	Pipeline string `json:"pipeline"`
	// Runs are the windows' (drift) and scorers' (quality) recent
	// periods, sorted by reason and name.
	Runs []RunState `json:"runs"`
	// Asked is, per scorer, the triggering period's end of its last
	// request for any reason, sorted by scorer.
	Asked []AskedState `json:"asked"`
}

// RunState is one window's or scorer's recent periods and its last
// request.
type RunState struct {
	// Reason is ReasonDrift (Name is a window) or ReasonQuality (a scorer).
	Reason string `json:"reason"`
	Name   string `json:"name"`
	// Periods are the last judged periods, oldest first, at most the
	// rule's number of them.
	Periods []PeriodState `json:"periods"`
	// Requested is the triggering period's end of the run's last
	// request; zero when it never asked.
	Requested time.Time `json:"requested,omitzero"`
}

// PeriodState is what a run remembers of one judged period.
type PeriodState struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Bad: drifted (drift) or violated a constraint (quality).
	Bad bool `json:"bad"`
	// Model is the model version judged (quality).
	Model string `json:"model,omitempty"`
	// Violations is the period's constraint_violations.json, when known.
	Violations string `json:"violations,omitempty"`
}

// AskedState is one scorer's last request.
type AskedState struct {
	Scorer string    `json:"scorer"`
	At     time.Time `json:"at"`
}

// State returns a copy of what the Trigger remembers, in a stable order
// (so two states with the same content encode to the same bytes).
func (t *Trigger) State() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := State{Version: StateVersion, Pipeline: t.cfg.Pipeline, Runs: make([]RunState, 0, len(t.state)), Asked: make([]AskedState, 0, len(t.asked))}
	for k, st := range t.state {
		r := RunState{Reason: k.reason, Name: k.name, Requested: st.requested, Periods: make([]PeriodState, len(st.marks))}
		for i, m := range st.marks {
			r.Periods[i] = PeriodState{Start: m.start, End: m.end, Bad: m.bad, Model: m.model, Violations: m.violations}
		}
		s.Runs = append(s.Runs, r)
	}
	slices.SortFunc(s.Runs, func(a, b RunState) int {
		if c := strings.Compare(a.Reason, b.Reason); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for sc, at := range t.asked {
		s.Asked = append(s.Asked, AskedState{Scorer: sc, At: at})
	}
	slices.SortFunc(s.Asked, func(a, b AskedState) int { return strings.Compare(a.Scorer, b.Scorer) })
	return s
}

// EncodeState is the state's JSON document.
func EncodeState(s State) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("retrain: trigger state: %w", err)
	}
	return b, nil
}

// DecodeState parses a state document named name (for errors: the file
// it came from). It refuses a document over MaxStateBytes, with unknown
// fields, or of a version this build does not read, naming the problem;
// Restore checks the rest.
func DecodeState(body []byte, name string) (State, error) {
	if len(body) > MaxStateBytes {
		return State{}, fmt.Errorf("retrain: trigger state %s: %d bytes, over the %d a state may hold", name, len(body), MaxStateBytes)
	}
	// The version first: a newer writer's fields are not ours to judge.
	// (Unmarshal also refuses anything after the one document.)
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return State{}, fmt.Errorf("retrain: trigger state %s: not JSON: %w", name, err)
	}
	if head.Version == nil {
		return State{}, fmt.Errorf("retrain: trigger state %s: version: missing", name)
	}
	if *head.Version != StateVersion {
		return State{}, fmt.Errorf("retrain: trigger state %s: version: %d is not one this build reads (%d)", name, *head.Version, StateVersion)
	}
	var s State
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("retrain: trigger state %s: %w", name, err)
	}
	return s, nil
}

// Restore replaces what the Trigger remembers with s, as State returned
// it (perhaps by another process). It refuses, naming the field, a state
// of another version or pipeline, over MaxStateEntries entries, with a
// run over MaxPeriods periods, or with a period out of order; the Trigger
// is then unchanged. A run longer than this Trigger's rule (the
// configuration asked for fewer periods since) keeps its newest periods.
func (t *Trigger) Restore(s State) error {
	state, asked, err := t.checkState(s)
	if err != nil {
		return fmt.Errorf("retrain: trigger state of pipeline %q: %w", s.Pipeline, err)
	}
	t.mu.Lock()
	t.state, t.asked = state, asked
	t.mu.Unlock()
	return nil
}

// checkState validates s and builds the Trigger's maps from it.
func (t *Trigger) checkState(s State) (map[stateKey]*runState, map[string]time.Time, error) {
	if s.Version != StateVersion {
		return nil, nil, fmt.Errorf("version: %d is not one this build reads (%d)", s.Version, StateVersion)
	}
	if s.Pipeline != t.cfg.Pipeline {
		return nil, nil, fmt.Errorf("pipeline: %q is not this trigger's (%q)", s.Pipeline, t.cfg.Pipeline)
	}
	if len(s.Runs) > MaxStateEntries {
		return nil, nil, fmt.Errorf("runs: %d, over %d", len(s.Runs), MaxStateEntries)
	}
	if len(s.Asked) > MaxStateEntries {
		return nil, nil, fmt.Errorf("asked: %d, over %d", len(s.Asked), MaxStateEntries)
	}
	state := make(map[stateKey]*runState, len(s.Runs))
	for i, r := range s.Runs {
		field := fmt.Sprintf("runs[%d]", i)
		var need int
		switch r.Reason {
		case ReasonDrift:
			need = t.cfg.DriftPeriods
		case ReasonQuality:
			need = t.cfg.QualityPeriods
		default:
			return nil, nil, fmt.Errorf("%s.reason: %q is neither %q nor %q", field, r.Reason, ReasonDrift, ReasonQuality)
		}
		if r.Name == "" {
			return nil, nil, fmt.Errorf("%s.name: required", field)
		}
		k := stateKey{r.Reason, r.Name}
		if state[k] != nil {
			return nil, nil, fmt.Errorf("%s: a second run of %s %s", field, r.Reason, r.Name)
		}
		if len(r.Periods) > MaxPeriods {
			return nil, nil, fmt.Errorf("%s.periods: %d, over %d", field, len(r.Periods), MaxPeriods)
		}
		if err := checkPeriods(field, r.Periods); err != nil {
			return nil, nil, err
		}
		ps := r.Periods[max(0, len(r.Periods)-need):]
		st := &runState{marks: make([]periodMark, len(ps), need), requested: r.Requested}
		for j, p := range ps {
			st.marks[j] = periodMark{start: p.Start, end: p.End, bad: p.Bad, model: p.Model, violations: p.Violations}
		}
		state[k] = st
	}
	asked := make(map[string]time.Time, len(s.Asked))
	for i, a := range s.Asked {
		field := fmt.Sprintf("asked[%d]", i)
		switch _, dup := asked[a.Scorer]; {
		case a.Scorer == "":
			return nil, nil, fmt.Errorf("%s.scorer: required", field)
		case a.At.IsZero():
			return nil, nil, fmt.Errorf("%s.at: required", field)
		case dup:
			return nil, nil, fmt.Errorf("%s.scorer: %q is listed twice", field, a.Scorer)
		}
		asked[a.Scorer] = a.At
	}
	return state, asked, nil
}

// checkPeriods refuses periods that do not start before they end or are
// not in the order a run keeps them (by end, oldest first, no two alike).
func checkPeriods(field string, ps []PeriodState) error {
	for j, p := range ps {
		f := fmt.Sprintf("%s.periods[%d]", field, j)
		if p.Start.IsZero() || p.End.IsZero() || !p.Start.Before(p.End) {
			return fmt.Errorf("%s: start %s is not before end %s", f, stamp(p.Start), stamp(p.End))
		}
		if j > 0 && !ps[j-1].End.Before(p.End) {
			return fmt.Errorf("%s: ends at %s, not after the period before it (%s)", f, stamp(p.End), stamp(ps[j-1].End))
		}
		if p.Violations != "" {
			if err := checkS3(p.Violations); err != nil {
				return fmt.Errorf("%s.violations: %w", f, err)
			}
		}
	}
	return nil
}
