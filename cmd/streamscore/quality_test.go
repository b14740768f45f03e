package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/monitor/quality"
)

// The quality fixtures are monitor/dataset's (its quality_test.go says
// what they hold): twelve predictions of model versions v1 and v2, p12
// without a label, p03 labelled twice (0, then 1: the last counts), x99
// labelled without a prediction; and a results file the S3 sink wrote,
// with its labels.
const (
	qualityFixtures = "../../monitor/dataset/testdata/quality/"
	qPredictions    = qualityFixtures + "predictions.csv"
	qLabelsCSV      = qualityFixtures + "labels.csv"
	qLabelsJSONL    = qualityFixtures + "labels.jsonl"
	qLabelsGzip     = qualityFixtures + "labels.jsonl.gz"
	qResults        = qualityFixtures + "results.parquet"
	qResultsLabels  = qualityFixtures + "results-labels.jsonl"
)

func readQualityStats(t *testing.T, dir string) *quality.Statistics {
	t.Helper()
	s, err := readFile(filepath.Join(dir, dataset.StatisticsFile), quality.ReadStatistics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readQualityViolations reads dir's constraint_violations.json.
func readQualityViolations(t *testing.T, dir string) []quality.Violation {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, dataset.ViolationsFile))
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Violations []quality.Violation }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", dataset.ViolationsFile, err)
	}
	return v.Violations
}

// qualityOf runs `monitor quality` in process into a new directory.
func qualityOf(t *testing.T, args ...string) (dir, stdout string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "quality")
	out, errOut, err := monitorRun(t, append([]string{"quality", "--out", dir}, args...)...)
	if err != nil {
		t.Fatalf("monitor quality %q: %v\n%s%s", args, err, out, errOut)
	}
	return dir, out
}

// TestMonitorQualityBinary: the fixture's eleven joined rows, whatever the
// labels' encoding, give the metrics worked out by hand. Scores (label):
// .95 (1), .85 (1), .75 (1, its last label), .65 (1), .55 (0), .45 (1),
// .35 (0), .25 (0), .15 (1), .05 (0), .60 (1). At 0.5: TP 5 (.95 .85 .75
// .65 .60), FP 1 (.55), FN 2 (.45 .15), TN 3. Accuracy 8/11, precision
// 5/6, recall 5/7, F1 = 2TP/(2TP+FP+FN) = 10/13, F0.5 = 1.25TP/(1.25TP +
// .25FN + FP) = 6.25/7.75, F2 = 5TP/(5TP+4FN+FP) = 25/34. AUC: of the 28
// positive-negative pairs, the positives rank above the negatives in 5
// (.55), 6 (.35), 6 (.25) and 7 (.05): 24/28. Brier: the squared errors
// sum to 1.885, over 11. constraints.json is what Model Monitor suggests.
func TestMonitorQualityBinary(t *testing.T) {
	for _, labels := range []string{qLabelsCSV, qLabelsJSONL, qLabelsGzip} {
		dir, out := qualityOf(t, "--predictions", qPredictions, "--labels", labels)
		st := readQualityStats(t, dir)
		m := st.Binary
		if st.Dataset.ItemCount != 11 || m == nil {
			t.Fatalf("%s: item_count %d, binary metrics %v; want 11 rows of binary classification", labels, st.Dataset.ItemCount, m)
		}
		if c := m.ConfusionMatrix; c != (quality.ConfusionMatrix{TrueNegatives: 3, FalsePositives: 1, FalseNegatives: 2, TruePositives: 5}) {
			t.Errorf("%s: confusion matrix %+v, want TN 3 FP 1 FN 2 TP 5", labels, c)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"accuracy", m.Accuracy.Value, 8.0 / 11},
			{"precision", m.Precision.Value, 5.0 / 6},
			{"recall", m.Recall.Value, 5.0 / 7},
			{"true_negative_rate", m.TrueNegativeRate.Value, 3.0 / 4},
			{"false_positive_rate", m.FalsePositiveRate.Value, 1.0 / 4},
			{"f1", m.F1.Value, 10.0 / 13},
			{"f0_5", m.F0_5.Value, 6.25 / 7.75},
			{"f2", m.F2.Value, 25.0 / 34},
			{"auc", m.AUC.Value, 24.0 / 28},
			{"brier_score", brier(m), 1.885 / 11},
		} {
			if !near(c.got, c.want) {
				t.Errorf("%s: %s = %v, want %v", labels, c.name, c.got, c.want)
			}
		}
		cons, err := readFile(filepath.Join(dir, dataset.ConstraintsFile), quality.ReadConstraints)
		if err != nil {
			t.Fatal(err)
		}
		if !equalJSON(t, cons.WriteJSON, quality.Suggest(st).WriteJSON) {
			t.Errorf("%s: constraints.json is not what Model Monitor suggests for the statistics", labels)
		}
		for _, want := range []string{
			"12 predictions from 1 file, 13 labels from 1 file: 11 rows joined\n",
			"  1 prediction without a label (left out)\n",
			"  1 label without a prediction (left out)\n",
			"  1 duplicate label (the last one read kept)\n",
			"at threshold 0.5: 5 true positives, 1 false positive, 2 false negatives, 3 true negatives\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the summary has no %q:\n%s", labels, want, out)
			}
		}
		// Per model version: v1 has six predictions, all labelled; v2
		// six, five labelled (p12 is not).
		for v, want := range map[string][]string{"v1": {"v1", "6", "6", "6"}, "v2": {"v2", "6", "5", "5"}, "all": {"all", "12", "11", "11"}} {
			if got := strings.Fields(tableLine(out, v)); len(got) < 4 || strings.Join(got[:4], " ") != strings.Join(want, " ") {
				t.Errorf("%s: the %s line is %q, want it to start %q", labels, v, got, want)
			}
		}
	}
}

func brier(m *quality.BinaryMetrics) float64 {
	if m.BrierScore == nil {
		return math.NaN()
	}
	return m.BrierScore.Value
}

// TestMonitorQualityThreshold: --threshold moves the confusion matrix: at
// 0.7, .75 and above are positive: TP 3, FP 0, FN 4, TN 4.
func TestMonitorQualityThreshold(t *testing.T) {
	dir, _ := qualityOf(t, "--predictions", qPredictions, "--labels", qLabelsCSV, "--threshold", "0.7")
	if c := readQualityStats(t, dir).Binary.ConfusionMatrix; c != (quality.ConfusionMatrix{TrueNegatives: 4, FalsePositives: 0, FalseNegatives: 4, TruePositives: 3}) {
		t.Errorf("confusion matrix at 0.7: %+v, want TN 4 FP 0 FN 4 TP 3", c)
	}
}

// TestMonitorQualityRegression: predictions 2, 4, 6, 8 of actual values
// 3, 4, 5, 10: errors -1, 0, 1, -2, so MAE 1, MSE 6/4, RMSE √1.5, and R² =
// 1 - 6/29 (the actual values' squared deviations from 5.5 sum to 29).
func TestMonitorQualityRegression(t *testing.T) {
	tmp := t.TempDir()
	preds, labels := filepath.Join(tmp, "preds.csv"), filepath.Join(tmp, "labels.csv")
	writeText(t, preds, "inference_id,score\na,2\nb,4\nc,6\nd,8\n")
	writeText(t, labels, "inference_id,label\nd,10\nc,5\nb,4\na,3\n")
	dir, out := qualityOf(t, "--predictions", preds, "--labels", labels, "--problem", "regression")
	st := readQualityStats(t, dir)
	m := st.Regression
	if m == nil || st.Dataset.ItemCount != 4 {
		t.Fatalf("statistics %+v, want regression metrics of 4 rows", st)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"mae", m.MAE.Value, 1}, {"mse", m.MSE.Value, 1.5}, {"rmse", m.RMSE.Value, math.Sqrt(1.5)}, {"r2", m.R2.Value, 1 - 6.0/29}} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !strings.Contains(out, "4 predictions from 1 file, 4 labels from 1 file: 4 rows joined\n") {
		t.Errorf("summary:\n%s", out)
	}
}

func writeText(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMonitorQualityResults: the S3 sink's results join their labels by
// result_id. Scores (label): xgb-7 .91 (1), .12 (1), .78 (0), .33 (0),
// .64 (1); xgb-8 .05 (0), .87 (1), press-08's null score (no label). The
// update and the part are left out; at 0.5, TP 3, FP 1, FN 1, TN 2.
// --model-version keeps one version's rows.
func TestMonitorQualityResults(t *testing.T) {
	dir, out := qualityOf(t, "--predictions", qResults, "--labels", qResultsLabels)
	if c := readQualityStats(t, dir).Binary.ConfusionMatrix; c != (quality.ConfusionMatrix{TrueNegatives: 2, FalsePositives: 1, FalseNegatives: 1, TruePositives: 3}) {
		t.Errorf("confusion matrix %+v, want TN 2 FP 1 FN 1 TP 3", c)
	}
	for _, want := range []string{
		"8 predictions from 1 file, 7 labels from 1 file: 7 rows joined\n",
		"  1 prediction without a label (left out)\n",
		"  2 update or partial rows (left out)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary has no %q:\n%s", want, out)
		}
	}
	for v, want := range map[string]string{"xgb-7": "xgb-7 5 5 5", "xgb-8": "xgb-8 3 2 2"} {
		if got := strings.Fields(tableLine(out, v)); len(got) < 4 || strings.Join(got[:4], " ") != want {
			t.Errorf("the %s line is %q, want it to start %q", v, got, want)
		}
	}

	dir, out = qualityOf(t, "--predictions", qResults, "--labels", qResultsLabels, "--model-version", "xgb-7")
	if st := readQualityStats(t, dir); st.Dataset.ItemCount != 5 {
		t.Errorf("--model-version xgb-7: item_count %d, want its 5 rows", st.Dataset.ItemCount)
	}
	if !strings.Contains(out, "  3 predictions of other model versions (left out)\n") || !strings.Contains(out, "  2 labels without a prediction (left out)\n") {
		t.Errorf("--model-version xgb-7: summary\n%s", out)
	}
}

// TestMonitorQualityBaseline: checked against its own constraints a run
// has no violation; against stricter ones (precision at least 0.9, AUC at
// least 0.95; F1's threshold lower than its value) it writes
// constraint_violations.json naming precision and auc, exits 0 without
// --fail-on-violation and 2 with it. A baseline of statistics.json alone
// is judged by the constraints suggested from it.
func TestMonitorQualityBaseline(t *testing.T) {
	own, _ := qualityOf(t, "--predictions", qPredictions, "--labels", qLabelsCSV)
	dir, out := qualityOf(t, "--predictions", qPredictions, "--labels", qLabelsJSONL, "--baseline", own, "--fail-on-violation")
	if v := readQualityViolations(t, dir); len(v) != 0 || !strings.Contains(out, "no violations\n") {
		t.Errorf("against its own constraints: violations %+v\n%s", v, out)
	}
	statsOnly := t.TempDir()
	src, err := os.ReadFile(filepath.Join(own, dataset.StatisticsFile))
	if err != nil {
		t.Fatal(err)
	}
	writeText(t, filepath.Join(statsOnly, dataset.StatisticsFile), string(src))
	if _, out := qualityOf(t, "--predictions", qPredictions, "--labels", qLabelsCSV, "--baseline", statsOnly, "--fail-on-violation"); !strings.Contains(out, "no violations\n") {
		t.Errorf("against a statistics-only baseline:\n%s", out)
	}

	strict := t.TempDir()
	writeText(t, filepath.Join(strict, dataset.ConstraintsFile), `{"version": 0.0, "binary_classification_constraints": {
  "precision": {"threshold": 0.9, "comparison_operator": "LessThanThreshold"},
  "auc": {"threshold": 0.95, "comparison_operator": "LessThanThreshold"},
  "f1": {"threshold": 0.5, "comparison_operator": "LessThanThreshold"}}}`)
	abs, _ := filepath.Abs(".")
	outDir := filepath.Join(t.TempDir(), "check")
	args := []string{"monitor", "quality", "--predictions", filepath.Join(abs, qPredictions), "--labels", filepath.Join(abs, qLabelsCSV),
		"--baseline", strict, "--out", outDir}
	if stdout, errOut, err := run(t, nil, args...); err != nil || !strings.Contains(stdout, "2 violations:\n") {
		t.Fatalf("without --fail-on-violation: %v, want exit 0 and the violations listed\n%s%s", err, stdout, errOut)
	}
	var names []string
	for _, v := range readQualityViolations(t, outDir) {
		names = append(names, v.MetricName)
	}
	if strings.Join(names, ",") != "precision,auc" {
		t.Errorf("violations of %v, want precision and auc", names)
	}
	_, errOut, err := run(t, nil, append(args, "--fail-on-violation")...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitViolations {
		t.Fatalf("--fail-on-violation: %v, want exit status %d", err, exitViolations)
	}
	if !strings.Contains(errOut, "2 constraint violations (listed in "+filepath.Join(outDir, dataset.ViolationsFile)+")") {
		t.Errorf("stderr = %q", errOut)
	}
}

// TestMonitorQualityBadLines: a bad line stops the run naming the file and
// line, with exit status 1; --skip-bad N skips up to N of them over both
// inputs, logging each with its file and line, and fails past N.
func TestMonitorQualityBadLines(t *testing.T) {
	tmp := t.TempDir()
	labels := filepath.Join(tmp, "labels.csv")
	writeText(t, labels, "inference_id,label\np01,1\np02,1\np03,maybe\np04,1\n")
	preds := filepath.Join(tmp, "preds.csv")
	writeText(t, preds, "inference_id,score\np01,0.9\np02,0.2\np03,0.5\np04,high\n")
	out := filepath.Join(tmp, "out")

	_, _, err := monitorRun(t, "quality", "--predictions", qPredictions, "--labels", labels, "--out", out)
	if want := "--labels: " + labels + `:4: label: "maybe" is not a number, true or false`; err == nil || err.Error() != want {
		t.Errorf("a bad label: %v, want %q", err, want)
	}
	if exitCode(err) != exitError {
		t.Errorf("a bad label: exit status %d, want %d", exitCode(err), exitError)
	}
	_, _, err = monitorRun(t, "quality", "--predictions", preds, "--labels", labels, "--out", out, "--skip-bad", "1")
	if want := "--predictions: " + preds + `:5: score: "high" is not a number (more than --skip-bad 1 bad lines)`; err == nil || err.Error() != want {
		t.Errorf("two bad lines, --skip-bad 1: %v, want %q", err, want)
	}
	stdout, stderr, err := monitorRun(t, "quality", "--predictions", preds, "--labels", labels, "--out", out, "--skip-bad", "2")
	if err != nil {
		t.Fatalf("two bad lines, --skip-bad 2: %v", err)
	}
	for _, want := range []string{labels + `:4: label: \"maybe\"`, preds + `:5: score: \"high\"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the log has no %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "  2 bad lines skipped\n") || !strings.Contains(stdout, "3 predictions from 1 file, 3 labels from 1 file: 2 rows joined\n") {
		t.Errorf("summary:\n%s", stdout)
	}
}

// TestMonitorQualityUsage: runs that cannot be made are refused before
// anything is read or written, with exit status 1.
func TestMonitorQualityUsage(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	nomatch := filepath.Join(tmp, "nomatch.csv")
	writeText(t, nomatch, "inference_id,label\nzz,1\n")
	base := []string{"--predictions", qPredictions, "--labels", qLabelsCSV}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--labels", qLabelsCSV, "--out", out}, "--predictions is required"},
		{[]string{"--predictions", qPredictions, "--out", out}, "--labels is required"},
		{base, "--out is required"},
		{append(base, "--out", out, "--threshold", "0"), "--threshold 0: a score >= 0 is always positive"},
		{append(base, "--out", out, "--threshold", "1.5"), "--threshold: 1.5 is not in (0, 1]"},
		{append(base, "--out", out, "--problem", "multiclass"), `--problem "multiclass": want binary or regression`},
		{append(base, "--out", out, "--problem", "regression", "--threshold", "0.3"), "--threshold is for --problem binary"},
		{append(base, "--out", out, "--baseline", out), "--out is the baseline directory"},
		{append(base, "--out", out, "--skip-bad", "-1"), "--skip-bad -1"},
		{append(base, "--out", out, "--baseline", filepath.Join(tmp, "none")), "--baseline: open " + filepath.Join(tmp, "none", dataset.ConstraintsFile)},
		{[]string{"--predictions", qPredictions, "--labels", nomatch, "--out", out}, "no prediction has a label: 12 predictions read from " + qPredictions + ", 1 labels from " + nomatch},
	} {
		_, _, err := monitorRun(t, append([]string{"quality"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.args, err, c.want)
		}
		if exitCode(err) != exitError {
			t.Errorf("%q: exit status %d, want %d", c.args, exitCode(err), exitError)
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused run wrote %s (%v)", out, err)
	}
}

// TestMonitorQualityS3: the built binary reads predictions, labels and the
// baseline from S3 (the local server, through the SDK's default chain):
// the same statistics as from the files.
func TestMonitorQualityS3(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	put := func(key, path string) {
		t.Helper()
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	local, _ := qualityOf(t, "--predictions", qPredictions, "--labels", qLabelsCSV)
	put("results/part-0.csv", qPredictions)
	put("labels/2026/11/24/10/labels.jsonl.gz", qLabelsGzip)
	put("baseline/"+dataset.ConstraintsFile, filepath.Join(local, dataset.ConstraintsFile))

	var vars []string
	for _, kv := range env.Endpoints.EnvVars() {
		vars = append(vars, kv[0]+"="+kv[1])
	}
	uri := "s3://" + bucket + "/"
	dir := filepath.Join(t.TempDir(), "q")
	stdout, errOut, err := run(t, vars, "monitor", "quality", "--predictions", uri+"results/", "--labels", uri+"labels/",
		"--baseline", uri+"baseline", "--out", dir, "--fail-on-violation")
	if err != nil {
		t.Fatalf("monitor quality from S3: %v\n%s%s", err, stdout, errOut)
	}
	want := readQualityStats(t, local)
	if got := readQualityStats(t, dir); !equalJSON(t, got.WriteJSON, want.WriteJSON) {
		t.Error("the statistics of inputs read from S3 differ from those of the local files")
	}
	if !strings.Contains(stdout, "no violations\n") {
		t.Errorf("summary:\n%s", stdout)
	}
}

// TestMonitorQualityHorizon: --horizon 1h judges by entity: m-1 fails at
// 10:00 (the label written twice, counted once), so its predictions whose
// window ended in [09:00, 10:00) are positive, exactly at the edges
// (08:59 and 10:00 are not); m-2 has no failure, and its p5 a label by id
// (0). Champion v1 (score, label): p1 .9 (0) FP, p2 .9 (1) TP, p3 .2 (1)
// FN, p4 .1 (0) TN, p5 .8 (0) FP, p6 .3 (0) TN. The shadow challenger c1
// scored p1-p4: .1 TN, .8 TP, .7 TP, .2 TN; the champion on those rows: FP
// TP FN TN. --model-version writes one champion version's statistics;
// --horizon with a regression or below zero is refused.
func TestMonitorQualityHorizon(t *testing.T) {
	tmp := t.TempDir()
	preds, labels := filepath.Join(tmp, "preds.csv"), filepath.Join(tmp, "labels.jsonl")
	writeText(t, preds, "inference_id,entity,window_end,score,model_version,challenger_score,challenger_model_version\n"+
		"p1,m-1,2026-12-03T08:59:00Z,0.9,v1,0.1,c1\n"+
		"p2,m-1,2026-12-03T09:00:00Z,0.9,v1,0.8,c1\n"+
		"p3,m-1,2026-12-03T09:59:00Z,0.2,v1,0.7,c1\n"+
		"p4,m-1,2026-12-03T10:00:00Z,0.1,v1,0.2,c1\n"+
		"p5,m-2,2026-12-03T09:30:00Z,0.8,v1,,\n"+
		"p6,m-2,2026-12-03T09:30:00Z,0.3,v1,,\n")
	failure := `{"groundTruthData":{"data":"1","encoding":"CSV"},"eventMetadata":{"eventId":""},"eventVersion":"0","streamscore":{"entity":"m-1","time":"2026-12-03T10:00:00.000Z"}}` + "\n"
	writeText(t, labels, failure+failure+
		`{"groundTruthData":{"data":"0","encoding":"CSV"},"eventMetadata":{"eventId":"p5"},"eventVersion":"0","streamscore":{"entity":"m-2","time":"2026-12-03T09:45:00.000Z"}}`+"\n")

	dir, out := qualityOf(t, "--predictions", preds, "--labels", labels, "--horizon", "1h")
	if c := readQualityStats(t, dir).Binary.ConfusionMatrix; c != (quality.ConfusionMatrix{TruePositives: 1, FalsePositives: 2, FalseNegatives: 1, TrueNegatives: 2}) {
		t.Errorf("confusion matrix %+v, want TP 1 FP 2 FN 1 TN 2", c)
	}
	if !strings.Contains(out, "6 predictions from 1 file, 3 labels from 1 file: 6 predictions judged (by id, and by entity within 1h0m0s)\n") ||
		!strings.Contains(out, "  1 duplicate label (counted once)\n") {
		t.Errorf("summary:\n%s", out)
	}
	// Rows: role, version, predictions, judged, items, accuracy,
	// precision, recall, f1.
	lines := map[string]bool{}
	for l := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(l); len(f) > 9 {
			lines[strings.Join(f[:len(f)-2], " ")] = true // less auc and brier
		}
	}
	for _, want := range []string{
		"champion v1 6 6 6 0.5 0.33333 0.5 0.4",
		"challenger c1 4 4 4 1 1 1 1",
		"champion on c1's rows 4 4 4 0.5 0.5 0.5 0.5",
	} {
		if !lines[want] {
			t.Errorf("the summary has no row %q:\n%s", want, out)
		}
	}
	// The same predictions judged by id alone: p5 only.
	if _, out := qualityOf(t, "--predictions", preds, "--labels", labels); !strings.Contains(out, ": 1 row joined\n") {
		t.Errorf("without --horizon, only the label by id joins:\n%s", out)
	}
	dir, _ = qualityOf(t, "--predictions", preds, "--labels", labels, "--horizon", "1h", "--model-version", "v1")
	if st := readQualityStats(t, dir); st.Dataset.ItemCount != 6 {
		t.Errorf("--model-version v1: item_count %d, want 6", st.Dataset.ItemCount)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--horizon", "-1h"}, "--horizon -1h0m0s: want a positive duration"},
		{[]string{"--horizon", "1h", "--problem", "regression"}, "--horizon is for --problem binary"},
		{[]string{"--horizon", "1h", "--model-version", "v9"}, `--model-version "v9": no prediction of it was read`},
	} {
		args := append([]string{"quality", "--predictions", preds, "--labels", labels, "--out", filepath.Join(tmp, "out")}, c.args...)
		if _, _, err := monitorRun(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
