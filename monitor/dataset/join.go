package dataset

// The join of labels to the predictions they judge, by inference id, for
// model quality: the home of its rules (which label, which prediction
// wins: replaces), which `monitor quality` uses here and JudgePeriod
// (period.go), the stream's per-period join, shares.

import (
	"errors"

	"github.com/streamscore/streamscore/monitor/quality"
)

// Problem is a model-quality problem type, as Model Monitor names its
// problem types, in lower case.
type Problem string

// The problem types model quality is computed for.
const (
	ProblemBinary     Problem = "binary"
	ProblemRegression Problem = "regression"
)

// Versions are the model versions of the predictions read, by index.
func (j *QualityJoin) Versions() []string { return j.versions }

// VersionPredictions counts the predictions of the version at index v.
func (j *QualityJoin) VersionPredictions(v int) int64 { return j.byVersion[v].predictions }

// QualityJoin joins labels to predictions by inference id. The labels are
// held, one entry each, in the order first read; the predictions stream
// past them and only fill in the entries they match.
type QualityJoin struct {
	index   map[string]int32 // inference id → entry
	entries []joinEntry
	// versions are the model versions seen, by index; byVersion counts
	// each one's predictions and those without a label.
	versions   []string
	versionIdx map[string]int32
	byVersion  []versionCounts

	JoinCounts
}

// JoinCounts is what a join read and left out.
type JoinCounts struct {
	Labels          int64 // labels read
	DuplicateLabels int64 // labels of an id already labelled (the last read wins)
	Predictions     int64 // predictions read, of the version asked for
	DuplicateIDs    int64 // predictions of an id already predicted (the one written first wins)
	Unlabelled      int64 // predictions without a label
	OtherVersions   int64 // predictions of other model versions
}

// joinEntry is one label and the prediction it judges: 32 bytes, plus the
// id and the map's slot (about 100 bytes a label in all, measured).
type joinEntry struct {
	label   float64
	score   float64
	written int64 // the prediction's write time (Unix ns); 0: unknown
	version int32 // index into versions; -1: no prediction yet
}

type versionCounts struct{ predictions, unlabelled int64 }

// NewQualityJoin returns an empty join.
func NewQualityJoin() *QualityJoin {
	return &QualityJoin{index: map[string]int32{}, versionIdx: map[string]int32{}}
}

// Label adds a label; a second label of an id replaces the first.
func (j *QualityJoin) Label(l Label) error {
	j.Labels++
	if i, ok := j.index[l.ID]; ok {
		j.entries[i].label = l.Value
		j.DuplicateLabels++
		return nil
	}
	if len(j.entries) == 1<<31-1 {
		return errors.New("over 2^31 labels: split the labels by date")
	}
	j.index[l.ID] = int32(len(j.entries))
	j.entries = append(j.entries, joinEntry{label: l.Value, version: -1})
	return nil
}

// Prediction matches a prediction to its label. Of two predictions of one
// id, the one written first is kept (the readers' rule of docs/sinks.md:
// a replay's row comes later); without write times, the first read.
func (j *QualityJoin) Prediction(p Prediction, only string) {
	if only != "" && p.ModelVersion != only {
		j.OtherVersions++
		return
	}
	j.Predictions++
	v, ok := j.versionIdx[p.ModelVersion]
	if !ok {
		v = int32(len(j.versions))
		j.versionIdx[p.ModelVersion] = v
		j.versions = append(j.versions, p.ModelVersion)
		j.byVersion = append(j.byVersion, versionCounts{})
	}
	j.byVersion[v].predictions++
	i, ok := j.index[p.ID]
	if !ok {
		j.Unlabelled++
		j.byVersion[v].unlabelled++
		return
	}
	e := &j.entries[i]
	var written int64
	if !p.Written.IsZero() {
		written = p.Written.UnixNano()
	}
	if e.version >= 0 {
		j.DuplicateIDs++
		if !replaces(e.written, written) {
			return
		}
	}
	e.score, e.written, e.version = p.Score, written, v
}

// replaces reports whether a prediction written at written replaces the
// one of its id kept, written at kept (Unix ns; 0: unknown): the one
// written first wins, the readers' rule of docs/sinks.md (a replay's row
// comes later, whichever is read first); without both times, the one
// read first.
func replaces(kept, written int64) bool {
	return kept != 0 && written != 0 && written < kept
}

// Joined is the number of labels a prediction matched.
func (j *QualityJoin) Joined() int64 {
	var n int64
	for _, e := range j.entries {
		if e.version >= 0 {
			n++
		}
	}
	return n
}

// Accumulator is quality.Binary or quality.Regression, as the problem says.
type Accumulator struct {
	binary     *quality.Binary
	regression *quality.Regression
}

// NewAccumulator returns the accumulator of the problem.
func NewAccumulator(problem Problem, o quality.Options) Accumulator {
	if problem == ProblemRegression {
		return Accumulator{regression: quality.NewRegression()}
	}
	return Accumulator{binary: quality.NewBinary(o)}
}

// Add adds a joined row: a binary label is 1 for the positive class.
func (a Accumulator) Add(score, label float64) {
	if a.binary != nil {
		a.binary.Add(score, label == 1)
		return
	}
	a.regression.Add(score, label)
}

// Statistics is the model-quality statistics.json of the rows added.
func (a Accumulator) Statistics() *quality.Statistics {
	if a.binary != nil {
		return a.binary.Statistics()
	}
	return a.regression.Statistics()
}

// Threshold is a binary accumulator's threshold, defaults applied (0 for
// a regression).
func (a Accumulator) Threshold() float64 {
	if a.binary != nil {
		return a.binary.Options().Threshold
	}
	return 0
}

// Missing counts the rows left out of the metrics for a missing score.
func (a Accumulator) Missing() int64 {
	if a.binary != nil {
		return a.binary.Missing()
	}
	return a.regression.Missing()
}

// QualityResult is the joined rows' quality, over all and per model version.
type QualityResult struct {
	All       Accumulator
	ByVersion []Accumulator // by version index (QualityJoin.Versions)
	Joined    []int64       // rows joined, by version index
}

// Accumulate feeds the joined rows, in label order, to the Accumulators.
func (j *QualityJoin) Accumulate(problem Problem, o quality.Options) QualityResult {
	r := QualityResult{All: NewAccumulator(problem, o), Joined: make([]int64, len(j.versions))}
	for range j.versions {
		r.ByVersion = append(r.ByVersion, NewAccumulator(problem, o))
	}
	for _, e := range j.entries {
		if e.version < 0 {
			continue
		}
		r.All.Add(e.score, e.label)
		r.ByVersion[e.version].Add(e.score, e.label)
		r.Joined[e.version]++
	}
	return r
}
