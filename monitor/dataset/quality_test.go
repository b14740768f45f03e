package dataset

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// The quality fixtures: twelve predictions of two model versions, and the
// labels of eleven of them (p12 has none) in three encodings, with p03
// labelled twice (0, then 1) and x99 labelled without a prediction.
// results.parquet is the S3 sink's own file of qualityResults, and
// results-labels.jsonl labels seven of its eight whole rows
// (TestQualityResultsS3 writes both with -update-quality-results).
const (
	qualityDir     = "testdata/quality/"
	predictionsCSV = qualityDir + "predictions.csv"
	labelsCSV      = qualityDir + "labels.csv"
	labelsJSONL    = qualityDir + "labels.jsonl"
	labelsGzip     = qualityDir + "labels.jsonl.gz"
	resultsPQ      = qualityDir + "results.parquet"
	resultsLabels  = qualityDir + "results-labels.jsonl"
)

var updateResults = flag.Bool("update-quality-results", false, "rewrite "+resultsPQ+" and "+resultsLabels+" from the S3 sink on the local stack")

func readPredictions(t testing.TB, c S3, input string, opts ReadOptions) ([]Prediction, ReadStats, error) {
	t.Helper()
	objs, err := Open(t.Context(), c, input)
	if err != nil {
		return nil, ReadStats{}, err
	}
	var out []Prediction
	st, err := ReadPredictions(t.Context(), objs, opts, func(p Prediction) error {
		out = append(out, p)
		return nil
	})
	return out, st, err
}

func readLabels(t testing.TB, c S3, input string, opts LabelOptions) ([]Label, ReadStats, error) {
	t.Helper()
	objs, err := Open(t.Context(), c, input)
	if err != nil {
		return nil, ReadStats{}, err
	}
	var out []Label
	st, err := ReadLabels(t.Context(), objs, opts, func(l Label) error {
		out = append(out, l)
		return nil
	})
	return out, st, err
}

// samePredictions compares predictions, NaN scores equal; a zero
// ChallengerScore in b stands for NaN, so wants need not spell it.
func samePredictions(a, b []Prediction) bool {
	same := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	return slices.EqualFunc(a, b, func(x, y Prediction) bool {
		ych := y.ChallengerScore
		if ych == 0 && y.ChallengerVersion == "" {
			ych = math.NaN()
		}
		return x.ID == y.ID && x.ModelVersion == y.ModelVersion && x.Written.Equal(y.Written) && same(x.Score, y.Score) &&
			x.Entity == y.Entity && x.WindowEnd.Equal(y.WindowEnd) && same(x.ChallengerScore, ych) && x.ChallengerVersion == y.ChallengerVersion
	})
}

// sameLabels compares labels, times by instant.
func sameLabels(a, b []Label) bool {
	return slices.EqualFunc(a, b, func(x, y Label) bool {
		return x.ID == y.ID && x.Value == y.Value && x.Entity == y.Entity && x.Time.Equal(y.Time)
	})
}

// fixtureLabels are the labels every encoding of the fixture holds, in
// file order.
var fixtureLabels = []Label{
	{ID: "p01", Value: 1}, {ID: "p02", Value: 1}, {ID: "p03", Value: 0}, {ID: "p04", Value: 1}, {ID: "p05", Value: 0},
	{ID: "p06", Value: 1}, {ID: "p07", Value: 0}, {ID: "p08", Value: 0}, {ID: "p09", Value: 1}, {ID: "p10", Value: 0},
	{ID: "p11", Value: 1}, {ID: "p03", Value: 1}, {ID: "x99", Value: 1},
}

// TestReadPredictionsCSV: a predictions CSV gives its rows in order, by
// column name (model_version and entity read), gzip'd or not.
func TestReadPredictionsCSV(t *testing.T) {
	got, st, err := readPredictions(t, nil, predictionsCSV, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scores := []float64{0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05, 0.60, 0.70}
	var want []Prediction
	for i, s := range scores {
		v := "v1"
		if i >= 6 {
			v = "v2"
		}
		want = append(want, Prediction{ID: fmt.Sprintf("p%02d", i+1), Score: s, ModelVersion: v, Entity: fmt.Sprintf("press-%02d", i+1)})
	}
	if !samePredictions(got, want) {
		t.Errorf("predictions = %+v\nwant %+v", got, want)
	}
	if st != (ReadStats{Files: 1, Records: 12}) {
		t.Errorf("stats = %+v, want 1 file, 12 records", st)
	}

	// The same, gzip'd and without the optional column, in a directory
	// with a marker to skip; an empty score is a missing one.
	dir := t.TempDir()
	src, err := os.ReadFile(predictionsCSV)
	if err != nil {
		t.Fatal(err)
	}
	writeGzip(t, filepath.Join(dir, "a.csv.gz"), src)
	if err := os.WriteFile(filepath.Join(dir, "b.csv"), []byte("score,inference_id\n,q1\n 0.5 , q2 \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "_SUCCESS"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, st, err = readPredictions(t, nil, dir, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, Prediction{ID: "q1", Score: math.NaN()}, Prediction{ID: "q2", Score: 0.5})
	if !samePredictions(got, want) {
		t.Errorf("predictions of the directory = %+v\nwant %+v", got, want)
	}
	if st != (ReadStats{Files: 2, Records: 14}) {
		t.Errorf("stats = %+v, want 2 files, 14 records", st)
	}
}

func writeGzip(t testing.TB, path string, src []byte) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(src)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReadLabels: the fixture's labels read the same from a CSV, Model
// Monitor's ground-truth JSON Lines (strings, numbers and bools as data,
// a blank line) and the same gzip'd, as numbers and as binary labels.
func TestReadLabels(t *testing.T) {
	for _, in := range []string{labelsCSV, labelsJSONL, labelsGzip} {
		for _, binary := range []bool{false, true} {
			got, st, err := readLabels(t, nil, in, LabelOptions{Binary: binary})
			if err != nil {
				t.Fatalf("%s: %v", in, err)
			}
			if !slices.Equal(got, fixtureLabels) {
				t.Errorf("%s (binary %v): labels = %v\nwant %v", in, binary, got, fixtureLabels)
			}
			if st != (ReadStats{Files: 1, Records: int64(len(fixtureLabels))}) {
				t.Errorf("%s: stats = %+v", in, st)
			}
		}
	}
	// Regression labels are any finite number.
	p := filepath.Join(t.TempDir(), "y.csv")
	if err := os.WriteFile(p, []byte("label,inference_id,note\n-2.5,a,x\n1e3,b,y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := readLabels(t, nil, p, LabelOptions{})
	if want := []Label{{ID: "a", Value: -2.5}, {ID: "b", Value: 1000}}; err != nil || !slices.Equal(got, want) {
		t.Errorf("regression labels = %v, %v; want %v", got, err, want)
	}
}

// badCase is an input with one bad record among good ones.
type badCase struct {
	name, content string
	labels        bool // a labels input (else predictions)
	binary        bool
	want          string // the error, after the file name
	line          int    // the bad record's line
	good          int    // records read around it when skipped
}

var badCases = []badCase{
	{"score.csv", "inference_id,score\na,0.1\nb,high\nc,0.3\n", false, false, `:3: score: "high" is not a number`, 3, 2},
	{"id.csv", "inference_id,score\na,0.1\n ,0.2\nc,0.3\n", false, false, ":3: inference_id: empty", 3, 2},
	{"fields.csv", "inference_id,score\na,0.1\nb,0.2,extra\nc,0.3\n", false, false, ":3: 3 fields, the header has 2", 3, 2},
	{"quote.csv", "inference_id,score\na,0.1\nb,0\"x\"\nc,0.3\n", false, false, `:3: byte 4: bare " in non-quoted-field`, 3, 2},
	{"label.csv", "inference_id,label\na,1\nb,maybe\nc,0\n", true, false, `:3: label: "maybe" is not a number, true or false`, 3, 2},
	{"binary.csv", "inference_id,label\na,1\nb,0.5\nc,0\n", true, true, `:3: label: "0.5" is not a binary label (1, 0, true or false)`, 3, 2},
	{"nan.csv", "inference_id,label\na,1\nb,NaN\nc,0\n", true, false, `:3: label: "NaN" is not a finite number`, 3, 2},
	{"empty.csv", "inference_id,label\na,1\nb,\nc,0\n", true, false, ":3: label: no label", 3, 2},
	{"json.jsonl", gt("a", `"1"`) + "{not json\n" + gt("c", `"0"`), true, false, ":2: not a ground-truth record: ", 2, 2},
	{"event.jsonl", gt("a", `"1"`) + `{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {}}` + "\n" + gt("c", `"0"`), true, false,
		":2: eventMetadata.eventId: missing or empty", 2, 2},
	{"encoding.jsonl", gt("a", `"1"`) + `{"groundTruthData": {"data": "1", "encoding": "JSON"}, "eventMetadata": {"eventId": "b"}}` + "\n" + gt("c", `"0"`), true, false,
		`:2: groundTruthData.encoding: "JSON": only CSV is read`, 2, 2},
	{"data.jsonl", gt("a", `"1"`) + gt("b", `"1,0.7"`) + gt("c", `"0"`), true, false, `:2: groundTruthData.data: "1,0.7" holds more than a label`, 2, 2},
	{"object.jsonl", gt("a", `"1"`) + gt("b", `{"label": 1}`) + gt("c", `"0"`), true, false, `:2: groundTruthData.data: {"label": 1}: want the label as a string`, 2, 2},
	{"nodata.jsonl", gt("a", `"1"`) + `{"eventMetadata": {"eventId": "b"}}` + "\n" + gt("c", `"0"`), true, false, ":2: groundTruthData: missing", 2, 2},
	{"binary.jsonl", gt("a", `"1"`) + gt("b", `0.3`) + gt("c", `"0"`), true, true, `:2: groundTruthData.data: "0.3" is not a binary label`, 2, 2},
	{"long.jsonl", gt("a", `"1"`) + strings.Repeat("x", maxRecordLine+10) + "\n" + gt("c", `"0"`), true, false, ":2: over 1024 KiB without a line break", 2, 2},
	// Our extension: a label without an id needs its entity and time.
	{"noid.jsonl", gt("a", `"1"`) + gtEntity("", "1", "", "") + gt("c", `"0"`), true, false,
		":2: eventMetadata.eventId: missing or empty: it is the inference id (or add streamscore's entity and time", 2, 2},
	{"noentity.jsonl", gt("a", `"1"`) + gtEntity("", "1", " ", "2026-12-03T07:00:00Z") + gt("c", `"0"`), true, false,
		":2: streamscore.entity: missing or empty", 2, 2},
	{"notime.jsonl", gt("a", `"1"`) + `{"groundTruthData":{"data":"1","encoding":"CSV"},"eventMetadata":{"eventId":""},"eventVersion":"0","streamscore":{"entity":"m-1"}}` + "\n" + gt("c", `"0"`), true, false,
		":2: streamscore.time: missing or empty", 2, 2},
	{"badtime.jsonl", gt("a", `"1"`) + gtEntity("b", "1", "m-1", "yesterday") + gt("c", `"0"`), true, false,
		`:2: streamscore.time: "yesterday" is not an RFC 3339 time`, 2, 2},
	{"fartime.jsonl", gt("a", `"1"`) + gtEntity("", "1", "m-1", "2300-01-01T00:00:00Z") + gt("c", `"0"`), true, false,
		`:2: streamscore.time: "2300-01-01T00:00:00Z" is out of range`, 2, 2},
	{"entity.csv", "entity,time,label\nm-1,2026-12-03T07:00:00Z,1\nm-2,,1\nm-3,2026-12-03T07:00:00Z,0\n", true, false,
		":3: time: empty: a label without an inference id judges by when its event happened", 3, 2},
	{"noentity.csv", "inference_id,entity,time,label\na,,,1\n,,2026-12-03T07:00:00Z,1\nc,,,0\n", true, false,
		":3: entity: empty: a label without an inference id judges its entity's predictions", 3, 2},
	{"nokey.csv", "inference_id,entity,time,label\na,,,1\n,,,1\nc,,,0\n", true, false,
		":3: inference_id: empty, and no entity and time to judge by instead", 3, 2},
	{"window.csv", "inference_id,score,window_end\na,0.1,2026-12-03T07:00:00Z\nb,0.2,7am\nc,0.3,\n", false, false,
		`:3: window_end: "7am" is not an RFC 3339 time`, 3, 2},
	{"challenger.csv", "inference_id,score,challenger_score\na,0.1,0.2\nb,0.2,high\nc,0.3,\n", false, false,
		`:3: challenger_score: "high" is not a number`, 3, 2},
}

// gtEntity is a line of ground-truth JSON Lines in the exact shape our
// ground-truth sink writes, with the streamscore extension (entity and
// time; both "" leaves the extension out).
func gtEntity(id, data, entity, at string) string {
	ext := ""
	if entity != "" || at != "" {
		ext = fmt.Sprintf(`,"streamscore":{"entity":%q,"time":%q}`, entity, at)
	}
	return fmt.Sprintf(`{"groundTruthData":{"data":%q,"encoding":"CSV"},"eventMetadata":{"eventId":%q},"eventVersion":"0"%s}`+"\n", data, id, ext)
}

// TestReadLabelsByEntity: our extension of the ground-truth record, in
// the exact shape the ground-truth sink writes, gives labels judging by
// entity (no eventId) and labels carrying both an id and their entity;
// a file from another system (no extension) reads as before; a CSV with
// entity and time columns, with or without inference_id, reads the same.
func TestReadLabelsByEntity(t *testing.T) {
	at := time.Date(2026, 12, 3, 7, 0, 0, 123e6, time.UTC)
	want := []Label{
		{Value: 1, Entity: "m-1", Time: at},
		{ID: "r1", Value: 0, Entity: "m-2", Time: at.Add(time.Hour)},
		{ID: "r2", Value: 1},
	}
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "gt.jsonl")
	if err := os.WriteFile(jsonl, []byte(`{"groundTruthData":{"data":"1","encoding":"CSV"},"eventMetadata":{"eventId":""},"eventVersion":"0","streamscore":{"entity":"m-1","time":"2026-12-03T07:00:00.123Z"}}`+"\n"+
		gtEntity("r1", "0", "m-2", "2026-12-03T09:00:00.123+01:00")+gt("r2", `"1"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	csvs := map[string]string{
		"all.csv":    "inference_id,entity,time,label\n,m-1,2026-12-03T07:00:00.123Z,1\nr1,m-2,2026-12-03T08:00:00.123Z,0\nr2,,,1\n",
		"entity.csv": "label,time,entity\n1,2026-12-03T07:00:00.123Z,m-1\n0,2026-12-03T08:00:00.123Z,m-2\n",
	}
	for name, content := range csvs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string][]Label{
		jsonl:                            want,
		filepath.Join(dir, "all.csv"):    want,
		filepath.Join(dir, "entity.csv"): {want[0], {Value: 0, Entity: "m-2", Time: at.Add(time.Hour)}},
	} {
		got, st, err := readLabels(t, nil, path, LabelOptions{Binary: true})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !sameLabels(got, want) || st.Records != int64(len(want)) {
			t.Errorf("%s: labels %+v (%+v)\nwant %+v", path, got, st, want)
		}
		for _, l := range got {
			if !l.Time.IsZero() && l.Time.Location() != time.UTC {
				t.Errorf("%s: label time %v is not in UTC", path, l.Time)
			}
		}
	}
}

// TestReadPredictionsCSVColumns: a predictions CSV may carry the results'
// entity, window_end and shadow challenger; an empty challenger score is
// missing (NaN), an empty window_end none.
func TestReadPredictionsCSVColumns(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.csv")
	if err := os.WriteFile(p, []byte("inference_id,score,model_version,entity,window_end,challenger_score,challenger_model_version\n"+
		"a,0.9,v1,m-1,2026-12-03T07:10:00Z,0.4,c1\nb,0.1,v1,m-2,,,c1\nc,0.5,v2,m-3,2026-12-03T07:20:00.5Z,,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := readPredictions(t, nil, p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 7, 10, 0, 0, time.UTC)
	want := []Prediction{
		{ID: "a", Score: 0.9, ModelVersion: "v1", Entity: "m-1", WindowEnd: at, ChallengerScore: 0.4, ChallengerVersion: "c1"},
		{ID: "b", Score: 0.1, ModelVersion: "v1", Entity: "m-2", ChallengerScore: math.NaN(), ChallengerVersion: "c1"},
		{ID: "c", Score: 0.5, ModelVersion: "v2", Entity: "m-3", WindowEnd: at.Add(10*time.Minute + time.Second/2)},
	}
	if !samePredictions(got, want) {
		t.Errorf("predictions %+v\nwant %+v", got, want)
	}
}

// gt is a line of ground-truth JSON Lines.
func gt(id, data string) string {
	return fmt.Sprintf(`{"groundTruthData": {"data": %s, "encoding": "CSV"}, "eventMetadata": {"eventId": %q}, "eventVersion": "0"}`+"\n", data, id)
}

// TestReadBadRecords: a bad record stops a read with an error naming the
// file, the line and the column or field; with a Bad rule that skips, the
// rule gets that error as a *RecordError and the records around it are
// read; an error from the rule stops the read with it.
func TestReadBadRecords(t *testing.T) {
	dir := t.TempDir()
	for _, c := range badCases {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		read := func(opts ReadOptions) (int, ReadStats, error) {
			if c.labels {
				got, st, err := readLabels(t, nil, p, LabelOptions{ReadOptions: opts, Binary: c.binary})
				return len(got), st, err
			}
			got, st, err := readPredictions(t, nil, p, opts)
			return len(got), st, err
		}
		_, _, err := read(ReadOptions{})
		if err == nil || !strings.Contains(err.Error(), p+c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, p+c.want)
		}
		var seen []*RecordError
		n, st, err := read(ReadOptions{Bad: func(e *RecordError) error { seen = append(seen, e); return nil }})
		if err != nil {
			t.Errorf("%s, skipping bad records: %v", c.name, err)
		}
		if len(seen) != 1 || seen[0].File != p || seen[0].Line != c.line {
			t.Errorf("%s: bad records %v, want one at line %d", c.name, seen, c.line)
		}
		if n != c.good || st.Bad != 1 || st.Records != int64(c.good) {
			t.Errorf("%s: %d records read, stats %+v; want %d and 1 bad", c.name, n, st, c.good)
		}
		stop := errors.New("too many")
		if _, _, err := read(ReadOptions{Bad: func(*RecordError) error { return stop }}); !errors.Is(err, stop) {
			t.Errorf("%s: a Bad rule's error: read returned %v", c.name, err)
		}
	}
}

// TestReadRefusedFiles: files that cannot be read at all are refused
// whatever the Bad rule, naming the file and what is wrong.
func TestReadRefusedFiles(t *testing.T) {
	dir := t.TempDir()
	skip := ReadOptions{Bad: func(*RecordError) error { return nil }}
	for _, c := range []struct {
		name, content string
		labels        bool
		want          string
	}{
		{"noscore.csv", "inference_id,prob\na,0.1\n", false, `:1: no "score" column (the header is inference_id,prob): want a header line naming inference_id and score`},
		{"headless.csv", "a,1\nb,0\n", true, `:1: no "inference_id" column (the header is a,1): want a header line naming inference_id and label, or entity, time and label`},
		{"twice.csv", "inference_id,label,label\na,1,0\n", true, `:1: column "label" appears twice`},
		{"empty.csv", "", true, ": empty: want a header line naming inference_id and label, or entity, time and label"},
		{"labels.jsonl", gt("a", `"1"`), false, ": JSON: want a predictions CSV"},
		{"long.csv", "inference_id,score\n" + strings.Repeat("1", maxRecordLine+1) + "\n", false, ": line 2: over 1024 KiB without a line break"},
		{"bad.gz", "\x1f\x8bnot gzip", true, ": gzip: "},
		{"broken.parquet", "PAR1 not really", false, ": not a readable Parquet file"},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		var err error
		if c.labels {
			_, _, err = readLabels(t, nil, p, LabelOptions{ReadOptions: skip})
		} else {
			_, _, err = readPredictions(t, nil, p, skip)
		}
		if err == nil || !strings.Contains(err.Error(), p+c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, p+c.want)
		}
		if _, ok := errors.AsType[*RecordError](err); ok {
			t.Errorf("%s: %v is a bad record, which a caller may skip; want the file refused", c.name, err)
		}
	}
	// Labels from a Parquet file are refused by name.
	if _, _, err := readLabels(t, nil, resultsPQ, LabelOptions{}); err == nil || !strings.Contains(err.Error(), resultsPQ+": Parquet: want labels as a CSV") {
		t.Errorf("labels from Parquet: %v", err)
	}
}

// qualityRow is a row of qualityResults.
type qualityRow struct {
	entity  string
	score   float64 // NaN: null
	version string
	update  bool
	partial string
}

// qualityResults is one window of eight machines scored by two model
// versions (press-08's score null), then an update of press-02's window
// and a part of press-03's, which the readers must leave out: both carry
// their window's result_id and scores no label judges.
var (
	qualityWindow  = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	qualityWritten = time.Date(2026, 11, 24, 9, 1, 5, 0, time.UTC)
	qualityResults = [][]qualityRow{{
		{"press-01", 0.91, "xgb-7", false, ""},
		{"press-02", 0.12, "xgb-7", false, ""},
		{"press-03", 0.78, "xgb-7", false, ""},
		{"press-04", 0.33, "xgb-7", false, ""},
		{"press-05", 0.64, "xgb-7", false, ""},
		{"press-06", 0.05, "xgb-8", false, ""},
		{"press-07", 0.87, "xgb-8", false, ""},
		{"press-08", math.NaN(), "xgb-8", false, ""},
	}, {
		{"press-02", 0.99, "xgb-7", true, ""},
		{"press-03", 0.5, "xgb-7", false, windowing.PartialEvicted},
	}}
	// resultLabels label press-01..07 (press-08 has none).
	resultLabels = []float64{1, 1, 0, 0, 1, 0, 1}
)

// qualityBatch builds rows in the pipeline's result layout, bookkeeping
// and a challenger included, which the readers must not take for the
// champion's score.
func qualityBatch(t testing.TB, rows []qualityRow) arrow.RecordBatch {
	t.Helper()
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	f64, str := arrow.PrimitiveTypes.Float64, arrow.BinaryTypes.String
	s := arrow.NewSchema([]arrow.Field{
		{Name: sinks.ColEntity, Type: str},
		{Name: sinks.ColWindowStart, Type: ts},
		{Name: sinks.ColWindowEnd, Type: ts},
		{Name: "temp_mean", Type: f64},
		{Name: sinks.ColUpdate, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartial, Type: str},
		{Name: windowing.ColOffsetFirst, Type: arrow.PrimitiveTypes.Uint64},
		{Name: windowing.ColOffsetLast, Type: arrow.PrimitiveTypes.Uint64},
		{Name: sinks.ColScore, Type: f64, Nullable: true},
		{Name: sinks.ColModelVersion, Type: str},
		{Name: sinks.ColFallback, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartialID, Type: str, Nullable: true},
		{Name: sinks.ColChallengerScore, Type: f64, Nullable: true},
		{Name: sinks.ColChallengerModelVersion, Type: str},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	for i, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.entity)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(qualityWindow.UnixNano()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(qualityWindow.Add(time.Minute).UnixNano()))
		b.Field(3).(*array.Float64Builder).Append(60 + float64(i))
		b.Field(4).(*array.BooleanBuilder).Append(r.update)
		b.Field(5).(*array.StringBuilder).Append(r.partial)
		b.Field(6).(*array.Uint64Builder).Append(uint64(i))
		b.Field(7).(*array.Uint64Builder).Append(uint64(i))
		if math.IsNaN(r.score) {
			b.Field(8).(*array.Float64Builder).AppendNull()
		} else {
			b.Field(8).(*array.Float64Builder).Append(r.score)
		}
		b.Field(9).(*array.StringBuilder).Append(r.version)
		b.Field(10).(*array.BooleanBuilder).Append(false)
		if r.partial != "" {
			b.Field(11).(*array.StringBuilder).Append(fmt.Sprintf("shardId-000000000001/%d", i))
		} else {
			b.Field(11).(*array.StringBuilder).AppendNull()
		}
		b.Field(12).(*array.Float64Builder).Append(0.5)
		b.Field(13).(*array.StringBuilder).Append("xgb-9")
	}
	return b.NewRecordBatch()
}

// qualityWant is what reading qualityResults must give: the whole rows,
// by the result_id the sinks compute, written at qualityWritten, with
// their entity, window end and shadow challenger.
func qualityWant() []Prediction {
	var out []Prediction
	for _, r := range qualityResults[0] {
		out = append(out, Prediction{
			ID:    sinks.ResultID("factory", r.entity, qualityWindow, qualityWindow.Add(time.Minute), r.version),
			Score: r.score, ModelVersion: r.version, Written: qualityWritten,
			Entity: r.entity, WindowEnd: qualityWindow.Add(time.Minute), ChallengerScore: 0.5, ChallengerVersion: "xgb-9",
		})
	}
	return out
}

// TestReadPredictionsParquet: the S3 sink's file (the committed fixture)
// gives its whole rows with their result ids, versions and write times,
// a null score as NaN, and leaves the update and the part out, counted;
// the same gzip'd (read through a temporary copy). Its labels file
// matches by result id.
func TestReadPredictionsParquet(t *testing.T) {
	want := qualityWant()
	got, st, err := readPredictions(t, nil, resultsPQ, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !samePredictions(got, want) {
		t.Errorf("predictions = %+v\nwant %+v", got, want)
	}
	if st != (ReadStats{Files: 1, Records: 8, LeftOut: 2}) {
		t.Errorf("stats = %+v, want 8 records and 2 left out", st)
	}
	src, err := os.ReadFile(resultsPQ)
	if err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(t.TempDir(), "results.parquet.gz")
	writeGzip(t, gz, src)
	if got, _, err := readPredictions(t, nil, gz, ReadOptions{}); err != nil || !samePredictions(got, want) {
		t.Errorf("gzip'd: %+v, %v", got, err)
	}

	labels, _, err := readLabels(t, nil, resultsLabels, LabelOptions{Binary: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(labels) != len(resultLabels) {
		t.Fatalf("%d labels, want %d", len(labels), len(resultLabels))
	}
	for i, l := range labels {
		if l.ID != want[i].ID || l.Value != resultLabels[i] {
			t.Errorf("label %d = %+v, want %s = %v", i, l, want[i].ID, resultLabels[i])
		}
	}
}

// TestReadPredictionsForeignParquet: a Parquet file that is not ours is
// read by inference_id (text) and score (float32 here); a null id is a bad
// record named by its row.
func TestReadPredictionsForeignParquet(t *testing.T) {
	s := arrow.NewSchema([]arrow.Field{
		{Name: ColInferenceID, Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: sinks.ColScore, Type: arrow.PrimitiveTypes.Float32},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"a", "", "c"}, []bool{true, false, true})
	b.Field(1).(*array.Float32Builder).AppendValues([]float32{0.25, 0.5, 0.75}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	p := filepath.Join(t.TempDir(), "foreign.parquet")
	writeParquet(t, p, rec)

	_, _, err := readPredictions(t, nil, p, ReadOptions{})
	if want := p + ": row 2: inference_id: null or empty"; err == nil || err.Error() != want {
		t.Errorf("a null id: %v, want %q", err, want)
	}
	got, st, err := readPredictions(t, nil, p, ReadOptions{Bad: func(*RecordError) error { return nil }})
	if want := []Prediction{{ID: "a", Score: 0.25}, {ID: "c", Score: 0.75}}; err != nil || !samePredictions(got, want) {
		t.Errorf("predictions = %+v, %v; want %+v", got, err, want)
	}
	if st.Bad != 1 {
		t.Errorf("stats = %+v, want 1 bad", st)
	}

	// Without an id or a score column, the file is refused by name.
	s = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}, {Name: sinks.ColScore, Type: arrow.PrimitiveTypes.Float64}}, nil)
	b2 := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b2.Release()
	b2.Field(0).(*array.StringBuilder).Append("a")
	b2.Field(1).(*array.Float64Builder).Append(1)
	rec2 := b2.NewRecordBatch()
	defer rec2.Release()
	writeParquet(t, p, rec2)
	if _, _, err := readPredictions(t, nil, p, ReadOptions{}); err == nil || !strings.Contains(err.Error(), p+`: no "inference_id" column (columns: id, score)`) {
		t.Errorf("no id column: %v", err)
	}
}

// TestQualityResultsS3: the S3 sink's own file of qualityResults, read
// through an s3:// prefix and key from the local S3 server, gives what the
// committed fixture gives; labels under a prefix (JSON Lines gzip'd and a
// CSV) read in name order. With -update-quality-results it rewrites the
// fixture and its labels from what the sink wrote.
func TestQualityResultsS3(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	sink, err := sinks.NewS3(sinks.S3Options{Client: env.S3, Bucket: bucket, Prefix: "results/", SpoolDir: t.TempDir(),
		RollAge: time.Hour, Now: func() time.Time { return qualityWritten }})
	if err != nil {
		t.Fatal(err)
	}
	acks := make(chan error, len(qualityResults))
	for k, rows := range qualityResults {
		rec := qualityBatch(t, rows)
		defer rec.Release()
		first := shardpos.Position{Sequence: fmt.Sprintf("4963%052d", 1000*k+1)}
		last := shardpos.Position{Sequence: fmt.Sprintf("4963%052d", 1000*k+999)}
		if err := sink.Write(ctx, sinks.Batch{Stream: "factory", Shard: "shardId-000000000001", Range: sinks.Range{First: first, Last: last},
			Rec: rec, Ack: func(err error) { acks <- err }}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range qualityResults {
		if err := <-acks; err != nil {
			t.Fatalf("the S3 sink failed a batch: %v", err)
		}
	}
	list, err := env.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("results/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 {
		t.Fatalf("the S3 sink wrote %d objects, want 1", len(list.Contents))
	}
	key := aws.ToString(list.Contents[0].Key)
	if *updateResults {
		writeResultsFixture(t, env.S3, bucket, key)
	}

	want := qualityWant()
	for _, uri := range []string{"s3://" + bucket + "/results/", "s3://" + bucket + "/" + key} {
		got, st, err := readPredictions(t, env.S3, uri, ReadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		if !samePredictions(got, want) || st != (ReadStats{Files: 1, Records: 8, LeftOut: 2}) {
			t.Errorf("%s: predictions %+v, stats %+v\nwant %+v", uri, got, st, want)
		}
	}

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
	put("labels/2026/11/24/10/a.jsonl.gz", labelsGzip)
	put("labels/2026/11/24/11/b.csv", labelsCSV)
	got, st, err := readLabels(t, env.S3, "s3://"+bucket+"/labels/", LabelOptions{Binary: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Concat(fixtureLabels, fixtureLabels); !slices.Equal(got, want) || st.Files != 2 {
		t.Errorf("labels under a prefix = %v (%+v)\nwant %v", got, st, want)
	}
}

// writeResultsFixture copies the sink's file into the fixtures and writes
// its labels as Model Monitor's ground-truth JSON Lines.
func writeResultsFixture(t *testing.T, c S3, bucket, key string) {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(resultsPQ, body, 0o644); err != nil {
		t.Fatal(err)
	}
	var labels strings.Builder
	for i, p := range qualityWant()[:len(resultLabels)] {
		labels.WriteString(gt(p.ID, fmt.Sprintf("%q", fmt.Sprint(resultLabels[i]))))
	}
	if err := os.WriteFile(resultsLabels, []byte(labels.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (s3://%s/%s) and %s", resultsPQ, bucket, key, resultsLabels)
}
