package scorer

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzXGBoostBinary: no input makes the legacy binary reader panic or
// allocate for counts the input cannot hold; what it decodes compiles
// without panicking, and a model that compiles predicts and explains
// without panicking.
func FuzzXGBoostBinary(f *testing.F) {
	for _, n := range []string{"fuzz_tiny.model", "fuzz_tiny_dart.model", "fuzz_tiny_gblinear.model"} {
		b, err := os.ReadFile(filepath.Join("testdata", "binary", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[4:]) // without the "binf" header, as XGBoost 1.0-1.2 wrote
	}
	lim := ModelLimits{}.withDefaults()
	f.Fuzz(func(t *testing.T, data []byte) {
		var doc xgbDoc
		if err := readXGBoostBinary(data, &doc, lim); err != nil {
			return
		}
		// What was decoded came from the input: every node takes 36 bytes
		// of it.
		if body := doc.Learner.GradientBooster.Model; body != nil {
			nodes := 0
			for _, tr := range body.Trees {
				nodes += len(tr.LeftChildren)
			}
			if nodes*(binNodeBytes+binNodeStatBytes) > len(data) {
				t.Fatalf("%d nodes from %d bytes", nodes, len(data))
			}
		}
		p, info, err := compileXGBoost(&doc, loadOptions{limits: lim})
		if err != nil {
			return
		}
		m := &Model{info: info, impl: p}
		nf := len(m.Features())
		cols := make([][]float64, nf)
		for j := range cols {
			cols[j] = []float64{math.NaN(), 0, -1e30, 1e30, 0.5}
		}
		out := alloc(max(m.Outputs(), p.marginOutputs()), 5)
		var s Scratch
		if err := m.Predict(cols, 5, out, &s); err != nil {
			t.Fatal(err)
		}
		if err := m.PredictMargins(cols, 5, out, &s); err != nil {
			t.Fatal(err)
		}
		x := make([]float64, nf)
		for k := range m.Outputs() {
			c, err := m.Contributions(nil, x, k, &s)
			if err == nil && len(c) != nf+1 {
				t.Fatalf("%d contributions for %d features", len(c), nf)
			}
		}
	})
}
