package dataset

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/monitor/quality"
)

// p0 is the start of the periods these tests judge.
var p0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

// rowLabel is the label the join gave prediction id: NaN when none, and
// false when it holds no row of that id.
func rowLabel(t *testing.T, j *periodJoin, id string) float64 {
	t.Helper()
	i, ok := j.rowIDs.get(id)
	if !ok {
		t.Fatalf("no row of prediction %s", id)
	}
	return j.rows[i].label
}

func mustJoin(t *testing.T, o PeriodOptions) *periodJoin {
	t.Helper()
	j, err := newPeriodJoin(o)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func addLabels(t *testing.T, j *periodJoin, ls ...Label) {
	t.Helper()
	for _, l := range ls {
		if err := j.label(l); err != nil {
			t.Fatal(err)
		}
	}
}

func addPredictions(t *testing.T, j *periodJoin, ps ...Prediction) {
	t.Helper()
	for _, p := range ps {
		if p.ChallengerVersion == "" {
			p.ChallengerScore = math.NaN()
		}
		if err := j.prediction(p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHorizonJoin: a failure of m-1 at T judges m-1's predictions whose
// window ended in [T - h, T) positive, exactly at both edges (T - h is
// in, T is not, nor T - h - 1ns); other entities' labels judge nothing of
// m-1's; a negative label makes nothing positive; a label of an id judges
// its prediction by id whatever the horizon says; a label replayed (the
// same entity, time and value) counts once.
func TestHorizonJoin(t *testing.T) {
	const h = time.Hour
	T := p0.Add(90 * time.Minute)
	j := mustJoin(t, PeriodOptions{Horizon: h})
	addLabels(t, j,
		Label{Value: 1, Entity: "m-1", Time: T},
		Label{Value: 1, Entity: "m-1", Time: T}, // a replay's copy
		Label{Value: 1, Entity: "m-2", Time: T.Add(-10 * time.Minute)},
		Label{Value: 0, Entity: "m-3", Time: T},
		Label{Value: 0, Entity: "m-3", Time: T}, // a replay's copy
		Label{ID: "byid", Value: 0, Entity: "m-1", Time: T},
	)
	p := func(id, entity string, at time.Time) Prediction {
		return Prediction{ID: id, Score: 0.5, Entity: entity, WindowEnd: at}
	}
	addPredictions(t, j,
		p("before", "m-1", T.Add(-h-time.Nanosecond)),
		p("first", "m-1", T.Add(-h)),
		p("middle", "m-1", T.Add(-h/2)),
		p("last", "m-1", T.Add(-time.Nanosecond)),
		p("at", "m-1", T),
		p("after", "m-1", T.Add(time.Minute)),
		p("other", "m-4", T.Add(-h/2)),
		p("m2", "m-2", T.Add(-h/2)),
		p("m3", "m-3", T.Add(-h/2)),
		p("byid", "m-1", T.Add(-h/2)),
		p("noentity", "", T.Add(-h/2)),
		p("notime", "m-1", time.Time{}),
	)
	for id, want := range map[string]float64{
		"before": 0, "first": 1, "middle": 1, "last": 1, "at": 0, "after": 0,
		"other": 0, "m2": 1, "m3": 0, "byid": 0,
	} {
		if got := rowLabel(t, j, id); got != want {
			t.Errorf("prediction %s: label %v, want %v", id, got, want)
		}
	}
	for _, id := range []string{"noentity", "notime"} {
		if got := rowLabel(t, j, id); !math.IsNaN(got) {
			t.Errorf("prediction %s: label %v, want none: it cannot be judged by entity", id, got)
		}
	}
	q := j.result()
	c := q.Counts
	if c.Labels != 6 || c.DuplicateLabels != 2 || c.EntityLabels != 3 || c.IDLabels != 1 || c.UnmatchedLabels != 0 {
		t.Errorf("label counts %+v: want 6 read, 2 repeats, 3 by entity, 1 by id, matched", c)
	}
	if c.Predictions != 12 || c.Labelled != 10 || c.Unlabelled != 2 {
		t.Errorf("prediction counts %+v: want 12, 10 labelled, 2 not", c.ModelCounts)
	}
	// At 0.5 every prediction is positive: the four the horizon makes
	// positive are true positives, the six others false ones.
	if cm := q.All.Binary.ConfusionMatrix; cm != (quality.ConfusionMatrix{TruePositives: 4, FalsePositives: 6}) {
		t.Errorf("confusion matrix %+v, want TP 4 FP 6", cm)
	}
}

// TestHorizonPeriod: predictions outside (Start, End] of window_end (or
// without one) are skipped and counted, per version; labels whose time
// reaches no prediction of the period (at or before Start, after End +
// horizon) are counted and not held; a label just inside either reach
// judges.
func TestHorizonPeriod(t *testing.T) {
	const h = time.Hour
	end := p0.Add(time.Hour)
	j := mustJoin(t, PeriodOptions{Horizon: h, Start: p0, End: end})
	addLabels(t, j,
		Label{Value: 1, Entity: "m-1", Time: p0},                           // reaches nothing: t < T <= Start
		Label{Value: 1, Entity: "m-1", Time: end.Add(h + time.Nanosecond)}, // reaches nothing: t + h <= End + h
		Label{Value: 1, Entity: "m-2", Time: p0.Add(2 * time.Nanosecond)},  // judges t = Start + 1ns
		Label{Value: 1, Entity: "m-3", Time: end.Add(h)},                   // judges t = End
	)
	addPredictions(t, j,
		Prediction{ID: "a", Score: 0.9, ModelVersion: "v1", Entity: "m-2", WindowEnd: p0.Add(time.Nanosecond)},
		Prediction{ID: "b", Score: 0.9, ModelVersion: "v1", Entity: "m-3", WindowEnd: end},
		Prediction{ID: "c", Score: 0.9, ModelVersion: "v1", Entity: "m-1", WindowEnd: p0},
		Prediction{ID: "d", Score: 0.9, ModelVersion: "v2", Entity: "m-1", WindowEnd: end.Add(time.Nanosecond), ChallengerVersion: "c1", ChallengerScore: 0.1},
		Prediction{ID: "e", Score: 0.9, ModelVersion: "v2", Entity: "m-1"},
		Prediction{ID: "f", Score: 0.9, ModelVersion: "v2", Entity: "m-1", WindowEnd: p0.Add(30 * time.Minute)},
	)
	for id, want := range map[string]float64{"a": 1, "b": 1, "f": 0} {
		if got := rowLabel(t, j, id); got != want {
			t.Errorf("prediction %s: label %v, want %v", id, got, want)
		}
	}
	q := j.result()
	if !q.NextWindowEnd.Equal(end.Add(time.Nanosecond)) {
		t.Errorf("next window end %v, want d's, the only one after the period", q.NextWindowEnd)
	}
	if c := q.Counts; c.LabelsOutside != 2 || c.EntityLabels != 2 || c.Outside != 3 || c.Predictions != 3 {
		t.Errorf("counts %+v: want 2 labels outside, 2 held, 3 predictions outside, 3 judged", c)
	}
	for _, c := range []struct {
		version string
		role    Role
		want    ModelCounts
	}{
		{"v1", RoleChampion, ModelCounts{Predictions: 2, Labelled: 2, Outside: 1}},
		{"v2", RoleChampion, ModelCounts{Predictions: 1, Labelled: 1, Outside: 2}},
	} {
		if m := q.Model(c.version, c.role); m == nil || m.Counts != c.want {
			t.Errorf("%s %s: %+v, want counts %+v", c.role, c.version, m, c.want)
		}
	}
	// c1 scored only d, after the period: it served none of it, so it is
	// not judged (no statistics, no promotion verdict on no rows).
	if m := q.Model("c1", RoleChallenger); m != nil {
		t.Errorf("challenger c1 judged with %+v; it scored no prediction of the period", m.Counts)
	}
}

// TestPeriodReplayedPredictions: a prediction read twice (a replay wrote
// its window again) is judged once, the copy written first whichever is
// read first, and counted as a duplicate of its versions; without write
// times, the first read.
func TestPeriodReplayedPredictions(t *testing.T) {
	j := mustJoin(t, PeriodOptions{})
	addLabels(t, j, Label{ID: "a", Value: 1}, Label{ID: "b", Value: 1})
	w := p0.Add(2 * time.Hour)
	addPredictions(t, j,
		Prediction{ID: "a", Score: 0.2, ModelVersion: "v1", Written: w.Add(time.Minute), ChallengerVersion: "c1", ChallengerScore: 0.2},
		Prediction{ID: "a", Score: 0.8, ModelVersion: "v1", Written: w, ChallengerVersion: "c1", ChallengerScore: 0.8},
		Prediction{ID: "a", Score: 0.3, ModelVersion: "v1", Written: w.Add(time.Hour), ChallengerVersion: "c1", ChallengerScore: 0.3},
		Prediction{ID: "b", Score: 0.9, ModelVersion: "v1"},
		Prediction{ID: "b", Score: 0.1, ModelVersion: "v1"},
		Prediction{ID: "u", Score: 0.1, ModelVersion: "v1"},
		Prediction{ID: "u", Score: 0.1, ModelVersion: "v1"},
	)
	q := j.result()
	if cm := q.All.Binary.ConfusionMatrix; cm != (quality.ConfusionMatrix{TruePositives: 2}) {
		t.Errorf("confusion matrix %+v, want TP 2: a at 0.8 (written first), b at 0.9 (read first)", cm)
	}
	if m := q.Model("v1", RoleChampion); m.Counts != (ModelCounts{Predictions: 3, Labelled: 2, Unlabelled: 1, Duplicates: 4}) {
		t.Errorf("v1 counts %+v", m.Counts)
	}
	if m := q.Model("c1", RoleChallenger); m.Counts != (ModelCounts{Predictions: 1, Labelled: 1, Duplicates: 2}) ||
		m.Statistics.Binary.ConfusionMatrix != (quality.ConfusionMatrix{TruePositives: 1}) {
		t.Errorf("c1: %+v %+v, want its one row at 0.8, written first", m.Counts, m.Statistics.Binary.ConfusionMatrix)
	}
}

// writeFiles writes name → content under a new directory and returns the
// objects Open finds there.
func writeFiles(t *testing.T, files map[string]string) []Object {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := Open(t.Context(), nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestJudgePeriodByID: through JudgePeriod, labels join by id: a late
// label (in a later hour's file) joins like any; a label of an unknown id
// is counted unmatched; a label given twice counts once, the last read;
// a label without an id judges nothing in a join by id; a bad line is
// skipped by the Bad rule and counted; a prediction outside the period
// is not judged, even with a label. Every label read is counted once.
func TestJudgePeriodByID(t *testing.T) {
	preds := writeFiles(t, map[string]string{"p.csv": "inference_id,score,model_version,window_end\n" +
		"a,0.9,v1,2026-12-03T08:10:00Z\nb,0.8,v1,2026-12-03T08:20:00Z\nc,0.3,v1,2026-12-03T08:30:00Z\n" +
		"d,0.7,v1,2026-12-03T08:40:00Z\ne,0.9,v1,2026-12-03T09:10:00Z\nf,0.6,v1,oops\n"})
	labels := writeFiles(t, map[string]string{
		"08/a.jsonl": gtEntity("a", "1", "", "") + gtEntity("b", "1", "", "") + gtEntity("zz", "1", "", "") + gtEntity("c", "1", "", ""),
		"09/b.jsonl": gtEntity("c", "0", "", "") + gtEntity("d", "0", "", "") + gtEntity("e", "1", "", "") +
			gtEntity("", "1", "m-1", "2026-12-03T08:30:00Z") + "{not json\n",
	})
	var bad []*RecordError
	q, err := JudgePeriod(t.Context(), preds, labels, PeriodOptions{Start: p0, End: p0.Add(time.Hour),
		Bad: func(e *RecordError) error { bad = append(bad, e); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 2 || q.PredictionsRead.Bad != 1 || q.LabelsRead.Bad != 1 {
		t.Errorf("bad records %v (%+v, %+v), want the window_end and the JSON line", bad, q.PredictionsRead, q.LabelsRead)
	}
	// a 0.9 (1) TP, b 0.8 (1) TP, c 0.3 (0, its last label) TN, d 0.7 (0) FP.
	if cm := q.All.Binary.ConfusionMatrix; cm != (quality.ConfusionMatrix{TruePositives: 2, TrueNegatives: 1, FalsePositives: 1}) {
		t.Errorf("confusion matrix %+v, want TP 2 TN 1 FP 1", cm)
	}
	c := q.Counts
	want := PeriodCounts{ModelCounts: ModelCounts{Predictions: 4, Labelled: 4, Outside: 1},
		Labels: 8, IDLabels: 6, UnmatchedLabels: 2, DuplicateLabels: 1, LabelsWithoutID: 1}
	if c != want {
		t.Errorf("counts %+v\nwant %+v", c, want)
	}
	if c.Labels != c.IDLabels+c.EntityLabels+c.DuplicateLabels+c.LabelsWithoutID+c.LabelsOutside {
		t.Errorf("counts %+v: a label read is not counted exactly once", c)
	}
	if len(q.Models) != 1 || q.Models[0].Version != "v1" || q.Models[0].Role != RoleChampion || q.Models[0].Champion != nil {
		t.Errorf("models %+v, want v1 as the champion alone", q.Models)
	}
}

// TestJudgePeriodChallenger: a shadow challenger is judged on the rows it
// scored, and the served score on exactly those rows beside it, whichever
// champion version served them; a canary's version (another
// model_version) is a champion of its own rows; rows the challenger did
// not score count for the champion only.
func TestJudgePeriodChallenger(t *testing.T) {
	var b strings.Builder
	b.WriteString("inference_id,score,model_version,challenger_score,challenger_model_version\n")
	rows := []struct {
		id             string
		score          float64
		version        string
		challenger     string // "" none
		challengerName string
		label          string // "" none
	}{
		{"r1", 0.9, "v1", "0.2", "c1", "1"},        // champion TP, challenger FN
		{"r2", 0.8, "v1", "0.7", "c1", "0"},        // FP, FP
		{"r3", 0.2, "v1", "0.1", "c1", "0"},        // TN, TN
		{"r4", 0.3, "v2", "0.9", "c1", "1"},        // canary FN, challenger TP
		{"r5", 0.9, "v1", "", "c1", "1"},           // TP; the challenger's score missing
		{"r6", 0.1, "v1", "", "", "1"},             // FN; no challenger
		{"r7", 0.9, "v1", "0.9", "c1", ""},         // unlabelled
		{"r8", 0.9, "v2", "0.6", "c2", "1"},        // canary TP; another challenger TP
		{"r9", math.NaN(), "v1", "0.8", "c1", "0"}, // champion's score missing; challenger FP
	}
	var labels strings.Builder
	for _, r := range rows {
		score := fmt.Sprint(r.score)
		if math.IsNaN(r.score) {
			score = ""
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s\n", r.id, score, r.version, r.challenger, r.challengerName)
		if r.label != "" {
			labels.WriteString(gtEntity(r.id, r.label, "", ""))
		}
	}
	q, err := JudgePeriod(t.Context(), writeFiles(t, map[string]string{"p.csv": b.String()}),
		writeFiles(t, map[string]string{"l.jsonl": labels.String()}), PeriodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, m := range q.Models {
		order = append(order, string(m.Role)+" "+m.Version)
	}
	if got := strings.Join(order, ", "); got != "champion v1, champion v2, challenger c1, challenger c2" {
		t.Errorf("models %s: want champions then challengers, by version", got)
	}
	type cmWant struct {
		cm      quality.ConfusionMatrix
		missing int64
	}
	check := func(what string, st *quality.Statistics, want cmWant) {
		t.Helper()
		if st == nil || st.Binary == nil {
			t.Fatalf("%s: no binary statistics", what)
		}
		if st.Binary.ConfusionMatrix != want.cm || st.Dataset.NumMissing != want.missing {
			t.Errorf("%s: %+v, %d missing; want %+v, %d", what, st.Binary.ConfusionMatrix, st.Dataset.NumMissing, want.cm, want.missing)
		}
	}
	c1, c2 := q.Model("c1", RoleChallenger), q.Model("c2", RoleChallenger)
	check("champion v1", q.Model("v1", RoleChampion).Statistics, cmWant{quality.ConfusionMatrix{TruePositives: 2, FalsePositives: 1, TrueNegatives: 1, FalseNegatives: 1}, 1})
	check("champion v2", q.Model("v2", RoleChampion).Statistics, cmWant{quality.ConfusionMatrix{TruePositives: 1, FalseNegatives: 1}, 0})
	// c1 scored r1-r5, r7, r9; labelled: r1-r5, r9.
	check("challenger c1", c1.Statistics, cmWant{quality.ConfusionMatrix{TruePositives: 1, FalseNegatives: 1, FalsePositives: 2, TrueNegatives: 1}, 1})
	check("the champion on c1's rows", c1.Champion, cmWant{quality.ConfusionMatrix{TruePositives: 2, FalsePositives: 1, TrueNegatives: 1, FalseNegatives: 1}, 1})
	check("challenger c2", c2.Statistics, cmWant{quality.ConfusionMatrix{TruePositives: 1}, 0})
	check("the champion on c2's rows", c2.Champion, cmWant{quality.ConfusionMatrix{TruePositives: 1}, 0})
	if c1.Counts != (ModelCounts{Predictions: 7, Labelled: 6, Unlabelled: 1}) {
		t.Errorf("c1 counts %+v", c1.Counts)
	}
	for _, m := range []*ModelQuality{c1, c2} {
		a, b := m.Statistics.Dataset, m.Champion.Dataset
		if a.ItemCount+a.NumMissing != b.ItemCount+b.NumMissing {
			t.Errorf("%s and the champion beside it judge different rows: %+v, %+v", m.Version, a, b)
		}
	}
}

// TestJudgePeriodOptions: options that cannot make a judgement are
// refused, naming what is wrong.
func TestJudgePeriodOptions(t *testing.T) {
	for _, c := range []struct {
		o    PeriodOptions
		want string
	}{
		{PeriodOptions{Problem: "multiclass"}, `problem "multiclass": want binary or regression`},
		{PeriodOptions{Problem: ProblemRegression, Horizon: time.Hour}, "horizon: a horizon join makes binary labels"},
		{PeriodOptions{Horizon: -time.Hour}, "horizon -1h0m0s: want 0 (by id) or more"},
		{PeriodOptions{Quality: quality.Options{Threshold: 2}}, "threshold: 2 is not in (0, 1]"},
		{PeriodOptions{Start: p0, End: p0}, "the end is not after the start"},
	} {
		if _, err := JudgePeriod(t.Context(), nil, nil, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	// Regression by id.
	q, err := JudgePeriod(t.Context(), writeFiles(t, map[string]string{"p.csv": "inference_id,score\na,2\nb,4\n"}),
		writeFiles(t, map[string]string{"l.csv": "inference_id,label\na,3\nb,4\n"}), PeriodOptions{Problem: ProblemRegression})
	if err != nil || q.All.Regression == nil || q.All.Regression.MAE.Value != 0.5 {
		t.Errorf("regression: %+v, %v; want MAE 0.5", q, err)
	}
}

// TestPeriodPredictionAllocs: judging a prediction allocates nothing but
// its row and its place in the id set: a replay's copy and a prediction
// outside the period, which add neither, allocate nothing at all.
func TestPeriodPredictionAllocs(t *testing.T) {
	j := mustJoin(t, PeriodOptions{Horizon: time.Hour, Start: p0, End: p0.Add(time.Hour)})
	addLabels(t, j, Label{Value: 1, Entity: "m-1", Time: p0.Add(30 * time.Minute)}, Label{ID: "0123456789abcdef0123456789abcdef", Value: 1})
	in := Prediction{ID: "0123456789abcdef0123456789abcdef", Score: 0.9, ModelVersion: "v1", Entity: "m-1", WindowEnd: p0.Add(10 * time.Minute),
		ChallengerScore: 0.5, ChallengerVersion: "c1"}
	out := in
	out.WindowEnd = p0.Add(-time.Minute)
	addPredictions(t, j, in, out)
	if n := testing.AllocsPerRun(100, func() {
		_ = j.prediction(in)
		_ = j.prediction(out)
	}); n != 0 {
		t.Errorf("%v allocations per replayed and outside prediction, want 0", n)
	}
}
