package scorer

import (
	"testing"
	"time"
)

// lgbBenchModels are the models BenchmarkLightGBM scores. xgboost-300x6
// and lightgbm-300x6 are the same 300 depth-6 trees (synthModel, exported
// by xgbAsLightGBM), through the XGBoost and the LightGBM paths;
// leafwise-300x31 has trees of 31 leaves grown leaf by leaf (depths 6 to
// 13); kddcup99 is a fixture with categorical splits. "-compact" and
// "-branching" score the same model with every tree in that layout, for
// comparison.
func lgbBenchModels(b testing.TB) []struct {
	name string
	m    *Model
} {
	xj := synthModel(300, 6, 30, 1)
	lj := xgbAsLightGBM(b, xj, "binary sigmoid:1")
	leafwise := lgbLeafwiseModel(300, 31, 30, 3)
	return []struct {
		name string
		m    *Model
	}{
		{"xgboost-300x6", mustParse(b, xj)},
		{"lightgbm-300x6", mustParse(b, lj)},
		{"lightgbm-300x6-compact", lgbRelayout(b, lj, lgbCompact)},
		{"lightgbm-300x6-branching", lgbRelayout(b, lj, lgbBranching)},
		{"lightgbm-leafwise-300x31", mustParse(b, leafwise)},
		{"lightgbm-leafwise-300x31-branching", lgbRelayout(b, leafwise, lgbBranching)},
		{"lightgbm-kddcup99-130-categorical", mustParse(b, readLGBModel(b, "leaves/lg_kddcup99.stripped.model.gz"))},
	}
}

// lgbRelayout loads a model with every tree in one layout (compact or
// branching), for comparisons.
func lgbRelayout(t testing.TB, model []byte, layout uint8) *Model {
	m := mustParse(t, model)
	f := m.impl.(*lgbForest)
	for ti := range f.trees {
		switch {
		case layout == lgbBranching:
			f.trees[ti].layout = lgbBranching
		case f.trees[ti].layout != lgbBranching:
			if err := f.addCompact(ti, &f.slow[ti], int(f.trees[ti].depth)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return m
}

// BenchmarkLightGBM scores 4,096-row batches (Model.Predict, 5 % missing
// values, inputs rounded to float32 so both paths see the same values) and
// single rows; it reports rows per second (wall and CPU) and allocations.
func BenchmarkLightGBM(b *testing.B) {
	for _, bm := range lgbBenchModels(b) {
		nf := len(bm.m.Features())
		const n = 4096
		cols := float32Cols(randomCols(nf, n, 0.05, 2))
		out := alloc(bm.m.Outputs(), n)
		var s Scratch
		b.Run(bm.name+"/batch4096", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := bm.m.Predict(cols, n, out, &s); err != nil {
					b.Fatal(err)
				}
			}
			lgbReportRows(b, n, cpuTime()-cpu0)
		})
		b.Run(bm.name+"/row", func(b *testing.B) {
			one := make([][]float64, nf)
			b.ReportAllocs()
			i := 0
			cpu0 := cpuTime()
			for b.Loop() {
				for j := range one {
					one[j] = cols[j][i%n : i%n+1]
				}
				if err := bm.m.Predict(one, 1, out, &s); err != nil {
					b.Fatal(err)
				}
				i++
			}
			lgbReportRows(b, 1, cpuTime()-cpu0)
		})
	}
}

// lgbReportRows reports rows per wall-clock second and per CPU second of
// the process (on a shared machine the second is less disturbed by other
// processes).
func lgbReportRows(b *testing.B, rowsPerOp int, cpu time.Duration) {
	rows := float64(b.N) * float64(rowsPerOp)
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
	if cpu > 0 {
		b.ReportMetric(rows/cpu.Seconds(), "rows/cpu-s")
	}
}

// BenchmarkLightGBMContributions measures one row's contributions.
func BenchmarkLightGBMContributions(b *testing.B) {
	m := mustParse(b, xgbAsLightGBM(b, synthModel(300, 6, 30, 1), "binary sigmoid:1"))
	cols := randomCols(30, 1, 0.05, 2)
	x := make([]float64, 30)
	for j := range x {
		x[j] = cols[j][0]
	}
	var s Scratch
	dst := make([]float64, 31)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = m.Contributions(dst, x, 0, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// Steady-state scoring allocates nothing: batches, single rows and
// contributions, for complete, compact and branching (categorical) trees.
func TestLightGBMNoAllocs(t *testing.T) {
	for _, bm := range lgbBenchModels(t) {
		switch bm.name {
		case "lightgbm-300x6", "lightgbm-leafwise-300x31", "lightgbm-kddcup99-130-categorical":
		default:
			continue
		}
		nf := len(bm.m.Features())
		const n = 1030
		cols := randomCols(nf, n, 0.05, 2)
		out := alloc(bm.m.Outputs(), n)
		var s Scratch
		x := make([]float64, nf)
		dst := make([]float64, nf+1)
		for name, fn := range map[string]func(){
			"batch": func() { _ = bm.m.Predict(cols, n, out, &s) },
			"row":   func() { _ = bm.m.PredictMargins(cols, 1, out, &s) },
			"contributions": func() {
				if _, err := bm.m.Contributions(dst, x, 0, &s); err != nil {
					t.Fatal(err)
				}
			},
		} {
			if a := testing.AllocsPerRun(10, fn); a != 0 {
				t.Errorf("%s %s: %.1f allocations per call, want 0", bm.name, name, a)
			}
		}
	}
}
