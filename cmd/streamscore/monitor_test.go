package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/monitor/dataset"
)

// The fixtures (testdata/monitor/gen.py): a baseline, an unchanged
// re-sample, one with temperature shifted by half a standard deviation, and
// a baseline of the first as Model Monitor lays it out, made by numpy.
const (
	fixtures     = "testdata/monitor/"
	baselineCSV  = fixtures + "baseline.csv"
	resampleCSV  = fixtures + "resample.csv"
	shiftedCSV   = fixtures + "shifted.csv"
	modelMonitor = fixtures + "modelmonitor"
)

// monitorRun runs `streamscore monitor ...` in process.
func monitorRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newMonitorCmd()
	var o, e bytes.Buffer
	cmd.SetOut(&o)
	cmd.SetErr(&e)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(t.Context())
	return o.String(), e.String(), err
}

// readFile opens a file and decodes it with a reader that names the file
// in its errors.
func readFile[T any](path string, read func(io.Reader, string) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return read(bufio.NewReader(f), path)
}

func readStats(t *testing.T, path string) *monitor.Statistics {
	t.Helper()
	s, err := readFile(path, monitor.ReadStatistics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readViolations(t *testing.T, path string) []monitor.Violation {
	t.Helper()
	v, err := readFile(path, monitor.ReadViolations)
	if err != nil {
		t.Fatal(err)
	}
	return v.Violations
}

// baselineOf runs `monitor baseline` on input into a new directory.
func baselineOf(t *testing.T, input string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "baseline")
	if out, errOut, err := monitorRun(t, "baseline", "--input", input, "--out", dir); err != nil {
		t.Fatalf("monitor baseline --input %s: %v\n%s%s", input, err, out, errOut)
	}
	return dir
}

func feature(t *testing.T, s *monitor.Statistics, name string) *monitor.Feature {
	t.Helper()
	for i := range s.Features {
		if s.Features[i].Name == name {
			return &s.Features[i]
		}
	}
	t.Fatalf("statistics have no feature %q", name)
	return nil
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// TestMonitorBaselineCSV: the statistics of a CSV baseline are numpy's
// (item count, inferred types, counts, mean, sum, population std_dev, min,
// max, categories), with a KLL sketch of Model Monitor's parameters, and
// constraints.json is what Model Monitor suggests.
func TestMonitorBaselineCSV(t *testing.T) {
	dir := baselineOf(t, baselineCSV)
	got := readStats(t, filepath.Join(dir, dataset.StatisticsFile))
	want := readStats(t, filepath.Join(modelMonitor, dataset.StatisticsFile))
	if got.Dataset.ItemCount != want.Dataset.ItemCount {
		t.Errorf("item_count = %d, want %d", got.Dataset.ItemCount, want.Dataset.ItemCount)
	}
	var names []string
	for _, f := range got.Features {
		names = append(names, f.Name)
	}
	if w := []string{"temperature", "vibration", "rpm", "machine"}; !slices.Equal(names, w) {
		t.Fatalf("features = %q, want %q (the CSV's columns in order)", names, w)
	}
	for _, w := range want.Features {
		g := feature(t, got, w.Name)
		if g.InferredType != w.InferredType {
			t.Errorf("%s: inferred_type = %s, want %s", w.Name, g.InferredType, w.InferredType)
		}
		if w.NumericalStatistics != nil {
			gn, wn := g.NumericalStatistics, w.NumericalStatistics
			if gn == nil {
				t.Errorf("%s: no numerical_statistics", w.Name)
				continue
			}
			if gn.Common != wn.Common {
				t.Errorf("%s: common = %+v, want %+v", w.Name, gn.Common, wn.Common)
			}
			for _, v := range []struct {
				name      string
				got, want float64
			}{{"mean", gn.Mean, wn.Mean}, {"sum", gn.Sum, wn.Sum}, {"std_dev", gn.StdDev, wn.StdDev}, {"min", gn.Min, wn.Min}, {"max", gn.Max, wn.Max}} {
				if !near(v.got, v.want) {
					t.Errorf("%s: %s = %v, numpy says %v", w.Name, v.name, v.got, v.want)
				}
			}
			k := gn.Distribution.KLL
			if k == nil || k.Sketch == nil || len(k.Sketch.Data) == 0 || len(k.Buckets) != 10 {
				t.Errorf("%s: distribution.kll = %+v, want 10 buckets and the sketch", w.Name, k)
			} else if p := k.Sketch.Parameters; p.K != 2048 || p.C != 0.64 {
				t.Errorf("%s: sketch parameters = %+v, want Model Monitor's k=2048 c=0.64", w.Name, p)
			}
			continue
		}
		gs, ws := g.StringStatistics, w.StringStatistics
		if gs == nil {
			t.Errorf("%s: no string_statistics", w.Name)
			continue
		}
		if gs.Common != ws.Common || gs.DistinctCount != ws.DistinctCount {
			t.Errorf("%s: common %+v distinct %v, want %+v and %v", w.Name, gs.Common, gs.DistinctCount, ws.Common, ws.DistinctCount)
		}
		gb := slices.Clone(gs.Distribution.Categorical.Buckets)
		slices.SortFunc(gb, func(a, b monitor.CategoricalBucket) int { return strings.Compare(a.Value, b.Value) })
		if !slices.Equal(gb, ws.Distribution.Categorical.Buckets) {
			t.Errorf("%s: categories = %+v, want %+v", w.Name, gb, ws.Distribution.Categorical.Buckets)
		}
	}

	cons, err := readFile(filepath.Join(dir, dataset.ConstraintsFile), monitor.ReadConstraints)
	if err != nil {
		t.Fatal(err)
	}
	if want := monitor.Suggest(got); !equalJSON(t, cons.WriteJSON, want.WriteJSON) {
		t.Error("constraints.json is not monitor.Suggest of statistics.json")
	}
	if dc := cons.MonitoringConfig.DistributionConstraints; dc.ComparisonMethod != monitor.Robust || dc.ComparisonThreshold != 0.1 {
		t.Errorf("distribution_constraints = %+v, want Model Monitor's default Robust at 0.1", dc)
	}
}

func equalJSON(t *testing.T, a, b func(w io.Writer) error) bool {
	t.Helper()
	var x, y bytes.Buffer
	if err := a(&x); err != nil {
		t.Fatal(err)
	}
	if err := b(&y); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// checkCase is one `monitor check` and the violations it must report.
type checkCase struct {
	input string
	// drift lists the features with a baseline_drift_check violation; no
	// other violation is expected.
	drift []string
}

// runChecks checks each case against a baseline directory: the violations
// file, the table, and the exit status with and without --fail-on-violation.
func runChecks(t *testing.T, baseline string, cases []checkCase) {
	t.Helper()
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "check")
		stdout, errOut, err := monitorRun(t, "check", "--baseline", baseline, "--input", c.input, "--out", out)
		if err != nil {
			t.Fatalf("check of %s against %s: %v\n%s", c.input, baseline, err, errOut)
		}
		var drifted []string
		for _, v := range readViolations(t, filepath.Join(out, dataset.ViolationsFile)) {
			if v.ConstraintCheckType != "baseline_drift_check" {
				t.Errorf("check of %s against %s: unexpected violation %+v", c.input, baseline, v)
				continue
			}
			drifted = append(drifted, v.FeatureName)
		}
		if !slices.Equal(drifted, c.drift) {
			t.Errorf("check of %s against %s: baseline_drift_check for %q, want %q\n%s", c.input, baseline, drifted, c.drift, stdout)
		}
		if s := readStats(t, filepath.Join(out, dataset.StatisticsFile)); s.Dataset.ItemCount != 2000 {
			t.Errorf("check of %s: statistics.json item_count = %d, want 2000", c.input, s.Dataset.ItemCount)
		}
		for _, f := range []string{"temperature", "vibration", "rpm", "machine"} {
			want := " no "
			if slices.Contains(c.drift, f) {
				want = " YES "
			}
			line := tableLine(stdout, f)
			if !strings.Contains(line, want) {
				t.Errorf("check of %s: table line of %s = %q, want drifted%s", c.input, f, line, want)
			}
		}

		_, _, err = monitorRun(t, "check", "--baseline", baseline, "--input", c.input, "--out", out, "--fail-on-violation")
		switch code := exitCode(err); {
		case len(c.drift) == 0 && err != nil:
			t.Errorf("check --fail-on-violation of %s without violations: %v", c.input, err)
		case len(c.drift) > 0 && code != exitViolations:
			t.Errorf("check --fail-on-violation of %s: exit status %d (%v), want %d", c.input, code, err, exitViolations)
		}
	}
}

// tableLine returns the line of the check's table about feature f.
func tableLine(out, f string) string {
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, f+" ") {
			return l
		}
	}
	return ""
}

// TestMonitorCheckCSV: against a baseline made from a CSV, an unchanged
// re-sample raises nothing, and a temperature shifted by half a standard
// deviation raises baseline_drift_check for temperature only.
func TestMonitorCheckCSV(t *testing.T) {
	runChecks(t, baselineOf(t, baselineCSV), []checkCase{
		{input: resampleCSV},
		{input: shiftedCSV, drift: []string{"temperature"}},
	})
}

// TestMonitorBaselineNoCompare: a feature named in --no-compare is never
// judged for drift by that baseline; an unknown name is refused.
func TestMonitorBaselineNoCompare(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "baseline")
	if out, errOut, err := monitorRun(t, "baseline", "--input", baselineCSV, "--out", dir, "--no-compare", "temperature"); err != nil {
		t.Fatalf("monitor baseline --no-compare temperature: %v\n%s%s", err, out, errOut)
	}
	runChecks(t, dir, []checkCase{{input: shiftedCSV}})
	_, _, err := monitorRun(t, "baseline", "--input", baselineCSV, "--out", filepath.Join(t.TempDir(), "b"), "--no-compare", "nope")
	if err == nil || !strings.Contains(err.Error(), `--no-compare: no feature "nope"`) {
		t.Errorf("--no-compare nope: %v, want an error naming it", err)
	}
}

// TestMonitorCheckModelMonitorBaseline: a baseline Model Monitor wrote,
// with buckets and no sketch data, is checked against the same way.
func TestMonitorCheckModelMonitorBaseline(t *testing.T) {
	runChecks(t, modelMonitor, []checkCase{
		{input: resampleCSV},
		{input: shiftedCSV, drift: []string{"temperature"}},
	})
}

// TestMonitorExitStatus: the built binary exits 0 for a check with
// violations, and 2 with --fail-on-violation (1 is for a check that could
// not run), as a CI gate needs.
func TestMonitorExitStatus(t *testing.T) {
	base := baselineOf(t, baselineCSV)
	out := filepath.Join(t.TempDir(), "check")
	dir, _ := filepath.Abs(".")
	abs := func(p string) string { return filepath.Join(dir, p) }
	if _, errOut, err := run(t, nil, "monitor", "check", "--baseline", base, "--input", abs(shiftedCSV), "--out", out); err != nil {
		t.Fatalf("check without --fail-on-violation: %v\n%s", err, errOut)
	}
	_, errOut, err := run(t, nil, "monitor", "check", "--baseline", base, "--input", abs(shiftedCSV), "--out", out, "--fail-on-violation")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitViolations {
		t.Fatalf("check --fail-on-violation of drifted data: %v, want exit status %d", err, exitViolations)
	}
	if !strings.Contains(errOut, "1 constraint violation (") {
		t.Errorf("stderr = %q, want the count of violations", errOut)
	}
}

// TestMonitorBadInput: an input that cannot be read is refused with the
// reader's message, naming the file (and for CSV the line), under the
// flag's name, and exit status 1 (the messages themselves are
// monitor/dataset's, tested there).
func TestMonitorBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		input, want string
	}{
		{write("quote.csv", "a,b\n1,2\n3,\"x\"y\n"), "--input: " + dir + "/quote.csv:3:"},
		{write("header-only.csv", "a,b\n"), "--input: " + dir + "/header-only.csv: no rows to profile"},
		{filepath.Join(dir, "absent.csv"), dir + "/absent.csv: no such file"},
		{"", "--input is required"},
	} {
		_, _, err := monitorRun(t, "baseline", "--input", c.input, "--out", filepath.Join(dir, "out"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("baseline --input %q: %v, want an error with %q", c.input, err, c.want)
		}
		if exitCode(err) != exitError {
			t.Errorf("baseline --input %q: exit status %d, want %d", c.input, exitCode(err), exitError)
		}
		_, _, err = monitorRun(t, "check", "--baseline", modelMonitor, "--input", c.input, "--out", filepath.Join(dir, "check"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("check --input %q: %v, want an error with %q", c.input, err, c.want)
		}
		if exitCode(err) != exitError {
			t.Errorf("check --input %q: exit status %d, want %d", c.input, exitCode(err), exitError)
		}
	}
}

// TestMonitorBadBaseline: a check refuses a baseline it cannot read, naming
// the file, with exit status 1 even under --fail-on-violation, and never
// writes over the baseline.
func TestMonitorBadBaseline(t *testing.T) {
	base := baselineOf(t, baselineCSV)
	src, err := os.ReadFile(filepath.Join(base, dataset.StatisticsFile))
	if err != nil {
		t.Fatal(err)
	}
	badCons := t.TempDir()
	if err := os.WriteFile(filepath.Join(badCons, dataset.StatisticsFile), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badCons, dataset.ConstraintsFile), []byte(`{"features": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	badStats := t.TempDir()
	if err := os.WriteFile(filepath.Join(badStats, dataset.StatisticsFile), []byte(`{"version": 0, "features": [{"name": "x", "inferred_type": "Weird"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(t.TempDir(), "absent")
	out := filepath.Join(t.TempDir(), "check")
	for _, c := range []struct {
		baseline, out, want string
	}{
		{badCons, out, "--baseline: " + filepath.Join(badCons, dataset.ConstraintsFile)},
		{absent, out, "--baseline: open " + filepath.Join(absent, dataset.StatisticsFile) + ": no such file"},
		{badStats, out, filepath.Join(badStats, dataset.StatisticsFile) + `: features[0] "x": inferred_type`},
		{base, base, "--out is the baseline directory"},
		{"", out, "--baseline is required"},
	} {
		_, _, err := monitorRun(t, "check", "--baseline", c.baseline, "--input", resampleCSV, "--out", c.out, "--fail-on-violation")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("check --baseline %q --out %q: %v, want an error with %q", c.baseline, c.out, err, c.want)
		}
		if exitCode(err) != exitError {
			t.Errorf("check --baseline %q: exit status %d, want %d (could not run, not violations)", c.baseline, exitCode(err), exitError)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(base, dataset.StatisticsFile)); !bytes.Equal(after, src) {
		t.Error("a check with --out the baseline directory changed the baseline")
	}
}

// TestMonitorCheckStatisticsOnly: a baseline of statistics.json alone (made
// elsewhere, say) is checked with the constraints Model Monitor would
// suggest for it, as the in-stream monitor does: the same verdicts as
// the full baseline, whose constraints.json is that suggestion.
func TestMonitorCheckStatisticsOnly(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(baselineOf(t, baselineCSV), dataset.StatisticsFile))
	if err != nil {
		t.Fatal(err)
	}
	only := t.TempDir()
	if err := os.WriteFile(filepath.Join(only, dataset.StatisticsFile), src, 0o644); err != nil {
		t.Fatal(err)
	}
	runChecks(t, only, []checkCase{
		{input: resampleCSV},
		{input: shiftedCSV, drift: []string{"temperature"}},
	})
}

// TestMonitorS3: the built binary reads --input and --baseline from S3
// (the local server, through the SDK's default chain as every command
// does): a baseline of a prefix, then checks of an object against the
// baseline's prefix, clean and drifted, with their exit statuses.
func TestMonitorS3(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	put := func(key string, path string) {
		t.Helper()
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put("train/part-0.csv", baselineCSV)
	put("today/resample.csv", resampleCSV)
	put("today/shifted.csv", shiftedCSV)

	vars := []string{}
	for _, kv := range env.Endpoints.EnvVars() {
		vars = append(vars, kv[0]+"="+kv[1])
	}
	uri := "s3://" + bucket + "/"
	dir := t.TempDir()
	base := filepath.Join(dir, "baseline")
	if out, errOut, err := run(t, vars, "monitor", "baseline", "--input", uri+"train/", "--out", base); err != nil {
		t.Fatalf("monitor baseline --input %strain/: %v\n%s%s", uri, err, out, errOut)
	}
	want := readStats(t, filepath.Join(baselineOf(t, baselineCSV), dataset.StatisticsFile))
	if got := readStats(t, filepath.Join(base, dataset.StatisticsFile)); !equalJSON(t, got.WriteJSON, want.WriteJSON) {
		t.Error("the statistics of a CSV read from S3 differ from those of the local file")
	}
	put("baseline/"+dataset.StatisticsFile, filepath.Join(base, dataset.StatisticsFile))
	put("baseline/"+dataset.ConstraintsFile, filepath.Join(base, dataset.ConstraintsFile))

	out := filepath.Join(dir, "check")
	if stdout, errOut, err := run(t, vars, "monitor", "check", "--baseline", uri+"baseline", "--input", uri+"today/resample.csv",
		"--out", out, "--fail-on-violation"); err != nil {
		t.Fatalf("check of a re-sample against the S3 baseline: %v\n%s%s", err, stdout, errOut)
	}
	_, errOut, err := run(t, vars, "monitor", "check", "--baseline", uri+"baseline/", "--input", uri+"today/shifted.csv",
		"--out", out, "--fail-on-violation")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitViolations {
		t.Fatalf("check of shifted data against the S3 baseline: %v (%s), want exit status %d", err, errOut, exitViolations)
	}
	if v := readViolations(t, filepath.Join(out, dataset.ViolationsFile)); len(v) != 1 || v[0].FeatureName != "temperature" {
		t.Errorf("violations = %+v, want temperature's drift only", v)
	}
}
