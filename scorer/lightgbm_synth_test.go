package scorer

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// lgbWriteModel writes a LightGBM text model the way save_model lays it
// out (header, tree_sizes, trees, "end of trees"), from tree bodies (the
// lines after "Tree=i", without the blank lines).
func lgbWriteModel(objective string, numClass, features int, bodies []string, extraHeader string) []byte {
	var b bytes.Buffer
	ntpi := 1
	if strings.HasPrefix(objective, "multiclass") {
		ntpi = numClass
	}
	fmt.Fprintf(&b, "tree\nversion=v4\nnum_class=%d\nnum_tree_per_iteration=%d\nlabel_index=0\nmax_feature_idx=%d\n", numClass, ntpi, features-1)
	if objective != "" {
		fmt.Fprintf(&b, "objective=%s\n", objective)
	}
	b.WriteString(extraHeader)
	names := make([]string, features)
	infos := make([]string, features)
	for j := range names {
		names[j] = "f" + strconv.Itoa(j)
		infos[j] = "[-10:10]"
	}
	fmt.Fprintf(&b, "feature_names=%s\nfeature_infos=%s\n", strings.Join(names, " "), strings.Join(infos, " "))
	blocks := make([]string, len(bodies))
	sizes := make([]string, len(bodies))
	for i, body := range bodies {
		blocks[i] = "Tree=" + strconv.Itoa(i) + "\n" + body + "\n\n"
		sizes[i] = strconv.Itoa(len(blocks[i]))
	}
	fmt.Fprintf(&b, "tree_sizes=%s\n\n", strings.Join(sizes, " "))
	for _, bl := range blocks {
		b.WriteString(bl)
	}
	b.WriteString("end of trees\n\nfeature_importances:\n\nparameters:\n[boosting: gbdt]\nend of parameters\n\npandas_categorical:null\n")
	return b.Bytes()
}

func lgbJoin[T any](v []T, f func(T) string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = f(x)
	}
	return strings.Join(s, " ")
}

func lgbFmt(v float64) string { return strconv.FormatFloat(v, 'g', 17, 64) }
func lgbItoa[T ~int32 | ~int | ~uint8](v T) string {
	return strconv.Itoa(int(v))
}

// lgbTreeText writes one tree body.
func lgbTreeText(t *lgbRawTree) string {
	var b strings.Builder
	fmt.Fprintf(&b, "num_leaves=%d\nnum_cat=%d\n", t.numLeaves, len(t.catBoundaries)-min(len(t.catBoundaries), 1))
	fmt.Fprintf(&b, "split_feature=%s\n", lgbJoin(t.splitFeature, lgbItoa[int32]))
	fmt.Fprintf(&b, "threshold=%s\n", lgbJoin(t.threshold, lgbFmt))
	fmt.Fprintf(&b, "decision_type=%s\n", lgbJoin(t.decisionType, lgbItoa[uint8]))
	fmt.Fprintf(&b, "left_child=%s\nright_child=%s\n", lgbJoin(t.left, lgbItoa[int32]), lgbJoin(t.right, lgbItoa[int32]))
	fmt.Fprintf(&b, "leaf_value=%s\n", lgbJoin(t.leafValue, lgbFmt))
	if t.internalValue != nil {
		fmt.Fprintf(&b, "internal_value=%s\n", lgbJoin(t.internalValue, lgbFmt))
	}
	if len(t.catBoundaries) > 0 {
		fmt.Fprintf(&b, "cat_boundaries=%s\n", lgbJoin(t.catBoundaries, lgbItoa[int32]))
		fmt.Fprintf(&b, "cat_threshold=%s\n", lgbJoin(t.catThreshold, func(w uint32) string { return strconv.FormatUint(uint64(w), 10) }))
	}
	b.WriteString("is_linear=0\nshrinkage=0.1")
	return b.String()
}

// xgbAsLightGBM writes the trees of an XGBoost JSON model (one output
// group, base margin 0) as a LightGBM text model that predicts the same on
// inputs exactly representable in float32: XGBoost's float32 "x < c" is
// LightGBM's "x <= the largest double below c", missing values go the
// same default way (missing type NaN), and internal values are XGBoost's
// hessian-weighted node means.
func xgbAsLightGBM(t testing.TB, xgbJSON []byte, objective string) []byte {
	t.Helper()
	var doc xgbDoc
	if err := decodeXGBoost(xgbJSON, &doc); err != nil {
		t.Fatal(err)
	}
	l := doc.Learner
	nf, err := strconv.Atoi(l.LearnerModelParam.NumFeature)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for ti := range l.GradientBooster.Model.Trees {
		xt := &l.GradientBooster.Model.Trees[ti]
		// Number splits and leaves breadth first, root first.
		inner, leaf := map[int32]int32{}, map[int32]int32{}
		queue := []int32{0}
		for q := 0; q < len(queue); q++ {
			id := queue[q]
			if xt.LeftChildren[id] == -1 {
				leaf[id] = int32(len(leaf))
				continue
			}
			inner[id] = int32(len(inner))
			queue = append(queue, xt.LeftChildren[id], xt.RightChildren[id])
		}
		rt := lgbRawTree{numLeaves: len(leaf)}
		rt.splitFeature = make([]int32, len(inner))
		rt.threshold = make([]float64, len(inner))
		rt.decisionType = make([]uint8, len(inner))
		rt.left = make([]int32, len(inner))
		rt.right = make([]int32, len(inner))
		rt.internalValue = make([]float64, len(inner))
		rt.leafValue = make([]float64, len(leaf))
		child := func(id int32) int32 {
			if i, ok := inner[id]; ok {
				return i
			}
			return ^leaf[id]
		}
		mean := map[int32]float64{}
		for q := len(queue) - 1; q >= 0; q-- {
			id := queue[q]
			if i, ok := leaf[id]; ok {
				rt.leafValue[i] = float64(xt.SplitConditions[id])
				mean[id] = rt.leafValue[i]
				continue
			}
			i := inner[id]
			lc, rc := xt.LeftChildren[id], xt.RightChildren[id]
			rt.splitFeature[i] = int32(xt.SplitIndices[id])
			rt.threshold[i] = math.Nextafter(float64(xt.SplitConditions[id]), math.Inf(-1))
			rt.decisionType[i] = lgbMissNaN << 2
			if xt.DefaultLeft[id] {
				rt.decisionType[i] |= lgbDefaultLeft
			}
			rt.left[i], rt.right[i] = child(lc), child(rc)
			hl, hr := float64(xt.SumHessian[lc]), float64(xt.SumHessian[rc])
			mean[id] = (mean[lc]*hl + mean[rc]*hr) / float64(xt.SumHessian[id])
			rt.internalValue[i] = mean[id]
		}
		bodies = append(bodies, lgbTreeText(&rt))
	}
	return lgbWriteModel(objective, 1, nf, bodies, "")
}

// lgbLeafwiseModel writes a LightGBM model of random trees grown leaf by
// leaf, as LightGBM grows them: each split takes a random leaf, so trees
// of numLeaves leaves are unbalanced and several levels deeper than
// log2(numLeaves). Splits are numerical with each missing type.
func lgbLeafwiseModel(trees, numLeaves, features int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 11))
	bodies := make([]string, trees)
	for ti := range bodies {
		rt := lgbRawTree{numLeaves: 1, leafValue: []float64{r.NormFloat64() * 0.1}}
		// parent[leaf] = (split node, is right child), -1 for the root leaf.
		type slot struct {
			node  int32
			right bool
		}
		parent := []slot{{-1, false}}
		for rt.numLeaves < numLeaves {
			lf := int32(r.IntN(rt.numLeaves))
			n := int32(len(rt.left))
			if p := parent[lf]; p.node >= 0 {
				if p.right {
					rt.right[p.node] = n
				} else {
					rt.left[p.node] = n
				}
			}
			newLeaf := int32(rt.numLeaves)
			rt.splitFeature = append(rt.splitFeature, int32(r.IntN(features)))
			rt.threshold = append(rt.threshold, math.Round(r.NormFloat64()*64)/64)
			rt.decisionType = append(rt.decisionType, []uint8{0, 2, lgbMissNaN << 2, lgbMissNaN<<2 | lgbDefaultLeft, lgbMissZero << 2, lgbMissZero<<2 | lgbDefaultLeft}[r.IntN(6)])
			rt.left = append(rt.left, ^lf)
			rt.right = append(rt.right, ^newLeaf)
			rt.internalValue = append(rt.internalValue, rt.leafValue[lf])
			parent[lf] = slot{n, false}
			parent = append(parent, slot{n, true})
			rt.leafValue = append(rt.leafValue, rt.leafValue[lf]+r.NormFloat64()*0.05)
			rt.leafValue[lf] -= r.NormFloat64() * 0.05
			rt.numLeaves++
		}
		bodies[ti] = lgbTreeText(&rt)
	}
	return lgbWriteModel("binary sigmoid:1", 1, features, bodies, "")
}

// float32Cols rounds every input to float32, where XGBoost and LightGBM
// models of the same trees agree.
func float32Cols(cols [][]float64) [][]float64 {
	for _, c := range cols {
		for i, v := range c {
			c[i] = float64(float32(v))
		}
	}
	return cols
}

// The same 300 trees of depth 6 scored as an XGBoost model and as the
// LightGBM model that states them: margins agree within XGBoost's float32
// summation, on rows with 5 % missing values, in batches and one row at a
// time, and the path contributions agree too.
func TestLightGBMMatchesXGBoostOnSameTrees(t *testing.T) {
	xj := synthModel(300, 6, 30, 1)
	xm := mustParse(t, xj)
	lm := mustParse(t, xgbAsLightGBM(t, xj, "binary sigmoid:1"))
	if lm.Info().MaxDepth != 6 || lm.Info().Trees != 300 {
		t.Fatalf("info %+v", lm.Info())
	}
	const n = 1027 // two blocks and a remainder of 3 rows
	cols := float32Cols(randomCols(30, n, 0.05, 9))
	xo, lo := alloc(1, n), alloc(1, n)
	var s Scratch
	if err := xm.PredictMargins(cols, n, xo, &s); err != nil {
		t.Fatal(err)
	}
	if err := lm.PredictMargins(cols, n, lo, &s); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if d := math.Abs(xo[0][i] - lo[0][i]); d > 1e-4 {
			t.Fatalf("row %d: xgboost margin %v, lightgbm %v", i, xo[0][i], lo[0][i])
		}
	}
	// Probabilities: the same sigmoid of the same margin.
	if err := lm.Predict(cols, n, xo, &s); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if want := 1 / (1 + math.Exp(-lo[0][i])); xo[0][i] != want {
			t.Fatalf("row %d: probability %v, sigmoid of the margin %v", i, xo[0][i], want)
		}
	}
	x := make([]float64, 30)
	for i := range 20 {
		for j := range x {
			x[j] = cols[j][i]
		}
		xc, err := xm.Contributions(nil, x, 0, &s)
		if err != nil {
			t.Fatal(err)
		}
		lc, err := lm.Contributions(nil, x, 0, &s)
		if err != nil {
			t.Fatal(err)
		}
		for j := range xc {
			// XGBoost sums in float32, across 300 trees of large,
			// cancelling node means (the synthetic hessians are random).
			if math.Abs(xc[j]-lc[j]) > 1e-4*max(1, math.Abs(lc[j])) {
				t.Fatalf("row %d input %d: xgboost contribution %v, lightgbm %v", i, j, xc[j], lc[j])
			}
		}
	}
}

// lgbReference scores one row the way LightGBM's Tree::GetLeaf and
// GBDT::PredictRaw read, literally (double compares, no keys): the
// reference the compiled layouts are checked against.
func lgbReference(t testing.TB, model []byte) func(x []float64) []float64 {
	t.Helper()
	lines := &lgbLines{s: string(model)}
	h, first, err := parseLGBHeader(lines)
	if err != nil {
		t.Fatal(err)
	}
	trees, err := parseLGBTrees(lines, first, h, DefaultModelLimits())
	if err != nil {
		t.Fatal(err)
	}
	return func(x []float64) []float64 { return lgbReferenceRow(trees, h.numTreePerIteration, x) }
}

func lgbReferenceRow(trees []lgbRawTree, ntpi int, x []float64) []float64 {
	out := make([]float64, ntpi)
	for ti := range trees {
		tr := &trees[ti]
		leaf := int32(0)
		for n := int32(0); tr.numLeaves > 1; {
			v := x[tr.splitFeature[n]]
			if math.Abs(v) <= lgbZeroThreshold {
				v = 0
			}
			dt := tr.decisionType[n]
			left := false
			if dt&lgbCategorical != 0 {
				// CategoricalDecision: NaN and negative ints go right;
				// x86 turns an out-of-range double into INT_MIN.
				iv := math.MinInt32
				if !math.IsNaN(v) && v > math.MinInt32-1 && v < math.MaxInt32+1 {
					iv = int(v)
				}
				if iv >= 0 {
					idx := int(tr.threshold[n])
					words := tr.catThreshold[tr.catBoundaries[idx]:tr.catBoundaries[idx+1]]
					left = iv/32 < len(words) && words[iv/32]>>(iv%32)&1 != 0
				}
			} else {
				mt := dt >> 2
				if math.IsNaN(v) && mt != lgbMissNaN {
					v = 0
				}
				if (mt == lgbMissZero && v >= -lgbZeroThreshold && v <= lgbZeroThreshold) || (mt == lgbMissNaN && math.IsNaN(v)) {
					left = dt&lgbDefaultLeft != 0
				} else {
					left = v <= tr.threshold[n]
				}
			}
			if left {
				n = tr.left[n]
			} else {
				n = tr.right[n]
			}
			if n < 0 {
				leaf = ^n
				break
			}
		}
		v := tr.leafValue[leaf]
		if lin := tr.linear; lin != nil {
			// Tree::Predict: the leaf's linear model, unless an input
			// it reads is NaN.
			lv := lin.leafConst[leaf]
			for j, fe := range lin.features[leaf] {
				xv := x[fe]
				if math.IsNaN(xv) {
					lv = v
					break
				}
				if math.Abs(xv) <= lgbZeroThreshold {
					xv = 0
				}
				lv += lin.coeff[leaf][j] * xv
			}
			v = lv
		}
		out[ti%ntpi] += v
	}
	return out
}

// Leaf-wise trees (unbalanced: some stored complete, most too sparse or
// deep for it and stored compact) score as LightGBM's own decision code reads them, in a
// batch and one row at a time, on rows with NaN, zeros, values within
// kZeroThreshold of zero and values exactly at thresholds, on every
// missing type and default direction.
func TestLightGBMLeafwiseMatchesReference(t *testing.T) {
	model := lgbLeafwiseModel(120, 31, 12, 5)
	m := mustParse(t, model)
	f := m.impl.(*lgbForest)
	layouts := map[uint8]int{}
	for _, tr := range f.trees {
		layouts[tr.layout]++
	}
	if layouts[lgbComplete] == 0 || layouts[lgbCompact] == 0 {
		t.Fatalf("trees per layout %v: want complete and compact trees", layouts)
	}
	const n = 517
	cols := randomCols(12, n, 0.1, 4)
	r := rand.New(rand.NewPCG(8, 8))
	for j := range cols {
		for i := range cols[j] {
			switch r.IntN(8) {
			case 0:
				cols[j][i] = 0
			case 1:
				cols[j][i] = math.Copysign(1e-36, r.NormFloat64())
			case 2:
				cols[j][i] = f.thresholds[r.IntN(len(f.thresholds))] // exactly at a split
			}
		}
	}
	out := alloc(1, n)
	var s Scratch
	if err := m.PredictMargins(cols, n, out, &s); err != nil {
		t.Fatal(err)
	}
	ref := lgbReference(t, model)
	x := make([]float64, 12)
	one := alloc(1, 1)
	for i := range n {
		for j := range x {
			x[j] = cols[j][i]
		}
		want := ref(x)[0]
		if out[0][i] != want {
			t.Fatalf("row %d %v: %v in a batch, LightGBM's rules give %v", i, x, out[0][i], want)
		}
		if i%50 == 0 {
			if err := m.PredictMargins(lgbCols([][]float64{x}, 12), 1, one, &s); err != nil {
				t.Fatal(err)
			}
			if one[0][0] != want {
				t.Fatalf("row %d alone: %v, LightGBM's rules give %v", i, one[0][0], want)
			}
		}
	}
}
