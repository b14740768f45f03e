package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	demo, _ := filepath.Glob("../examples/demo/*.yaml")
	files = append(files, demo...)
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	for _, f := range files {
		cfg, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(cfg.Streams) == 0 || len(cfg.Windows) == 0 || len(cfg.Scorers) == 0 {
			t.Errorf("%s: example lacks streams, windows or scorers", f)
		}
	}
}

func TestFactoryExampleDecodes(t *testing.T) {
	cfg, err := Load("../examples/factory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Windows[0]
	if w.Kind != "hopping" || w.Size.D() != 5*time.Minute || w.Slide.D() != time.Minute {
		t.Errorf("window = %+v, want hopping 5m/1m", w)
	}
	if got := cfg.Schemas["sensor"].Fields[3]; got != (Field{Name: "rpm", Type: "int64"}) {
		t.Errorf("schema field 3 = %+v", got)
	}
	// The lease table is named after the application by the consumer
	// (consumer.Config's default), not restated here.
	if cfg.Consumer.Application != "streamscore-factory" || cfg.Consumer.LeaseTable != "" {
		t.Errorf("application %q, lease table %q: want streamscore-factory and empty, for the consumer to name it after the application",
			cfg.Consumer.Application, cfg.Consumer.LeaseTable)
	}
	if cfg.Alerts.Rules[0].FireAfter != 2 || cfg.Alerts.Rules[0].Cooldown.D() != 15*time.Minute {
		t.Errorf("alert rule = %+v", cfg.Alerts.Rules[0])
	}
}

// minimal is a valid configuration that the error tests below break one
// line at a time. Line numbers matter: keep them in sync with the cases.
const minimal = `pipeline: p
streams:
  - name: s
    schema: sensor
schemas:
  sensor:
    entity: machine_id
    time: ts
    fields:
      - {name: vibration_rms, type: float64}
windows:
  - name: w
    stream: s
    kind: tumbling
    size: 1m
    features:
      - {name: vib_mean, agg: mean, field: vibration_rms}
models:
  m:
    path: model.json
scorers:
  - name: sc
    window: w
    model: m
`

func TestMinimalIsValid(t *testing.T) {
	if _, err := Parse([]byte(minimal), "p.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name      string
		old, new  string
		wantLine  int
		wantPath  string
		wantInMsg string
	}{
		{
			name: "unknown key",
			old:  "    size: 1m\n", new: "    size: 1m\n    sise: 2m\n",
			wantLine: 16, wantPath: "windows[0].sise", wantInMsg: `unknown key "sise"`,
		},
		{
			name: "unknown top-level key",
			old:  "pipeline: p\n", new: "pipeline: p\npipelines: q\n",
			wantLine: 2, wantPath: "pipelines", wantInMsg: `unknown key "pipelines"`,
		},
		{
			name: "bad type",
			old:  "    schema: sensor\n", new: "    schema: sensor\n    shards: four\n",
			wantLine: 5, wantPath: "streams[0].shards", wantInMsg: `expected an integer, got the string "four"`,
		},
		{
			name: "bad duration",
			old:  "    size: 1m\n", new: "    size: 5x\n",
			wantLine: 15, wantPath: "windows[0].size", wantInMsg: `invalid duration "5x"`,
		},
		{
			name: "undefined model",
			old:  "    model: m\n", new: "    model: nope\n",
			wantLine: 24, wantPath: "scorers[0].model", wantInMsg: `undefined model "nope" (defined: m)`,
		},
		{
			name: "undefined schema",
			old:  "    schema: sensor\n", new: "    schema: sensors\n",
			wantLine: 4, wantPath: "streams[0].schema", wantInMsg: `undefined schema "sensors"`,
		},
		{
			name: "undefined window",
			old:  "    window: w\n", new: "    window: w2\n",
			wantLine: 23, wantPath: "scorers[0].window", wantInMsg: `undefined window "w2"`,
		},
		{
			name: "undefined field in feature",
			old:  "field: vibration_rms}", new: "field: vibration}",
			wantLine: 17, wantPath: "windows[0].features[0].field", wantInMsg: `undefined field "vibration"`,
		},
		{
			name: "unknown aggregate",
			old:  "agg: mean", new: "agg: median",
			wantLine: 17, wantPath: "windows[0].features[0].agg", wantInMsg: `unknown aggregate "median"`,
		},
		{
			name: "windowing's rule, at the key's line",
			old:  "agg: mean, field: vibration_rms}", new: "agg: quantile, field: vibration_rms, quantile: 1.5}",
			wantLine: 17, wantPath: "windows[0].features[0].quantile", wantInMsg: "must be within (0, 1], got 1.5",
		},
		{
			name: "bad enum",
			old:  "    kind: tumbling\n", new: "    kind: sliding\n",
			wantLine: 14, wantPath: "windows[0].kind", wantInMsg: `"sliding" is not one of tumbling, hopping, session`,
		},
		{
			name: "bad float encoding",
			old:  "    model: m\n", new: "    model: m\nsinks:\n  s3:\n    bucket: b\n    float_encoding: bss\n",
			wantLine: 28, wantPath: "sinks.s3.float_encoding", wantInMsg: `"bss" is not one of byte_stream_split, plain`,
		},
		{
			name: "bad zstd level",
			old:  "    model: m\n", new: "    model: m\nsinks:\n  s3:\n    bucket: b\n    zstd_level: 23\n",
			wantLine: 28, wantPath: "sinks.s3.zstd_level", wantInMsg: "23 is not a zstd level (1 to 22)",
		},
		{
			name: "bad client version",
			old:  "pipeline: p\n", new: "pipeline: p\nconsumer:\n  client_version: 4x\n",
			wantLine: 3, wantPath: "consumer.client_version", wantInMsg: `"4x" is not one of 2x, 2x-compatible, 3x`,
		},
		{
			name: "a 3x setting without client_version 3x",
			old:  "pipeline: p\n", new: "pipeline: p\nconsumer:\n  report_cpu: false\n",
			wantLine: 3, wantPath: "consumer.report_cpu", wantInMsg: "applies to client_version 3x or 2x-compatible only",
		},
		{
			name: "bad lease assignment",
			old:  "pipeline: p\n", new: "pipeline: p\nconsumer:\n  client_version: 3x\n  lease_assignment: cpu\n",
			wantLine: 4, wantPath: "consumer.lease_assignment", wantInMsg: `"cpu" is not one of worker_utilization_aware, lease_count_based`,
		},
		{
			name: "yaml syntax",
			old:  "    kind: tumbling\n", new: "    kind: [tumbling\n",
			wantLine: 0, wantInMsg: "YAML syntax",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(minimal, tc.old) {
				t.Fatalf("test case does not apply: %q not in the minimal config", tc.old)
			}
			src := strings.Replace(minimal, tc.old, tc.new, 1)
			_, err := Parse([]byte(src), "pipe.yaml")
			if err == nil {
				t.Fatal("Parse accepted a broken config")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *config.Error", err, err)
			}
			if ce.File != "pipe.yaml" {
				t.Errorf("file = %q, want pipe.yaml", ce.File)
			}
			if tc.wantLine > 0 && ce.Line != tc.wantLine {
				t.Errorf("line = %d, want %d (%v)", ce.Line, tc.wantLine, err)
			}
			if tc.wantLine == 0 && ce.Line == 0 {
				t.Errorf("syntax error without a line: %v", err)
			}
			if ce.Path != tc.wantPath {
				t.Errorf("path = %q, want %q (%v)", ce.Path, tc.wantPath, err)
			}
			if !strings.Contains(ce.Msg, tc.wantInMsg) {
				t.Errorf("message %q does not say %q", ce.Msg, tc.wantInMsg)
			}
			if !strings.HasPrefix(err.Error(), "pipe.yaml:") {
				t.Errorf("error text %q does not start with file:line", err)
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	src := strings.Replace(minimal, "    size: 1m\n", "    size: 5x\n    slide: 1y\n", 1)
	_, err := Parse([]byte(src), "p.yaml")
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want 2 errors (size and slide), got %v", err)
	}
	if es[0].Path != "windows[0].size" || es[1].Path != "windows[0].slide" {
		t.Errorf("paths = %s, %s", es[0].Path, es[1].Path)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	for _, p := range []string{"../examples/factory.yaml", "../examples/churn.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml")
		if err == nil && cfg == nil {
			t.Fatal("nil config without an error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}
