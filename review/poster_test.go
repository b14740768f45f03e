package review

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/windowing"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

// labelsConfig is a pipeline whose labels stream (named stream) has the
// given time format and label field type.
func labelsConfig(t testing.TB, stream, timeFormat, labelType string) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`pipeline: p
streams:
  - {name: s, schema: sensor}
  - {name: %s, schema: label}
schemas:
  sensor:
    entity: machine_id
    time: ts
    fields:
      - {name: vibration_rms, type: float64}
  label:
    entity: machine_id
    time: ts
    time_format: %s
    fields:
      - {name: failed, type: %s}
      - {name: result_id, type: string}
windows:
  - {name: w, stream: s, kind: tumbling, size: 1m, features: [{name: vib_mean, agg: mean, field: vibration_rms}]}
models:
  m: {format: linear, path: model.json}
scorers:
  - {name: sc, window: w, model: m}
sinks:
  s3: {bucket: b}
labels: {stream: %s, label: failed, inference_id: result_id}
alerts:
  topic: t
  rules:
    - {name: failure-risk, scorer: sc, threshold: 0.9, severity: critical}
  review:
    link: "http://127.0.0.1:8080/review?result_id={result_id}&entity={entity}&window_end={window_end}"
`, stream, timeFormat, labelType, stream)
	cfg, err := config.Parse([]byte(src), "review.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// decodeLabel decodes a verdict's record as the pipeline's labels shards
// do (the labels schema, the same decoder) and returns its entity, time,
// label and inference id.
func decodeLabel(t *testing.T, cfg *config.Config, stream string, rec []byte) (string, time.Time, any, string) {
	t.Helper()
	sc, err := cfg.StreamSchema(stream)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := windowing.NewDecoder(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Release()
	if err := dec.Append(rec, 0); err != nil {
		t.Fatalf("the labels decoder refuses %s: %v", rec, err)
	}
	b := dec.NewRecordBatch()
	defer b.Release()
	s := b.Schema()
	col := func(name string) int { return s.FieldIndices(name)[0] }
	ts := b.Column(1).(*array.Timestamp).Value(0)
	return b.Column(0).(*array.String).Value(0), time.Unix(0, int64(ts)).UTC(), b.Column(col("failed")).GetOneForMarshal(0),
		b.Column(col("result_id")).(*array.String).Value(0)
}

// TestEncodeFollowsTheSchema: for every time format and label type a
// labels schema may have, a verdict's record decodes with the pipeline's
// own decoder to the verdict's entity, exact time, label (typed as the
// field) and lower-case result_id.
func TestEncodeFollowsTheSchema(t *testing.T) {
	at := time.Date(2026, 12, 3, 7, 0, 1, 123_456_789, time.UTC)
	for _, tc := range []struct {
		format, labelType string
		label             float64
		want              any
		at                time.Time
	}{
		{"rfc3339", "bool", Confirmed, true, at},
		{"rfc3339", "bool", FalseAlarm, false, at},
		{"epoch_s", "int64", 1, int64(1), at},
		{"epoch_ms", "float64", 0.25, 0.25, at.Truncate(time.Microsecond)},
		{"epoch_s", "string", 1, "1", at.Truncate(time.Second)},
		{"epoch_ms", "bool", 0, false, at.Truncate(time.Millisecond)},
	} {
		t.Run(tc.format+"/"+tc.labelType, func(t *testing.T) {
			cfg := labelsConfig(t, "labels", tc.format, tc.labelType)
			p, err := NewPoster(nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			p.now = func() time.Time { return at }
			v := Verdict{ResultID: "5F0E4C1A9B7D2E38C6A1F04B9E3D7C21", Entity: `m "1" ü`, Time: tc.at, Label: tc.label, Reviewer: "ana", Note: "bearing noise"}
			rec, err := p.Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			entity, ts, label, id := decodeLabel(t, cfg, "labels", rec)
			if entity != v.Entity || !ts.Equal(tc.at) || label != tc.want || id != strings.ToLower(v.ResultID) {
				t.Errorf("%s decodes to %q %v %#v %s, want %q %v %#v", rec, entity, ts, label, id, v.Entity, tc.at, tc.want)
			}
			if !strings.Contains(string(rec), `"reviewer":"ana"`) || !strings.Contains(string(rec), `"note":"bearing noise"`) {
				t.Errorf("%s: reviewer and note missing", rec)
			}
		})
	}
}

// TestEncodeNamesTheBadField: a verdict the labels stream would
// dead-letter, or that could join nothing, is refused naming its field.
func TestEncodeNamesTheBadField(t *testing.T) {
	now := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	good := Verdict{ResultID: "5f0e4c1a9b7d2e38c6a1f04b9e3d7c21", Entity: "m-1", Time: now, Label: 1}
	for _, tc := range []struct {
		name, labelType, field, msg string
		edit                        func(*Verdict)
	}{
		{"no result id", "bool", "result_id", "missing", func(v *Verdict) { v.ResultID = "" }},
		{"short result id", "bool", "result_id", "want 32 hex digits", func(v *Verdict) { v.ResultID = "abc" }},
		{"no entity", "bool", "entity", "entity is empty", func(v *Verdict) { v.Entity = "" }},
		{"no time", "bool", "time", "missing", func(v *Verdict) { v.Time = time.Time{} }},
		{"future time", "bool", "time", "ahead of now", func(v *Verdict) { v.Time = now.Add(time.Hour) }},
		{"half a bool", "bool", "label", "want 1 (confirmed) or 0 (false alarm)", func(v *Verdict) { v.Label = 0.5 }},
		{"fraction for an int", "int64", "label", "want a whole number", func(v *Verdict) { v.Label = 1.5 }},
		{"NaN", "float64", "label", "not a label", func(v *Verdict) { v.Label = math.NaN() }},
		{"long reviewer", "bool", "reviewer", "at most 256 bytes", func(v *Verdict) { v.Reviewer = strings.Repeat("r", 300) }},
		{"note not UTF-8", "bool", "note", "valid UTF-8", func(v *Verdict) { v.Note = "\xff" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPoster(nil, labelsConfig(t, "labels", "rfc3339", tc.labelType))
			if err != nil {
				t.Fatal(err)
			}
			p.now = func() time.Time { return now }
			v := good
			tc.edit(&v)
			_, err = p.Encode(v)
			fe, ok := IsFieldError(err)
			if !ok || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("Encode = %v, want %s: …%s…", err, tc.field, tc.msg)
			}
		})
	}
}

// TestNewPosterRefusesAHorizonJoin: without an inference id a verdict
// could not judge the reviewed prediction alone; the poster says so.
func TestNewPosterRefusesAHorizonJoin(t *testing.T) {
	cfg := labelsConfig(t, "labels", "rfc3339", "bool")
	cfg.Labels.InferenceID = ""
	if _, err := NewPoster(nil, cfg); err == nil || !strings.Contains(err.Error(), "labels.inference_id is missing") {
		t.Errorf("NewPoster = %v, want the missing inference id named", err)
	}
}
