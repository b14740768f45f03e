// Package configtest holds the table of schema, window and feature rules
// (rules.yaml) that both ways of building a pipeline are tested against:
// the configuration file (config.Parse, what `streamscore config validate`
// runs) and the Go API (config.Window.Spec and config.Schema.Spec, which
// the pipeline builds its windows with, judged by windowing's Validate).
// Each row is a schema and a window written as in the file, and the
// problems both ways must report, by YAML key path and message.
package configtest

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/windowing"
)

//go:embed rules.yaml
var rulesYAML []byte

// DefaultSchema is the schema of a rule that names none: one field of
// every type.
const DefaultSchema = `entity: id
time: ts
fields:
  - {name: f, type: float64}
  - {name: i, type: int64}
  - {name: b, type: bool}
  - {name: t, type: timestamp}
  - {name: s, type: string}
`

// Rule is one row of the table.
type Rule struct {
	Name string `yaml:"name"`
	// Schema is the YAML of schema "all" (DefaultSchema when empty).
	Schema string `yaml:"schema"`
	// Window is the YAML of the one window, over stream s.
	Window string `yaml:"window"`
	// Negative names a duration key of the window that is set to -1s. The
	// file cannot say that (a negative duration is refused while decoding,
	// before windowing sees it); the Go API can, and windowing refuses it.
	Negative string `yaml:"negative"`
	// Errors are the problems, each a one-entry map from the key path in
	// the file to the message; none means accepted.
	Errors []map[string]string `yaml:"errors"`
}

// Problem is one problem: where (the key path in the file) and what.
type Problem struct {
	Path, Msg string
}

func (p Problem) String() string { return p.Path + ": " + p.Msg }

// SameProblems reports whether a and b hold the same problems, in any
// order.
func SameProblems(a, b []Problem) bool {
	key := func(ps []Problem) []string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = p.String()
		}
		slices.Sort(s)
		return s
	}
	return slices.Equal(key(a), key(b))
}

// Rules returns the table.
func Rules() ([]Rule, error) {
	var rs []Rule
	dec := yaml.NewDecoder(bytes.NewReader(rulesYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("configtest: rules.yaml: %w", err)
	}
	return rs, nil
}

// Want returns the problems the rule expects, in table order.
func (r Rule) Want() []Problem {
	var out []Problem
	for _, e := range r.Errors {
		for k, v := range e {
			out = append(out, Problem{Path: k, Msg: v})
		}
	}
	return out
}

// FileWant returns the problems the file reports: Want, except that a
// Negative duration is refused while the file is decoded.
func (r Rule) FileWant() []Problem {
	if r.Negative != "" {
		return []Problem{{Path: "windows[0]." + r.Negative, Msg: `negative duration "-1s"`}}
	}
	return r.Want()
}

// File returns the whole configuration file of the rule: a pipeline with
// stream s of schema all and the rule's window.
func (r Rule) File() []byte {
	var b strings.Builder
	b.WriteString("pipeline: p\nstreams:\n  - name: s\n    schema: all\nschemas:\n  all:\n")
	b.WriteString(indent(r.schema(), "    ", "    "))
	b.WriteString("windows:\n")
	w := r.Window
	if r.Negative != "" {
		w += r.Negative + ": -1s\n"
	}
	b.WriteString(indent(w, "  - ", "    "))
	return []byte(b.String())
}

func (r Rule) schema() string {
	if r.Schema == "" {
		return DefaultSchema
	}
	return r.Schema
}

func indent(s, first, rest string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		if i == 0 {
			lines[i] = first + lines[i]
		} else {
			lines[i] = rest + lines[i]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// Go decodes the rule's schema and window as a Go caller would hold them,
// with the Negative duration set.
func (r Rule) Go() (config.Schema, config.Window, error) {
	var s config.Schema
	var w config.Window
	if err := decodeStrict(r.schema(), &s); err != nil {
		return s, w, fmt.Errorf("configtest: %s: schema: %w", r.Name, err)
	}
	if err := decodeStrict(r.Window, &w); err != nil {
		return s, w, fmt.Errorf("configtest: %s: window: %w", r.Name, err)
	}
	neg := config.Duration(-time.Second)
	switch r.Negative {
	case "":
	case "size":
		w.Size = neg
	case "slide":
		w.Slide = neg
	case "gap":
		w.Gap = neg
	case "out_of_orderness":
		w.OutOfOrderness = neg
	case "idle_timeout":
		w.IdleTimeout = neg
	case "allowed_lateness":
		w.AllowedLateness = neg
	default:
		return s, w, fmt.Errorf("configtest: %s: negative %q is not a duration key", r.Name, r.Negative)
	}
	return s, w, nil
}

func decodeStrict(src string, v any) error {
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// SpecProblems turns windowing's validation error into problems under
// prefix, the spec's key path in the file (windows[0], schemas.all).
func SpecProblems(prefix string, err error) []Problem {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []Problem
	for _, e := range errs {
		var se *windowing.SpecError
		if errors.As(e, &se) {
			out = append(out, Problem{Path: prefix + "." + se.Key, Msg: se.Reason})
		} else {
			out = append(out, Problem{Path: prefix, Msg: e.Error()})
		}
	}
	return out
}
