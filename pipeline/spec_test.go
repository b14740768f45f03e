package pipeline

import (
	"path/filepath"
	"testing"

	"github.com/streamscore/streamscore/config"
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
