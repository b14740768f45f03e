package dataset

// Judging one monitoring period: the predictions the S3 sink wrote for it
// against the labels that judge them, by inference id, or by entity
// within a horizon (horizon.go holds the indexes), per model version and
// role, champion and shadow challenger compared on the same rows. The one
// entry point is JudgePeriod; `monitor quality --horizon` and the
// pipeline's quality reducer both call it.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/streamscore/streamscore/monitor/quality"
)

// Role is the part a model version played in the rows it scored.
type Role string

const (
	// RoleChampion is a version named by model_version: the model whose
	// score the pipeline served for the row (the champion, or a canary's
	// model on its share of entities).
	RoleChampion Role = "champion"
	// RoleChallenger is a version named by challenger_model_version: a
	// challenger scoring the same rows in shadow, served to no one.
	RoleChallenger Role = "challenger"
)

// PeriodOptions say how JudgePeriod judges a period.
type PeriodOptions struct {
	// Problem is binary ("" too) or regression.
	Problem Problem
	// Quality are the binary accumulators' options (the threshold).
	Quality quality.Options
	// Horizon, when above 0, judges predictions by entity too: a label
	// without an inference id at time T judges its entity's predictions
	// whose window_end t is in [T - Horizon, T). A prediction is positive
	// when a positive label (1) of its entity falls in (t, t + Horizon],
	// negative otherwise; so the caller judges a period only once every
	// such label had time to arrive. Binary only. A label with an id
	// judges its prediction by id either way. 0: by id only.
	Horizon time.Duration
	// Start and End are the period: predictions whose window_end is in
	// (Start, End], the drift monitor's rule (a window that ends on a
	// boundary belongs to the period it ended). Those outside are skipped
	// and counted, never judged, and so
	// are those without a window_end when either bound is set. A zero
	// bound is no bound.
	Start, End time.Time
	// Bad is given each record of either input that cannot be read, as
	// ReadOptions.Bad is: nil stops at the first.
	Bad func(*RecordError) error
}

// PeriodQuality is a period's judgement: the quality of every model
// version that scored its predictions, in each role it played, and what
// was read, judged and left out.
type PeriodQuality struct {
	// All is the served score's quality over every labelled prediction
	// of the period, whatever its model version.
	All *quality.Statistics
	// Models are the versions that scored the period's predictions:
	// champions by version, then challengers by version. A version that
	// was both (a challenger promoted within the period) is listed once in
	// each role.
	Models []ModelQuality
	// Counts are over every prediction and label read.
	Counts PeriodCounts
	// PredictionsRead and LabelsRead are what the two reads went through
	// (files, records, bad records skipped, update and partial rows left
	// out).
	PredictionsRead, LabelsRead ReadStats
	// NextWindowEnd is the earliest window end of the predictions read
	// after the period (zero: none), so a caller walking periods can skip
	// the empty ones between.
	NextWindowEnd time.Time
}

// ModelQuality is one model version's quality in one role.
type ModelQuality struct {
	Version string // "" when the predictions carry no model_version
	Role    Role
	// Statistics is the version's quality on its labelled predictions
	// (item_count 0 when none was labelled: nothing to judge). A missing
	// score counts in num_missing.
	Statistics *quality.Statistics
	// Champion is, for a challenger, the served score's quality on
	// exactly the rows in Statistics (the labelled rows the challenger
	// scored, whichever champion version served them), so a promotion
	// policy compares like with like. Nil for a champion.
	Champion *quality.Statistics
	Counts   ModelCounts
}

// ModelCounts count a version's predictions in its role. Predictions =
// Labelled + Unlabelled; Duplicates and Outside are rows read besides.
type ModelCounts struct {
	// Predictions are the distinct predictions of the period it scored.
	Predictions int64 `json:"predictions"`
	// Labelled predictions are judged; Unlabelled ones are not (no label
	// of their id and, judging by entity, no entity or window_end).
	Labelled   int64 `json:"labelled"`
	Unlabelled int64 `json:"unlabelled"`
	// Duplicates are rows of an id already read (a replay wrote the
	// window again): the one written first is judged.
	Duplicates int64 `json:"duplicates"`
	// Outside are rows whose window_end is outside the period, skipped.
	Outside int64 `json:"outside"`
}

// PeriodCounts count what a period's join read and did with it. Every
// label read is one of: a distinct label by id (IDLabels), a distinct
// label by entity (EntityLabels), a repeat (DuplicateLabels),
// LabelsWithoutID or LabelsOutside. As JSON, snake_case, the
// predictions' counts inline.
type PeriodCounts struct {
	// ModelCounts are the served versions' together: every prediction.
	ModelCounts
	// Labels are the labels read.
	Labels int64 `json:"labels"`
	// IDLabels are the distinct labels with an inference id;
	// UnmatchedLabels are those no prediction of the period has (a label
	// of another period, or of an unknown id).
	IDLabels        int64 `json:"id_labels"`
	UnmatchedLabels int64 `json:"unmatched_labels"`
	// EntityLabels are the distinct labels judging by entity, held for
	// the horizon rule.
	EntityLabels int64 `json:"entity_labels"`
	// DuplicateLabels repeat a label already read: an id labelled again
	// (the last one read counts), or the same entity, time and value.
	DuplicateLabels int64 `json:"duplicate_labels"`
	// LabelsWithoutID have no inference id in a join by id (Horizon 0):
	// they judge nothing.
	LabelsWithoutID int64 `json:"labels_without_id"`
	// LabelsOutside judge by entity at a time that reaches no prediction
	// of the period (at or before Start, at or after End + Horizon), so
	// are not held.
	LabelsOutside int64 `json:"labels_outside"`
}

// JudgePeriod judges one period: it reads every label (held: by id, and
// by entity as sorted times), then streams the predictions past them,
// keeping one row per inference id of the period (40 bytes and its id:
// docs/quality.md has the measured cost), and returns each model
// version's quality in each role. Of a prediction read twice (a replay),
// the one written first counts (QualityJoin's rule); of a label read
// twice, the last by id, and one copy of the same entity, time and value.
// Errors name the input, and a bad record its file and line or row.
func JudgePeriod(ctx context.Context, predictions, labels []Object, opts PeriodOptions) (*PeriodQuality, error) {
	j, err := newPeriodJoin(opts)
	if err != nil {
		return nil, err
	}
	lst, err := ReadLabels(ctx, labels, LabelOptions{ReadOptions: ReadOptions{Bad: opts.Bad}, Binary: j.opts.Problem == ProblemBinary}, j.label)
	if err != nil {
		return nil, fmt.Errorf("reading labels: %w", err)
	}
	pst, err := ReadPredictions(ctx, predictions, ReadOptions{Bad: opts.Bad}, j.prediction)
	if err != nil {
		return nil, fmt.Errorf("reading predictions: %w", err)
	}
	r := j.result()
	r.PredictionsRead, r.LabelsRead = pst, lst
	return r, nil
}

// periodJoin is JudgePeriod's state: labels first, then predictions.
type periodJoin struct {
	opts        PeriodOptions
	start, end  int64 // the period in Unix ns; 0: unbounded
	bounded     bool
	horizon     int64
	labelIDs    idIndex
	idLabels    []idLabel
	entities    *entityIndex
	rowIDs      idIndex
	rows        []periodRow
	champions   versionSet
	challengers versionSet
	predicting  bool  // a prediction came: no more labels
	next        int64 // the earliest window end read after the period; 0: none
	counts      PeriodCounts
}

// idLabel is a label by inference id and whether a prediction matched it.
type idLabel struct {
	value   float64
	matched bool
}

// periodRow is one prediction of the period, as judged: 40 bytes.
type periodRow struct {
	score, challenger float64
	label             float64 // NaN: unlabelled
	written           int64   // Unix ns; 0: unknown
	version           int32   // into champions
	challengerVersion int32   // into challengers; -1: none scored it
}

// versionSet names model versions by index, with their counts.
type versionSet struct {
	idx    map[string]int32
	names  []string
	counts []ModelCounts
}

func (s *versionSet) of(name string) int32 {
	if i, ok := s.idx[name]; ok {
		return i
	}
	if s.idx == nil {
		s.idx = map[string]int32{}
	}
	i := int32(len(s.names))
	s.idx[name] = i
	s.names = append(s.names, name)
	s.counts = append(s.counts, ModelCounts{})
	return i
}

func newPeriodJoin(o PeriodOptions) (*periodJoin, error) {
	if o.Problem == "" {
		o.Problem = ProblemBinary
	}
	switch o.Problem {
	case ProblemBinary:
		if err := o.Quality.Validate(); err != nil {
			return nil, err
		}
	case ProblemRegression:
		if o.Horizon > 0 {
			return nil, errors.New("horizon: a horizon join makes binary labels (an event or none): it cannot judge a regression")
		}
	default:
		return nil, fmt.Errorf("problem %q: want %s or %s", o.Problem, ProblemBinary, ProblemRegression)
	}
	if o.Horizon < 0 {
		return nil, fmt.Errorf("horizon %v: want 0 (by id) or more", o.Horizon)
	}
	j := &periodJoin{opts: o, horizon: int64(o.Horizon), labelIDs: newIDIndex(), rowIDs: newIDIndex(), entities: newEntityIndex()}
	var ok bool
	if !o.Start.IsZero() {
		if j.start, ok = unixNano(o.Start); !ok {
			return nil, fmt.Errorf("period start %v: out of range", o.Start)
		}
		j.bounded = true
	}
	if !o.End.IsZero() {
		if j.end, ok = unixNano(o.End); !ok {
			return nil, fmt.Errorf("period end %v: out of range", o.End)
		}
		if j.bounded && j.end <= j.start {
			return nil, fmt.Errorf("period [%v, %v): the end is not after the start", o.Start, o.End)
		}
		j.bounded = true
	}
	return j, nil
}

// unixNano is t in Unix nanoseconds, when it has one (1678 to 2262).
func unixNano(t time.Time) (int64, bool) {
	if t.IsZero() {
		return 0, false
	}
	n := t.UnixNano()
	return n, time.Unix(0, n).Equal(t)
}

// addSat is a+b for b >= 0, at most math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// label holds a label; every label comes before the first prediction.
func (j *periodJoin) label(l Label) error {
	if j.predicting {
		return errors.New("a label after the predictions: a period's labels are all read first")
	}
	j.counts.Labels++
	if l.ID != "" {
		if i, ok := j.labelIDs.get(l.ID); ok {
			j.idLabels[i].value = l.Value
			j.counts.DuplicateLabels++
			return nil
		}
		if len(j.idLabels) == math.MaxInt32 {
			return errors.New("over 2^31 labels in one period: judge shorter periods")
		}
		j.labelIDs.put(l.ID, int32(len(j.idLabels)))
		j.idLabels = append(j.idLabels, idLabel{value: l.Value})
		return nil
	}
	if l.Entity == "" || l.Time.IsZero() {
		return errors.New("a label with no inference id, and no entity and time to judge by")
	}
	t, ok := unixNano(l.Time)
	switch {
	case j.horizon == 0:
		j.counts.LabelsWithoutID++
	case !ok || j.start != 0 && t <= j.start || j.end != 0 && t > addSat(j.end, j.horizon):
		j.counts.LabelsOutside++
	default:
		j.entities.add(l.Entity, t, l.Value == 1)
	}
	return nil
}

// prediction judges a prediction of the period, or counts it outside.
func (j *periodJoin) prediction(p Prediction) error {
	if !j.predicting {
		j.predicting = true
		j.counts.DuplicateLabels += j.entities.seal()
	}
	v := j.champions.of(p.ModelVersion)
	ch := int32(-1)
	if p.ChallengerVersion != "" {
		ch = j.challengers.of(p.ChallengerVersion)
	}
	count := func(f func(*ModelCounts)) {
		f(&j.counts.ModelCounts)
		f(&j.champions.counts[v])
		if ch >= 0 {
			f(&j.challengers.counts[ch])
		}
	}
	t, timed := unixNano(p.WindowEnd)
	if j.bounded && (!timed || j.start != 0 && t <= j.start || j.end != 0 && t > j.end) {
		count(func(c *ModelCounts) { c.Outside++ })
		if timed && j.end != 0 && t > j.end && (j.next == 0 || t < j.next) {
			j.next = t
		}
		return nil
	}
	row := periodRow{score: p.Score, challenger: p.ChallengerScore, label: math.NaN(), version: v, challengerVersion: ch}
	if w, ok := unixNano(p.Written); ok {
		row.written = w
	}
	if ch < 0 {
		row.challenger = math.NaN()
	}
	if i, ok := j.labelIDs.get(p.ID); ok {
		row.label = j.idLabels[i].value
		j.idLabels[i].matched = true
	} else if j.horizon > 0 && timed && p.Entity != "" {
		row.label = 0
		if j.entities.positiveWithin(p.Entity, t, j.horizon) {
			row.label = 1
		}
	}
	if i, ok := j.rowIDs.get(p.ID); ok && p.ID != "" {
		count(func(c *ModelCounts) { c.Duplicates++ })
		if kept := &j.rows[i]; replaces(kept.written, row.written) {
			*kept = row
		}
		return nil
	}
	if len(j.rows) == math.MaxInt32 {
		return errors.New("over 2^31 predictions in one period: judge shorter periods")
	}
	if p.ID != "" {
		j.rowIDs.put(p.ID, int32(len(j.rows)))
	}
	j.rows = append(j.rows, row)
	return nil
}

// result accumulates the kept rows into each version's statistics.
func (j *periodJoin) result() *PeriodQuality {
	if !j.predicting {
		j.counts.DuplicateLabels += j.entities.seal()
	}
	problem, o := j.opts.Problem, j.opts.Quality
	all := NewAccumulator(problem, o)
	accs := func(n int) []Accumulator {
		out := make([]Accumulator, n)
		for i := range out {
			out[i] = NewAccumulator(problem, o)
		}
		return out
	}
	champ, chal, paired := accs(len(j.champions.names)), accs(len(j.challengers.names)), accs(len(j.challengers.names))
	pc, cc := j.champions.counts, j.challengers.counts
	for _, r := range j.rows {
		count := func(f func(*ModelCounts)) {
			f(&j.counts.ModelCounts)
			f(&pc[r.version])
			if r.challengerVersion >= 0 {
				f(&cc[r.challengerVersion])
			}
		}
		count(func(c *ModelCounts) { c.Predictions++ })
		if math.IsNaN(r.label) {
			count(func(c *ModelCounts) { c.Unlabelled++ })
			continue
		}
		count(func(c *ModelCounts) { c.Labelled++ })
		all.Add(r.score, r.label)
		champ[r.version].Add(r.score, r.label)
		if c := r.challengerVersion; c >= 0 {
			chal[c].Add(r.challenger, r.label)
			paired[c].Add(r.score, r.label)
		}
	}
	c := j.counts
	c.IDLabels = int64(len(j.idLabels))
	for _, l := range j.idLabels {
		if !l.matched {
			c.UnmatchedLabels++
		}
	}
	c.EntityLabels = j.entities.distinct()
	out := &PeriodQuality{All: all.Statistics(), Counts: c}
	if j.next != 0 {
		out.NextWindowEnd = time.Unix(0, j.next).UTC()
	}
	for _, role := range []Role{RoleChampion, RoleChallenger} {
		set, acc := &j.champions, champ
		if role == RoleChallenger {
			set, acc = &j.challengers, chal
		}
		first := len(out.Models)
		for i, name := range set.names {
			// A version named only by rows outside the period (a file
			// spans periods) served none of it: it is not judged here.
			if set.counts[i].Predictions == 0 {
				continue
			}
			m := ModelQuality{Version: name, Role: role, Statistics: acc[i].Statistics(), Counts: set.counts[i]}
			if role == RoleChallenger {
				m.Champion = paired[i].Statistics()
			}
			out.Models = append(out.Models, m)
		}
		slices.SortFunc(out.Models[first:], func(a, b ModelQuality) int { return cmp.Compare(a.Version, b.Version) })
	}
	return out
}

// Model is the quality of version in role, nil when it scored no
// prediction read.
func (q *PeriodQuality) Model(version string, role Role) *ModelQuality {
	for i := range q.Models {
		if m := &q.Models[i]; m.Version == version && m.Role == role {
			return m
		}
	}
	return nil
}
