package config_test

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/config/configtest"
	"github.com/streamscore/streamscore/windowing"
)

// TestRulesFileAndGoAgree runs every row of the rule table both ways: as a
// configuration file through config.Parse, and as the Go values a caller
// holds through Spec and windowing's Validate. Both must accept the same
// rows and refuse the others with the same key and message; the file's
// errors must point at the line of that key.
func TestRulesFileAndGoAgree(t *testing.T) {
	rules, err := configtest.Rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		t.Run(r.Name, func(t *testing.T) {
			file := r.File()
			_, err := config.Parse(file, "rules.yaml")
			got := fileProblems(t, err, file)
			if want := r.FileWant(); !configtest.SameProblems(got, want) {
				t.Errorf("config.Parse:\n got %q\nwant %q\nfile:\n%s", got, want, file)
			}

			s, w, err := r.Go()
			if err != nil {
				t.Fatal(err)
			}
			schema, spec := s.Spec("all"), w.Spec()
			goGot := append(configtest.SpecProblems("schemas.all", schema.Validate()),
				configtest.SpecProblems("windows[0]", spec.Validate(&schema))...)
			if want := r.Want(); !configtest.SameProblems(goGot, want) {
				t.Errorf("Go API (Spec, Validate):\n got %q\nwant %q", goGot, want)
			}
		})
	}
}

// fileProblems returns Parse's errors as problems, after checking that
// each names the file and the line where its key (or, for a missing key,
// its nearest parent) is written.
func fileProblems(t *testing.T, err error, file []byte) []configtest.Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not config.Errors", err, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(file, &root); err != nil {
		t.Fatal(err)
	}
	var out []configtest.Problem
	for _, e := range es {
		if e.File != "rules.yaml" {
			t.Errorf("%v: file %q", e, e.File)
		}
		if want := lineOf(&root, e.Path); e.Line != want {
			t.Errorf("%v: line %d, want %d (where %s is written)", e, e.Line, want, e.Path)
		}
		out = append(out, configtest.Problem{Path: e.Path, Msg: e.Msg})
	}
	return out
}

var segRE = regexp.MustCompile(`([^.\[\]]+)|\[(\d+)\]`)

// lineOf walks the YAML tree along path (a.b[2].c) and returns the line
// of the deepest part of it that the file has.
func lineOf(root *yaml.Node, path string) int {
	n, line := root.Content[0], 0
	for _, m := range segRE.FindAllStringSubmatch(path, -1) {
		var next *yaml.Node
		switch {
		case m[1] != "" && n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == m[1] {
					line, next = n.Content[i].Line, n.Content[i+1]
				}
			}
		case m[2] != "" && n.Kind == yaml.SequenceNode:
			if i, _ := strconv.Atoi(m[2]); i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// TestRulesCoverTheOptions checks that the table accepts every aggregate,
// window kind and late policy, and every key of a window and a feature:
// what docs/windowing.md documents, `config validate` accepts.
func TestRulesCoverTheOptions(t *testing.T) {
	rules, err := configtest.Rules()
	if err != nil {
		t.Fatal(err)
	}
	var accepted strings.Builder
	for _, r := range rules {
		if len(r.Errors) == 0 {
			accepted.WriteString(r.Window)
		}
	}
	text := accepted.String()
	var want []string
	for _, a := range windowing.Aggregates() {
		want = append(want, `agg: `+string(a)+`[,}]`)
	}
	for _, k := range []windowing.Kind{windowing.Tumbling, windowing.Hopping, windowing.Session} {
		want = append(want, `kind: `+string(k)+`\n`)
	}
	for _, l := range []windowing.LatePolicy{windowing.LateDeadLetter, windowing.LateIgnore} {
		want = append(want, `late: `+string(l)+`\n`)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[config.Window](), reflect.TypeFor[config.Feature]()} {
		for f := range typ.Fields() {
			want = append(want, `(^|[\s{])`+f.Tag.Get("yaml")+`:`)
		}
	}
	for _, w := range want {
		if !regexp.MustCompile(w).MatchString(text) {
			t.Errorf("no accepted row of configtest/rules.yaml matches %q", w)
		}
	}
}

// documentedConfig returns the configuration block of docs/windowing.md
// as a whole file: the schemas and windows it shows, with the pipeline
// and streams they need.
func documentedConfig(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile("../docs/windowing.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Config.*?```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/windowing.md has no ```yaml block under ## Config")
	}
	return fmt.Appendf(nil, "pipeline: doc\nstreams:\n  - {name: factory-sensors, schema: sensor}\n  - {name: app-events, schema: app}\n%s", m[1])
}

// TestDocumentedConfigIsValid: the configuration docs/windowing.md shows
// passes validation, and windowing accepts its windows as converted.
func TestDocumentedConfigIsValid(t *testing.T) {
	cfg, err := config.Parse(documentedConfig(t), "docs/windowing.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Windows) != 2 {
		t.Fatalf("%d windows, want the doc's 2", len(cfg.Windows))
	}
	for _, w := range cfg.Windows {
		schema, err := cfg.StreamSchema(w.Stream)
		if err != nil {
			t.Fatal(err)
		}
		spec := w.Spec()
		if err := spec.Validate(&schema); err != nil {
			t.Errorf("window %s: %v", w.Name, err)
		}
	}
}
