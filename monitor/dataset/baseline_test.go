package dataset

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor"
)

// baselineFiles is a baseline's statistics.json and a constraints.json
// that differs from what monitor.Suggest makes of it (a Simple comparison
// at 0.3), so a test can tell the file read from the one suggested.
func baselineFiles(t *testing.T) (stats, cons []byte) {
	t.Helper()
	st := profileOf(t, nil, writeFile(t, filepath.Join(t.TempDir(), "m.csv"), machines(500)))
	c := monitor.Suggest(st)
	c.MonitoringConfig.DistributionConstraints.ComparisonMethod = monitor.Simple
	c.MonitoringConfig.DistributionConstraints.ComparisonThreshold = 0.3
	var sb, cb bytes.Buffer
	if err := st.WriteJSON(&sb); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteJSON(&cb); err != nil {
		t.Fatal(err)
	}
	return sb.Bytes(), cb.Bytes()
}

// checkLoaded asserts a loaded baseline is the files' (or, with cons nil,
// the statistics' with the suggested constraints).
func checkLoaded(t *testing.T, where string, st *monitor.Statistics, cs *monitor.Constraints, stats, cons []byte) {
	t.Helper()
	if !equalJSON(t, st.WriteJSON, func(w io.Writer) error { _, err := w.Write(stats); return err }) {
		t.Errorf("%s: statistics differ from statistics.json", where)
	}
	want := func(w io.Writer) error { _, err := w.Write(cons); return err }
	if cons == nil {
		want = monitor.Suggest(st).WriteJSON
	}
	if !equalJSON(t, cs.WriteJSON, want) {
		if cons == nil {
			t.Errorf("%s: without constraints.json, the constraints are not monitor.Suggest's", where)
		} else {
			t.Errorf("%s: constraints differ from constraints.json", where)
		}
	}
}

// TestLoadBaselineDir: a directory's statistics.json and constraints.json
// are read as written; without constraints.json the suggested constraints
// judge; a broken or missing file is named.
func TestLoadBaselineDir(t *testing.T) {
	stats, cons := baselineFiles(t)
	full, statsOnly, badStats, badCons, empty := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(full, StatisticsFile), stats)
	writeFile(t, filepath.Join(full, ConstraintsFile), cons)
	writeFile(t, filepath.Join(statsOnly, StatisticsFile), stats)
	writeFile(t, filepath.Join(badStats, StatisticsFile), []byte(`{"version": 0, "features": [{"name": "x", "inferred_type": "Weird"}]}`))
	writeFile(t, filepath.Join(badCons, StatisticsFile), stats)
	writeFile(t, filepath.Join(badCons, ConstraintsFile), []byte(`{"version": 0, "features": [`))

	st, cs, err := LoadBaseline(t.Context(), nil, full)
	if err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, full, st, cs, stats, cons)
	st, cs, err = LoadBaseline(t.Context(), nil, statsOnly)
	if err != nil {
		t.Fatalf("a baseline of statistics.json alone: %v", err)
	}
	checkLoaded(t, statsOnly, st, cs, stats, nil)

	for _, c := range []struct{ where, want string }{
		{badStats, filepath.Join(badStats, StatisticsFile) + `: features[0] "x": inferred_type`},
		{badCons, filepath.Join(badCons, ConstraintsFile) + ":"},
		{empty, filepath.Join(empty, StatisticsFile) + ": no such file"},
		{"", "no baseline"},
		{"s3://", "s3://: no bucket"},
		{"s3://bucket/base/", "s3://bucket/base/: no S3 client"},
	} {
		if _, _, err := LoadBaseline(t.Context(), nil, c.where); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadBaseline(%q): %v, want an error with %q", c.where, err, c.want)
		}
	}
}

// TestLoadBaselineS3: the same under an S3 prefix, written with or without
// its trailing slash.
func TestLoadBaselineS3(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	stats, cons := baselineFiles(t)
	put := func(key string, body []byte) {
		t.Helper()
		if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put("base/"+StatisticsFile, stats)
	put("base/"+ConstraintsFile, cons)
	put("stats-only/"+StatisticsFile, stats)
	put("bad-cons/"+StatisticsFile, stats)
	put("bad-cons/"+ConstraintsFile, []byte(`{"monitoring_config": {"distribution_constraints": {"comparison_method": "Sideways"}}}`))

	uri := "s3://" + bucket + "/"
	for _, where := range []string{uri + "base", uri + "base/"} {
		st, cs, err := LoadBaseline(ctx, env.S3, where)
		if err != nil {
			t.Fatalf("LoadBaseline(%s): %v", where, err)
		}
		checkLoaded(t, where, st, cs, stats, cons)
	}
	st, cs, err := LoadBaseline(ctx, env.S3, uri+"stats-only/")
	if err != nil {
		t.Fatalf("a baseline of statistics.json alone: %v", err)
	}
	checkLoaded(t, uri+"stats-only/", st, cs, stats, nil)

	for _, c := range []struct{ where, want string }{
		{uri + "bad-cons/", uri + "bad-cons/" + ConstraintsFile + ":"},
		{uri + "nothing/", uri + "nothing/" + StatisticsFile + ":"},
	} {
		if _, _, err := LoadBaseline(ctx, env.S3, c.where); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadBaseline(%q): %v, want an error with %q", c.where, err, c.want)
		}
	}
}
