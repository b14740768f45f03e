package scorer

import (
	"fmt"
	"math"
	"testing"
)

// lgbFuzzSeeds are small models covering each part of the format: a
// numerical split with every missing type, a categorical split over two
// bitset words, a linear tree, a multi-class model with a single-leaf tree,
// and a random forest.
func lgbFuzzSeeds() [][]byte {
	seeds := [][]byte{
		lgbStump(10, "0.5", "binary sigmoid:1", ""),
		lgbStump(6, "-0.5", "poisson", ""),
		lgbWriteModel("regression", 1, 2, []string{"num_leaves=2\nnum_cat=1\nsplit_feature=0\nthreshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=-1 1\ninternal_value=0\ncat_boundaries=0 2\ncat_threshold=9 256\nis_linear=0\nshrinkage=1"}, ""),
		lgbWriteModel("regression", 1, 2, []string{"num_leaves=2\nnum_cat=0\nsplit_feature=1\nthreshold=0.25\ndecision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=0.5 -0.5\ninternal_value=0\nis_linear=1\nleaf_const=1 2\nnum_features=1 2\nleaf_features=0  0 1  \nleaf_coeff=0.5  -1 2  \nshrinkage=1"}, ""),
		lgbWriteModel("rank_xendcg", 1, 2, []string{"num_leaves=1\nnum_cat=0\nleaf_value=0.25\nis_linear=0\nshrinkage=1"}, "average_output\n"),
	}
	var three []string
	for k := range 3 {
		three = append(three, fmt.Sprintf("num_leaves=3\nnum_cat=0\nsplit_feature=0 1\nthreshold=0 %d\ndecision_type=8 0\nleft_child=1 -1\nright_child=-3 -2\nleaf_value=1 2 %d\ninternal_value=0 1\nis_linear=0\nshrinkage=1", k, k))
	}
	return append(seeds, lgbWriteModel("multiclass num_class:3", 3, 2, three, ""))
}

// FuzzLightGBM: no input makes the LightGBM reader panic; a model that
// loads scores every row exactly as a literal transcription of LightGBM's
// decision code does (in a batch and one row at a time), its contributions
// add up to its raw scores, and under tight limits nothing over them
// loads.
func FuzzLightGBM(f *testing.F) {
	for _, s := range lgbFuzzSeeds() {
		f.Add(s)
	}
	rows := [][]float64{
		{math.NaN(), 0}, {0, math.NaN()}, {-0.5, 0.5}, {1e-36, -1e-36}, {40, 3.7},
		{-1, 1e30}, {0.25, 0.5}, {math.Inf(1), math.Inf(-1)}, {1, 2},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseModel(data, WithLimits(ModelLimits{MaxTrees: 4, MaxNodes: 64, MaxDepth: 6, MaxHeapBytes: 1 << 14})); err == nil {
			lines := &lgbLines{s: string(data)}
			if h, first, err := parseLGBHeader(lines); err == nil {
				if trees, err := parseLGBTrees(lines, first, h, DefaultModelLimits()); err == nil {
					nodes := 0
					for i := range trees {
						nodes += 2*trees[i].numLeaves - 1
						if trees[i].depth > 6 {
							t.Fatalf("tree %d of depth %d loaded under max_depth 6", i, trees[i].depth)
						}
					}
					if len(trees) > 4 || nodes > 64 {
						t.Fatalf("%d trees, %d nodes loaded under limits of 4 and 64", len(trees), nodes)
					}
				}
			}
		}
		m, err := ParseModel(data)
		if err != nil {
			return
		}
		lgb, ok := m.impl.(*lgbForest)
		if !ok {
			return
		}
		nf := len(m.Features())
		ng := lgb.numGroup
		n := len(rows)
		cols := make([][]float64, nf)
		for j := range cols {
			cols[j] = make([]float64, n)
			for i := range n {
				cols[j][i] = rows[i][j%2]
			}
		}
		raw := alloc(ng, n)
		var s Scratch
		if err := m.PredictMargins(cols, n, raw, &s); err != nil {
			t.Fatal(err)
		}
		if err := m.Predict(cols, n, alloc(ng, n), &s); err != nil {
			t.Fatal(err)
		}
		ref := lgbReference(t, data)
		x := make([]float64, nf)
		one := alloc(ng, 1)
		view := make([][]float64, nf)
		for i := range n {
			for j := range x {
				x[j] = cols[j][i]
				view[j] = cols[j][i : i+1]
			}
			want := ref(x)
			if err := m.PredictMargins(view, 1, one, &s); err != nil {
				t.Fatal(err)
			}
			for k := range ng {
				w := want[k]
				if lgb.avgDiv != 0 {
					w /= lgb.avgDiv
				}
				if !lgbSame(raw[k][i], w) || !lgbSame(one[k][0], w) {
					t.Fatalf("row %v output %d: %v in a batch, %v alone, LightGBM's rules give %v", x, k, raw[k][i], one[k][0], w)
				}
				c, err := m.Contributions(nil, x, k, &s)
				if err != nil {
					continue
				}
				sum, mag := 0.0, 0.0
				for _, v := range c {
					sum += v
					mag += math.Abs(v)
				}
				if math.Abs(sum-raw[k][i]) > 1e-9*max(1, mag) && !math.IsInf(mag, 0) && !math.IsNaN(mag) {
					t.Fatalf("row %v output %d: contributions add up to %v, raw score %v", x, k, sum, raw[k][i])
				}
			}
		}
	})
}

// lgbSame: equal, or both NaN (sums of huge leaves overflow alike).
func lgbSame(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
