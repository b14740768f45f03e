package pipeline

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/config/configtest"
	"github.com/streamscore/streamscore/windowing"
)

// TestExampleWindowsCompile checks that every window of every example config
// is accepted by the windowing package, so config validation and the
// operator agree on what a valid window is.
func TestExampleWindowsCompile(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	demo, _ := filepath.Glob("../examples/demo/*.yaml")
	files = append(files, demo...)
	if len(files) < 4 {
		t.Fatalf("found %d example configs, want the 2 examples and 2 demo configs", len(files))
	}
	for _, f := range files {
		cfg, err := config.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range cfg.Windows {
			schema, err := StreamSchema(cfg, w.Stream)
			if err != nil {
				t.Fatal(err)
			}
			spec := WindowSpecFor(w)
			if err := spec.Validate(&schema); err != nil {
				t.Errorf("%s: window %s: %v", f, w.Name, err)
			}
		}
	}
}

// TestWindowRulesAsConfigValidate runs the rule table through what the
// pipeline builds its windows with (SchemaFor, WindowSpecFor, windowing's
// Validate, as newPlan does) and through config.Parse, what `streamscore
// config validate` runs: both accept the same windows and refuse the
// others with the same key and message.
func TestWindowRulesAsConfigValidate(t *testing.T) {
	rules, err := configtest.Rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		s, w, err := r.Go()
		if err != nil {
			t.Fatal(err)
		}
		cfg := &config.Config{File: "go", Streams: []config.Stream{{Name: "s", Schema: "all"}},
			Schemas: map[string]*config.Schema{"all": &s}, Windows: []config.Window{w}}
		schema, err := StreamSchema(cfg, w.Stream)
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		spec := WindowSpecFor(w)
		spec.PartialColumn = true // as the pipeline sets it
		got := append(configtest.SpecProblems("schemas.all", schema.Validate()),
			configtest.SpecProblems("windows[0]", spec.Validate(&schema))...)
		if want := r.Want(); !configtest.SameProblems(got, want) {
			t.Errorf("%s: the pipeline's spec:\n got %q\nwant %q", r.Name, got, want)
		}
		if r.Negative != "" {
			continue // the file cannot write a negative duration
		}
		_, err = config.Parse(r.File(), "rules.yaml")
		var fromFile []configtest.Problem
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fromFile = append(fromFile, configtest.Problem{Path: e.Path, Msg: e.Msg})
			}
		} else if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		if !configtest.SameProblems(got, fromFile) {
			t.Errorf("%s: config validate and the pipeline disagree:\nconfig   %q\npipeline %q", r.Name, fromFile, got)
		}
	}
}

// TestWindowSpecForIsConfigs: the pipeline converts with config's one
// conversion, defaults included.
func TestWindowSpecForIsConfigs(t *testing.T) {
	cfg, err := config.Load("../examples/factory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range cfg.Windows {
		if got := WindowSpecFor(w); !reflect.DeepEqual(got, w.Spec()) {
			t.Errorf("window %s: WindowSpecFor %+v, config %+v", w.Name, got, w.Spec())
		}
		if spec := WindowSpecFor(w); spec.IdleTimeout == 0 || spec.Late != windowing.LateDeadLetter && spec.Late != windowing.LateIgnore {
			t.Errorf("window %s: file defaults not applied: idle %v, late %q", w.Name, spec.IdleTimeout, spec.Late)
		}
	}
	for _, s := range cfg.Streams {
		if b := StreamBounds(s); b.MaxFutureSkew <= 0 {
			t.Errorf("stream %s: bounds %+v without the default future skew", s.Name, b)
		}
	}
}
