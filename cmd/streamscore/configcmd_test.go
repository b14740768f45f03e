package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/streamscore/streamscore/config/configtest"
)

// validate runs `streamscore config validate` in process on the files.
func validate(t *testing.T, files ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newConfigCmd()
	var o, e bytes.Buffer
	cmd.SetOut(&o)
	cmd.SetErr(&e)
	cmd.SetArgs(append([]string{"validate"}, files...))
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.Execute()
	return o.String(), e.String(), err
}

// TestConfigValidateRules: `config validate` accepts every row of the rule
// table that documents an aggregate or option, and refuses the others
// with FILE:LINE: KEY: PROBLEM, the key and problem the Go API reports.
func TestConfigValidateRules(t *testing.T) {
	rules, err := configtest.Rules()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, r := range rules {
		f := filepath.Join(dir, "rule.yaml")
		if err := os.WriteFile(f, r.File(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := validate(t, f)
		want := r.FileWant()
		if len(want) == 0 {
			if err != nil || !strings.Contains(out, f+": ok") {
				t.Errorf("row %d %q: refused: %v\n%s", i, r.Name, err, errOut)
			}
			continue
		}
		if err == nil {
			t.Errorf("row %d %q: accepted, want %q", i, r.Name, want)
			continue
		}
		for _, p := range want {
			re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(f) + `:\d+: ` + regexp.QuoteMeta(p.String()) + "$")
			if !re.MatchString(errOut) {
				t.Errorf("row %d %q: stderr %q lacks FILE:LINE: %s", i, r.Name, errOut, p)
			}
		}
	}
}

// TestConfigValidateDocumentedWindows: the schemas and windows
// docs/windowing.md shows pass `config validate`.
func TestConfigValidateDocumentedWindows(t *testing.T) {
	doc, err := os.ReadFile("../../docs/windowing.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Config.*?```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/windowing.md has no ```yaml block under ## Config")
	}
	f := filepath.Join(t.TempDir(), "windowing-doc.yaml")
	src := "pipeline: doc\nstreams:\n  - {name: factory-sensors, schema: sensor}\n  - {name: app-events, schema: app}\n" + string(m[1])
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := validate(t, f); err != nil || !strings.Contains(out, "2 windows") {
		t.Errorf("config validate of docs/windowing.md's config: %v\n%s%s", err, out, errOut)
	}
}
