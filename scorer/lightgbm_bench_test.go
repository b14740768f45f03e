package scorer

import (
	"math"
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
	kdd := readLGBModel(b, "leaves/lg_kddcup99.stripped.model.gz")
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
		{"lightgbm-kddcup99-130-categorical", mustParse(b, kdd)},
	}
}

// lgbRelayout loads a model with every tree in the branching layout, or
// every complete tree in the compact one, for comparisons.
func lgbRelayout(t testing.TB, model []byte, layout uint8) *Model {
	m := mustParse(t, model)
	f := m.impl.(*lgbForest)
	for ti := range f.trees {
		switch {
		case layout == lgbBranching:
			f.trees[ti].layout = lgbBranching
		case f.trees[ti].layout == lgbComplete:
			if err := f.addCompact(ti, &f.slow[ti], int(f.trees[ti].depth)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for ti := len(f.trees) - 1; ti >= 0; ti-- {
		f.trees[ti].run = 1
		if ti+1 < len(f.trees) && f.trees[ti+1].layout == f.trees[ti].layout && f.trees[ti+1].run < 255 {
			f.trees[ti].run = f.trees[ti+1].run + 1
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

// lgbF64Node is the alternative to rank keys measured by
// BenchmarkLightGBMKeyChoice: the split's threshold kept as a double (16
// bytes a node with its column and default direction) and compared with
// the input itself.
type lgbF64Node struct {
	thr     float64
	col, dl uint32
}

// lgbF64Forest holds a model's complete trees with double thresholds.
type lgbF64Forest struct {
	f     *lgbForest
	nodes [][]lgbF64Node
}

func newLGBF64Forest(t testing.TB, m *Model) *lgbF64Forest {
	f := m.impl.(*lgbForest)
	ff := &lgbF64Forest{f: f}
	for _, tr := range f.trees {
		if tr.layout != lgbComplete {
			t.Fatal("every tree must be complete")
		}
		inner := 1<<tr.depth - 1
		ns := make([]lgbF64Node, inner)
		for p, nd := range f.nodes[tr.node : int(tr.node)+inner] {
			c := nd.col
			col := f.cols[c]
			add := uint32(col.add)
			ns[p] = lgbF64Node{thr: math.Inf(-1), col: c, dl: add}
			if nd.thr != 0 {
				ns[p].thr = f.thresholds[col.lo+nd.thr-1-add]
			}
		}
		ff.nodes = append(ff.nodes, ns)
	}
	return ff
}

// predict sums the raw scores of n rows into out: a value per column per
// row (NaN for missing), then each tree four rows at a time. It scores
// only models whose columns all have the NaN missing type.
func (ff *lgbF64Forest) predict(cols [][]float64, n int, out []float64, vals []float64) {
	f := ff.f
	nc := len(f.cols)
	for c, col := range f.cols {
		for i, x := range cols[col.feature][:n] {
			if math.Abs(x) <= lgbZeroThreshold {
				x = 0
			}
			vals[i*nc+c] = x
		}
	}
	clear(out[:n])
	for ti, tr := range f.trees {
		tn := ff.nodes[ti]
		lv := f.leaf[tr.leaf:]
		inner := uint32(1)<<tr.depth - 1
		for i := 0; i+4 <= n; i += 4 {
			v0, v1, v2, v3 := vals[i*nc:i*nc+nc], vals[(i+1)*nc:(i+1)*nc+nc], vals[(i+2)*nc:(i+2)*nc+nc], vals[(i+3)*nc:(i+3)*nc+nc]
			var p0, p1, p2, p3 uint32
			for d := tr.depth; d > 0; d-- {
				a0, a1, a2, a3 := &tn[p0], &tn[p1], &tn[p2], &tn[p3]
				x0, x1, x2, x3 := v0[a0.col], v1[a1.col], v2[a2.col], v3[a3.col]
				p0 = 2*p0 + 1 + lgbB2U(!(x0 <= a0.thr))&^(lgbB2U(x0 != x0)&a0.dl)
				p1 = 2*p1 + 1 + lgbB2U(!(x1 <= a1.thr))&^(lgbB2U(x1 != x1)&a1.dl)
				p2 = 2*p2 + 1 + lgbB2U(!(x2 <= a2.thr))&^(lgbB2U(x2 != x2)&a2.dl)
				p3 = 2*p3 + 1 + lgbB2U(!(x3 <= a3.thr))&^(lgbB2U(x3 != x3)&a3.dl)
			}
			out[i] += lv[p0-inner]
			out[i+1] += lv[p1-inner]
			out[i+2] += lv[p2-inner]
			out[i+3] += lv[p3-inner]
		}
	}
}

// BenchmarkLightGBMKeyChoice compares the two exact ways of comparing
// doubles on the same 300 depth-6 trees, in 512-row blocks: rank keys (8
// bytes a node, a binary search per input) as the scorer does, and double
// thresholds (16 bytes a node, no search).
func BenchmarkLightGBMKeyChoice(b *testing.B) {
	m := mustParse(b, xgbAsLightGBM(b, synthModel(300, 6, 30, 1), "binary sigmoid:1"))
	ff := newLGBF64Forest(b, m)
	const n = 4096
	cols := float32Cols(randomCols(30, n, 0.05, 2))
	// The double walk gives the same raw scores.
	out := alloc(1, n)
	var s Scratch
	if err := m.PredictMargins(cols, n, out, &s); err != nil {
		b.Fatal(err)
	}
	got := make([]float64, n)
	vals := make([]float64, lgbBlockRows*30)
	view := make([][]float64, 30)
	for start := 0; start < n; start += lgbBlockRows {
		for j := range view {
			view[j] = cols[j][start:]
		}
		ff.predict(view, lgbBlockRows, got[start:], vals)
	}
	for i := range n {
		if got[i] != out[0][i] {
			b.Fatalf("row %d: %v with double thresholds, %v with rank keys", i, got[i], out[0][i])
		}
	}
	b.Run("rank-keys", func(b *testing.B) {
		cpu0 := cpuTime()
		for b.Loop() {
			_ = m.PredictMargins(cols, n, out, &s)
		}
		lgbReportRows(b, n, cpuTime()-cpu0)
	})
	b.Run("double-thresholds", func(b *testing.B) {
		cpu0 := cpuTime()
		for b.Loop() {
			for start := 0; start < n; start += lgbBlockRows {
				for j := range view {
					view[j] = cols[j][start:]
				}
				ff.predict(view, lgbBlockRows, got[start:], vals)
			}
		}
		lgbReportRows(b, n, cpuTime()-cpu0)
	})
}

// BenchmarkLightGBMLoad parses and compiles a 500-tree, 31-leaf leaf-wise
// model with every statistic LightGBM writes but split gains and counts.
func BenchmarkLightGBMLoad(b *testing.B) {
	data := lgbLeafwiseModel(500, 31, 30, 1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseModel(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load")
}
