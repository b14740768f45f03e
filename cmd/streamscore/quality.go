package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/monitor/quality"
)

// The problem types `monitor quality` computes (dataset's).
const (
	problemBinary     = string(dataset.ProblemBinary)
	problemRegression = string(dataset.ProblemRegression)
)

func newMonitorQualityCmd() *cobra.Command {
	var f qualityFlags
	cmd := &cobra.Command{
		Use:   "quality --predictions URI --labels URI --out DIR",
		Short: "Join labels to predictions; write model-quality statistics.json and constraints.json",
		Long: `Joins ground-truth labels to a model's predictions by inference id and writes
the model's quality in SageMaker Model Monitor's model-quality formats:
OUT/statistics.json (binary_classification_metrics: confusion matrix at the
threshold, precision, recall, accuracy, F0.5/F1/F2, AUC, ROC and
precision-recall curves, the best constant classifier's, and brier_score;
or regression_metrics: mae, mse, rmse, r2) and OUT/constraints.json (the
constraints Model Monitor's baselining suggests from them). With --baseline,
a directory or S3 prefix holding constraints.json from an earlier run (or
only its statistics.json, judged by the constraints suggested from it), it
also writes OUT/constraint_violations.json.

--predictions is a CSV with a header line naming inference_id and score (and
model_version, if there is one; other columns are ignored), or the S3 sink's
Parquet results: the id is result_id as 32 lowercase hex digits, the form
alerts and the feature table show; updates and partial rows are left out, as
the drift monitor leaves them out, and of a window written twice (a replay)
the row written first is kept. --labels is a CSV with a header line naming
inference_id and label, or Model Monitor's ground-truth JSON Lines
({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata":
{"eventId": "<inference id>"}, "eventVersion": "0"}). Labels are numbers;
binary labels are 1, 0, true or false. Either input may be gzip'd, and may be
a file, a directory, s3://bucket/key or every object under s3://bucket/prefix/.

--horizon D judges by entity too (binary only): a label without an inference
id, at time T (a ground-truth record's "streamscore": {"entity": …, "time": …},
or a labels CSV's entity and time columns), judges its entity's predictions
whose window ended in [T - D, T) positive; every other prediction with an
entity and a window_end (the results' columns, or a predictions CSV's) is
negative, so the labels must cover the predictions' horizon. A label with an
id still judges its prediction by id. The summary then lists each model
version as champion (model_version) and shadow challenger
(challenger_model_version), the challenger beside the champion on the same
rows; the predictions are held, about 90 bytes each, to count a replay once.

It prints what it read and joined, and the key metrics over all joined rows
and per model_version; statistics.json is over all joined rows (--model-version
keeps one version's). Of the S3 sink's results, the champion's score is read,
not a challenger's. A joined row without a score (an empty cell, a null) is
counted as missing (num_missing) and left out of the metrics.

Predictions without a label are counted and left out; so are labels without a
prediction. A label given twice counts once: the last one read (files in name
order). The labels are held in memory while the predictions stream past:
about 100 bytes a label with 32-character ids, 1 GB for 10 million; the
predictions are never held.

Exit status: 0 when it ran (violations or not, unless --fail-on-violation); 2
when it ran and found violations with --fail-on-violation; 1 when it could not
run (a usage error, an unreadable input or baseline, more bad lines than
--skip-bad, no prediction with a label, a file it could not write).`,
		Example: `  streamscore monitor quality --predictions preds.csv --labels labels.jsonl --out quality/
  streamscore monitor quality --predictions s3://lake/results/stream=factory/ \
      --labels s3://lake/groundtruth/factory/ --horizon 1h --out failures/
  streamscore monitor quality --predictions s3://lake/results/stream=factory/dt=2026-11-24/ \
      --labels s3://lake/ground-truth/2026/11/24/ --threshold 0.7 --out today/ \
      --baseline s3://lake/baselines/factory-quality/ --fail-on-violation`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			return runQuality(cmd.Context(), cmd.OutOrStdout(), slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.predictions, "predictions", "", "the predictions: CSV or Parquet file, directory, s3://bucket/key or s3://bucket/prefix/")
	fl.StringVar(&f.labels, "labels", "", "the labels: CSV or ground-truth JSON Lines file, directory, s3://bucket/key or s3://bucket/prefix/")
	fl.StringVar(&f.out, "out", "", "directory to write statistics.json, constraints.json and constraint_violations.json to")
	fl.StringVar(&f.problem, "problem", problemBinary, "binary or regression")
	fl.Float64Var(&f.threshold, "threshold", quality.DefaultThreshold, "binary: a score >= the threshold predicts the positive class; in (0, 1]")
	fl.StringVar(&f.baseline, "baseline", "", "directory or s3://bucket/prefix/ holding constraints.json (or statistics.json) to check against")
	fl.StringVar(&f.modelVersion, "model-version", "", "only predictions of this model_version (the others are counted and left out)")
	fl.BoolVar(&f.failOnViolation, "fail-on-violation", false, "exit with status 2 when there are violations")
	fl.IntVar(&f.skipBad, "skip-bad", 0, "skip up to this many bad lines (each logged with its file and line) before failing")
	fl.DurationVar(&f.horizon, "horizon", 0, "judge by entity too: a label without an id at T judges its entity's predictions whose window ended in [T-horizon, T) (binary)")
	return cmd
}

// qualityFlags are `monitor quality`'s flags.
type qualityFlags struct {
	predictions, labels, out, problem, baseline, modelVersion string
	threshold                                                 float64
	failOnViolation                                           bool
	skipBad                                                   int
	horizon                                                   time.Duration
}

// check refuses flags that cannot make a run, before any input is read.
func (f *qualityFlags) check(cmd *cobra.Command) error {
	switch {
	case f.predictions == "":
		return errors.New("--predictions is required: a CSV or Parquet file, a directory, or an s3:// URI")
	case f.labels == "":
		return errors.New("--labels is required: a CSV or ground-truth JSON Lines file, a directory, or an s3:// URI")
	case f.out == "":
		return errors.New("--out is required: the directory to write statistics.json and constraints.json to")
	case f.baseline != "" && filepath.Clean(f.out) == filepath.Clean(f.baseline):
		return errors.New("--out is the baseline directory: this run's constraints.json would replace the baseline's")
	case f.skipBad < 0:
		return fmt.Errorf("--skip-bad %d: want 0 or more", f.skipBad)
	case f.horizon < 0:
		return fmt.Errorf("--horizon %v: want a positive duration (or none, to join by id only)", f.horizon)
	case f.horizon > 0 && f.problem == problemRegression:
		return errors.New("--horizon is for --problem binary: labels by entity say an event happened or not")
	}
	switch f.problem {
	case problemBinary:
		// 0 would read as the default: say so rather than use 0.5.
		if f.threshold == 0 {
			return errors.New("--threshold 0: a score >= 0 is always positive; want a threshold in (0, 1]")
		}
		if err := (quality.Options{Threshold: f.threshold}).Validate(); err != nil {
			return fmt.Errorf("--%w", err)
		}
	case problemRegression:
		if cmd.Flags().Changed("threshold") {
			return errors.New("--threshold is for --problem binary: a regression has no classes")
		}
	default:
		return fmt.Errorf("--problem %q: want %s or %s", f.problem, problemBinary, problemRegression)
	}
	return nil
}

// runQuality reads the labels, streams the predictions past them, and
// writes and prints the quality of the joined rows.
func runQuality(ctx context.Context, w io.Writer, log *slog.Logger, f qualityFlags) error {
	s3c, err := s3For(ctx, f.predictions, f.labels, f.baseline)
	if err != nil {
		return err
	}
	var cons *quality.Constraints
	if f.baseline != "" {
		if cons, err = dataset.LoadQualityBaseline(ctx, s3c, f.baseline); err != nil {
			return fmt.Errorf("--baseline: %w", err)
		}
	}
	bad := badLines{limit: f.skipBad, log: log}
	lobjs, err := dataset.Open(ctx, s3c, f.labels)
	if err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	pobjs, err := dataset.Open(ctx, s3c, f.predictions)
	if err != nil {
		return fmt.Errorf("--predictions: %w", err)
	}
	judge := judgeByID
	if f.horizon > 0 {
		judge = judgeByHorizon
	}
	stats, summary, err := judge(ctx, f, pobjs, lobjs, &bad)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := writeFile(filepath.Join(f.out, dataset.StatisticsFile), stats.WriteJSON); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(f.out, dataset.ConstraintsFile), quality.Suggest(stats).WriteJSON); err != nil {
		return err
	}
	summary(w)
	written := []string{filepath.Join(f.out, dataset.StatisticsFile), filepath.Join(f.out, dataset.ConstraintsFile)}
	if cons == nil {
		fmt.Fprintf(w, "wrote %s and %s\n", written[0], written[1])
		return nil
	}
	rep := quality.Check(cons, stats)
	vf := filepath.Join(f.out, dataset.ViolationsFile)
	if err := writeFile(vf, rep.WriteViolations); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s, %s and %s\n", written[0], written[1], vf)
	printQualityViolations(w, rep)
	if f.failOnViolation && len(rep.Violations) > 0 {
		return &violationsError{n: len(rep.Violations), file: vf}
	}
	return nil
}

// judgeByID joins by inference id (QualityJoin: the labels held, the
// predictions streamed), and returns the statistics to write and the
// summary to print.
func judgeByID(ctx context.Context, f qualityFlags, pobjs, lobjs []dataset.Object, bad *badLines) (*quality.Statistics, func(io.Writer), error) {
	j := dataset.NewQualityJoin()
	lst, err := dataset.ReadLabels(ctx, lobjs, dataset.LabelOptions{ReadOptions: bad.options(), Binary: f.problem == problemBinary}, j.Label)
	if err != nil {
		return nil, nil, fmt.Errorf("--labels: %w", err)
	}
	pst, err := dataset.ReadPredictions(ctx, pobjs, bad.options(), func(p dataset.Prediction) error {
		j.Prediction(p, f.modelVersion)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("--predictions: %w", err)
	}
	if j.Joined() == 0 {
		return nil, nil, fmt.Errorf("no prediction has a label: %d predictions read from %s, %d labels from %s (the ids must match: inference_id, or result_id as 32 lowercase hex digits)",
			pst.Records, f.predictions, lst.Records, f.labels)
	}
	res := j.Accumulate(dataset.Problem(f.problem), quality.Options{Threshold: f.threshold})
	stats := res.All.Statistics()
	return stats, func(w io.Writer) { printQuality(w, j, res, stats, lst, pst, bad.skipped) }, nil
}

// badLines is --skip-bad: the bad-record rule both reads share, so the
// limit is over both inputs.
type badLines struct {
	limit   int
	skipped int
	log     *slog.Logger
}

func (b *badLines) options() dataset.ReadOptions {
	if b.limit == 0 {
		return dataset.ReadOptions{} // the first bad line stops the run, as it is
	}
	return dataset.ReadOptions{Bad: func(e *dataset.RecordError) error {
		if b.skipped >= b.limit {
			return fmt.Errorf("%w (more than --skip-bad %d bad lines)", e, b.limit)
		}
		b.skipped++
		b.log.Warn("skipped a bad line", "error", e.Error())
		return nil
	}}
}

// printQuality prints what was read and joined, and the key metrics over
// all rows and per model version.
func printQuality(w io.Writer, j *dataset.QualityJoin, r dataset.QualityResult, all *quality.Statistics, lst, pst dataset.ReadStats, skipped int) {
	joined := j.Joined()
	fmt.Fprintf(w, "%s from %s, %s from %s: %s joined\n", plural(j.Predictions, "prediction"), plural(int64(pst.Files), "file"),
		plural(j.Labels, "label"), plural(int64(lst.Files), "file"), plural(joined, "row"))
	for _, c := range []struct {
		n         int64
		what, why string
	}{
		{j.Unlabelled, "prediction", "without a label (left out)"},
		{j.Labels - j.DuplicateLabels - joined, "label", "without a prediction (left out)"},
		{j.DuplicateLabels, "duplicate label", "(the last one read kept)"},
		{j.DuplicateIDs, "id", "predicted twice (the row written first kept)"},
		{j.OtherVersions, "prediction", "of other model versions (left out)"},
		{pst.LeftOut, "update or partial row", "(left out)"},
		{r.All.Missing(), "joined row", "without a score (left out of the metrics)"},
		{int64(skipped), "bad line", "skipped"},
	} {
		if c.n > 0 {
			fmt.Fprintf(w, "  %s %s\n", plural(c.n, c.what), c.why)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rows := []int{-1} // -1: all rows
	versions := j.Versions()
	if len(versions) > 1 || len(versions) == 1 && versions[0] != "" {
		order := make([]int, len(versions))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(versions[a], versions[b]) })
		rows = append(order, -1)
	}
	binary := all.Binary != nil
	if binary {
		fmt.Fprintln(tw, "model_version\tpredictions\tjoined\titems\taccuracy\tprecision\trecall\tf1\tauc\tbrier")
	} else {
		fmt.Fprintln(tw, "model_version\tpredictions\tjoined\titems\tmae\trmse\tr2")
	}
	for _, v := range rows {
		name, preds, n, st := "all", j.Predictions, joined, all
		if v >= 0 {
			name, preds, n, st = versions[v], j.VersionPredictions(v), r.Joined[v], r.ByVersion[v].Statistics()
			if name == "" {
				name = "(none)"
			}
		}
		if m := st.Binary; m != nil {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", name, preds, n, st.Dataset.ItemCount, binaryCells(m))
		} else if m := st.Regression; m != nil {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", name, preds, n, st.Dataset.ItemCount, num(m.MAE.Value), num(m.RMSE.Value), num(m.R2.Value))
		}
	}
	tw.Flush()
	if binary && all.Binary != nil {
		c := all.Binary.ConfusionMatrix
		fmt.Fprintf(w, "at threshold %s: %s, %s, %s, %s\n", num(r.All.Threshold()), plural(c.TruePositives, "true positive"),
			plural(c.FalsePositives, "false positive"), plural(c.FalseNegatives, "false negative"), plural(c.TrueNegatives, "true negative"))
	}
}

// binaryCells are the summary's binary metrics, tab-separated.
func binaryCells(m *quality.BinaryMetrics) string {
	brier := "-"
	if m.BrierScore != nil {
		brier = num(m.BrierScore.Value)
	}
	return strings.Join([]string{num(m.Accuracy.Value), num(m.Precision.Value), num(m.Recall.Value), num(m.F1.Value), num(m.AUC.Value), brier}, "\t")
}

// judgeByHorizon judges by id and by entity within --horizon
// (dataset.JudgePeriod, over every window_end), and returns the
// statistics to write (every judged row's, or --model-version's as a
// champion) and the summary to print.
func judgeByHorizon(ctx context.Context, f qualityFlags, pobjs, lobjs []dataset.Object, bad *badLines) (*quality.Statistics, func(io.Writer), error) {
	q, err := dataset.JudgePeriod(ctx, pobjs, lobjs, dataset.PeriodOptions{Problem: dataset.Problem(f.problem),
		Quality: quality.Options{Threshold: f.threshold}, Horizon: f.horizon, Bad: bad.options().Bad})
	if err != nil {
		return nil, nil, err
	}
	stats := q.All
	if f.modelVersion != "" {
		m := q.Model(f.modelVersion, dataset.RoleChampion)
		if m == nil {
			return nil, nil, fmt.Errorf("--model-version %q: no prediction of it was read", f.modelVersion)
		}
		stats = m.Statistics
	}
	if q.Counts.Labelled == 0 {
		return nil, nil, fmt.Errorf("no prediction could be judged: %d predictions read from %s, %d labels from %s (by entity, a prediction needs its entity and window_end)",
			q.PredictionsRead.Records, f.predictions, q.LabelsRead.Records, f.labels)
	}
	return stats, func(w io.Writer) { printPeriod(w, q, f.horizon, f.threshold, bad.skipped) }, nil
}

// printPeriod prints a horizon join's counts and each model version's
// metrics in each role, a challenger followed by the champion on its rows.
func printPeriod(w io.Writer, q *dataset.PeriodQuality, horizon time.Duration, threshold float64, skipped int) {
	c := q.Counts
	fmt.Fprintf(w, "%s from %s, %s from %s: %s judged (by id, and by entity within %v)\n",
		plural(q.PredictionsRead.Records, "prediction"), plural(int64(q.PredictionsRead.Files), "file"),
		plural(c.Labels, "label"), plural(int64(q.LabelsRead.Files), "file"), plural(c.Labelled, "prediction"), horizon)
	for _, l := range []struct {
		n         int64
		what, why string
	}{
		{c.Unlabelled, "prediction", "without an id label, an entity or a window_end (left out)"},
		{c.UnmatchedLabels, "label", "of an id without a prediction (left out)"},
		{c.DuplicateLabels, "duplicate label", "(counted once)"},
		{c.Duplicates, "id", "predicted twice (the row written first kept)"},
		{q.PredictionsRead.LeftOut, "update or partial row", "(left out)"},
		{q.All.Dataset.NumMissing, "judged row", "without a score (left out of the metrics)"},
		{int64(skipped), "bad line", "skipped"},
	} {
		if l.n > 0 {
			fmt.Fprintf(w, "  %s %s\n", plural(l.n, l.what), l.why)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "role\tmodel_version\tpredictions\tjudged\titems\taccuracy\tprecision\trecall\tf1\tauc\tbrier")
	row := func(role, version string, preds, judged int64, st *quality.Statistics) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", role, version, preds, judged, st.Dataset.ItemCount, binaryCells(st.Binary))
	}
	for _, m := range q.Models {
		version := cmp.Or(m.Version, "(none)")
		row(string(m.Role), version, m.Counts.Predictions, m.Counts.Labelled, m.Statistics)
		if m.Champion != nil {
			row("  champion", "on "+version+"'s rows", m.Counts.Predictions, m.Counts.Labelled, m.Champion)
		}
	}
	row("all", "-", c.Predictions, c.Labelled, q.All)
	tw.Flush()
	cm := q.All.Binary.ConfusionMatrix
	fmt.Fprintf(w, "at threshold %s: %s, %s, %s, %s\n", num(threshold), plural(cm.TruePositives, "true positive"),
		plural(cm.FalsePositives, "false positive"), plural(cm.FalseNegatives, "false negative"), plural(cm.TrueNegatives, "true negative"))
}

// printQualityViolations prints the check against the baseline.
func printQualityViolations(w io.Writer, rep *quality.Report) {
	if len(rep.NotEvaluated) > 0 {
		fmt.Fprintf(w, "not judged (not in the statistics, or not defined for these rows): %s\n", strings.Join(rep.NotEvaluated, ", "))
	}
	switch len(rep.Violations) {
	case 0:
		fmt.Fprintln(w, "no violations")
		return
	case 1:
		fmt.Fprintln(w, "1 violation:")
	default:
		fmt.Fprintf(w, "%d violations:\n", len(rep.Violations))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range rep.Violations {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.MetricName, v.ConstraintCheckType, v.Description)
	}
	tw.Flush()
}

// plural is n and the noun, plural unless n is 1.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
