package scorer

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// rtree is a tree in XGBoost's own shape, for random models whose margins
// are checked against a plain walk of that shape (refMargins).
type rtree struct {
	left, right []int32
	feat        []int32
	cond        []float32
	defLeft     []bool
}

// walkThresholds are the split conditions of random trees, so that inputs
// can sit exactly on them, and just beside them (the largest finite
// float32s' neighbours are ±Inf).
var walkThresholds = []float32{0, -0.5, 0.25, 1, -3, 1e-30, math.MaxFloat32, -math.MaxFloat32, 7}

// randomTree grows a tree of at most maxDepth levels; below the root a node
// becomes a leaf with probability pLeaf, so trees are unbalanced and the
// complete layout gets pass-through nodes.
func randomTree(r *rand.Rand, maxDepth, features int, pLeaf float64) rtree {
	var t rtree
	var grow func(d int) int32
	grow = func(d int) int32 {
		id := int32(len(t.left))
		t.left = append(t.left, -1)
		t.right = append(t.right, -1)
		t.feat = append(t.feat, 0)
		t.cond = append(t.cond, float32(r.NormFloat64()*0.3))
		t.defLeft = append(t.defLeft, r.IntN(2) == 0)
		if d == maxDepth || (d > 0 && r.Float64() < pLeaf) {
			return id
		}
		t.feat[id] = int32(r.IntN(features))
		t.cond[id] = walkThresholds[r.IntN(len(walkThresholds))]
		l := grow(d + 1)
		rt := grow(d + 1)
		t.left[id], t.right[id] = l, rt
		return id
	}
	grow(0)
	return t
}

// chainTree is a sparse tree of the given depth (one split per level), which
// the branching layout keeps.
func chainTree(r *rand.Rand, depth, features int) rtree {
	var t rtree
	add := func() int32 {
		t.left = append(t.left, -1)
		t.right = append(t.right, -1)
		t.feat = append(t.feat, int32(r.IntN(features)))
		t.cond = append(t.cond, walkThresholds[r.IntN(len(walkThresholds))])
		t.defLeft = append(t.defLeft, r.IntN(2) == 0)
		return int32(len(t.left) - 1)
	}
	id := add()
	for range depth {
		l, rt := add(), add()
		t.left[id], t.right[id] = l, rt
		t.cond[l] = float32(r.NormFloat64())
		id = rt
	}
	t.cond[id] = float32(r.NormFloat64())
	return t
}

// forestJSON writes trees as an XGBoost 1.7 JSON model: one output group
// (reg:squarederror) or groups classes (multi:softprob, tree t in group
// t % groups).
func forestJSON(trees []rtree, groups, features int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"learner":{"attributes":{},"feature_names":[`)
	for j := range features {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d"`, j)
	}
	fmt.Fprintf(&b, `],"feature_types":[],"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"%d","size_leaf_vector":"0"},"tree_info":[`, len(trees))
	for t := range trees {
		if t > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(t % groups))
	}
	b.WriteString(`],"trees":[`)
	list := func(name string, n int, f func(i int) string) {
		fmt.Fprintf(&b, `"%s":[`, name)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f(i))
		}
		b.WriteString(`],`)
	}
	fl := func(v float32) string { return strconv.FormatFloat(float64(v), 'E', -1, 32) }
	for ti, t := range trees {
		if ti > 0 {
			b.WriteByte(',')
		}
		n := len(t.left)
		b.WriteString(`{`)
		list("base_weights", n, func(int) string { return "0" })
		b.WriteString(`"categories":[],"categories_nodes":[],"categories_segments":[],"categories_sizes":[],`)
		list("default_left", n, func(i int) string {
			if t.defLeft[i] {
				return "1"
			}
			return "0"
		})
		fmt.Fprintf(&b, `"id":%d,`, ti)
		list("left_children", n, func(i int) string { return strconv.Itoa(int(t.left[i])) })
		list("loss_changes", n, func(int) string { return "0" })
		list("parents", n, func(int) string { return "0" })
		list("right_children", n, func(i int) string { return strconv.Itoa(int(t.right[i])) })
		list("split_conditions", n, func(i int) string { return fl(t.cond[i]) })
		list("split_indices", n, func(i int) string { return strconv.Itoa(int(t.feat[i])) })
		list("split_type", n, func(int) string { return "0" })
		list("sum_hessian", n, func(int) string { return "1" })
		fmt.Fprintf(&b, `"tree_param":{"num_deleted":"0","num_feature":"%d","num_nodes":"%d","size_leaf_vector":"0"}}`, features, n)
	}
	obj := `{"name":"reg:squarederror","reg_loss_param":{"scale_pos_weight":"1"}}`
	numClass := 0
	if groups > 1 {
		obj = fmt.Sprintf(`{"name":"multi:softprob","softmax_multiclass_param":{"num_class":"%d"}}`, groups)
		numClass = groups
	}
	fmt.Fprintf(&b, `]},"name":"gbtree"},"learner_model_param":{"base_score":"5E-1","boost_from_average":"1","num_class":"%d","num_feature":"%d","num_target":"1"},"objective":%s},"version":[1,7,4]}`, numClass, features, obj)
	return b.Bytes()
}

// refMargins walks XGBoost's own tree shape the way XGBoost 1.7's CPU
// predictor does (float32 x < split_condition goes left, a missing value
// the default way) and sums the leaves in float32, tree by tree in model
// order, from base.
func refMargins(trees []rtree, groups int, base []float32, x []float64) []float32 {
	acc := append([]float32(nil), base...)
	for ti, t := range trees {
		id := int32(0)
		for t.left[id] != -1 {
			v := float32(x[t.feat[id]])
			switch {
			case v != v:
				if t.defLeft[id] {
					id = t.left[id]
				} else {
					id = t.right[id]
				}
			case v < t.cond[id]:
				id = t.left[id]
			default:
				id = t.right[id]
			}
		}
		acc[ti%groups] += t.cond[id]
	}
	return acc
}

// walkInputs returns n rows of features values that land on, just below and
// just above split conditions, in float64 and float32 terms, with ±0, ±Inf
// and missing values (both NaN signs) among them.
func walkInputs(r *rand.Rand, features, n int) [][]float64 {
	cols := make([][]float64, features)
	for j := range cols {
		c := make([]float64, n)
		for i := range c {
			t := walkThresholds[r.IntN(len(walkThresholds))]
			switch r.IntN(10) {
			case 0:
				c[i] = math.NaN()
			case 1:
				c[i] = math.Copysign(math.NaN(), -1)
			case 2:
				c[i] = float64(math.Nextafter32(t, float32(math.Inf(-1))))
			case 3:
				c[i] = float64(math.Nextafter32(t, float32(math.Inf(1))))
			case 4: // above t in float64, equal to it in float32
				c[i] = math.Nextafter(float64(t), math.Inf(1))
			case 5: // below t in float64, equal to it in float32
				c[i] = math.Nextafter(float64(t), math.Inf(-1))
			case 6:
				c[i] = math.Copysign(0, -1)
			case 7:
				c[i] = r.NormFloat64()
			default:
				c[i] = float64(t)
			}
		}
		cols[j] = c
	}
	return cols
}

// checkWalk compares the model's margins for the first n rows of cols,
// predicted as one batch, bit for bit with refMargins.
func checkWalk(t *testing.T, m *Model, trees []rtree, groups int, cols [][]float64, n int) {
	t.Helper()
	f := m.impl.(*forest)
	out := make([][]float64, groups)
	for g := range out {
		out[g] = make([]float64, n)
	}
	var s Scratch
	if err := m.PredictMargins(cols, n, out, &s); err != nil {
		t.Fatal(err)
	}
	x := make([]float64, len(cols))
	for i := range n {
		for j := range x {
			x[j] = cols[j][i]
		}
		want := refMargins(trees, groups, f.base, x)
		for g := range groups {
			if got := out[g][i]; math.Float64bits(got) != math.Float64bits(float64(want[g])) {
				t.Fatalf("%d rows: row %d group %d: margin %v, want %v (bit for bit)", n, i, g, got, want[g])
			}
		}
	}
}

// TestForestWalkMatchesXGBoostWalk checks the batch walk (level by level over
// blocks of rows), the few-rows walk (one row through eight trees at a time)
// and the branching walk of sparse and very deep trees against a plain walk of
// XGBoost's tree shape, bit for bit, for batch sizes on both sides of
// levelRows and of a block, one and three output groups, trees of depth 0 to
// 8 with pass-through nodes, sparse and deep trees, and inputs on, just below
// and just above split conditions, missing, ±0 and ±Inf.
func TestForestWalkMatchesXGBoostWalk(t *testing.T) {
	const features = 9
	for _, groups := range []int{1, 3} {
		r := rand.New(rand.NewPCG(uint64(groups), 17))
		var trees []rtree
		// 40 complete trees first (the few-rows walk takes them eight at a
		// time), then a mix.
		for i := range 64 {
			switch {
			case i >= 40 && i%8 == 1:
				trees = append(trees, chainTree(r, 10, features)) // sparse: branching layout
			case i >= 40 && i%8 == 5:
				trees = append(trees, chainTree(r, maxCompleteDepth+1, features)) // too deep for the complete layout
			case i < 40:
				trees = append(trees, randomTree(r, 3+i%4, features, 0.25))
			default:
				trees = append(trees, randomTree(r, i%9, features, 0.25))
			}
		}
		m := mustParse(t, forestJSON(trees, groups, features))
		f := m.impl.(*forest)
		slow := 0
		for _, ft := range f.trees {
			if ft.slow >= 0 {
				slow++
			}
		}
		// The chain trees, and any random tree deeper than 6 that came
		// out sparse, go to the branching layout; most stay complete.
		if slow < 6 || slow > 12 || f.maxDepth != maxCompleteDepth+1 {
			t.Fatalf("%d trees in the branching layout and max depth %d, want 6-12 and %d", slow, f.maxDepth, maxCompleteDepth+1)
		}
		cols := walkInputs(r, features, 3*blockRows)
		for _, n := range []int{1, 2, levelRows - 1, levelRows, levelRows + 1, 100, blockRows - 1, blockRows, blockRows + 1, 3 * blockRows} {
			checkWalk(t, m, trees, groups, cols, n)
		}
	}
}

// TestForestWalkWideModels checks models with so many features that a block
// holds fewer rows (and, wider still, that rows go one at a time), and that
// the block's keys stay within keyBlockBytes.
func TestForestWalkWideModels(t *testing.T) {
	for _, features := range []int{3000, 5000} {
		r := rand.New(rand.NewPCG(uint64(features), 5))
		trees := make([]rtree, 12)
		for i := range trees {
			trees[i] = randomTree(r, 1+i%7, features, 0.2)
		}
		m := mustParse(t, forestJSON(trees, 1, features))
		rows := 1 << keyShift(features)
		if rows >= blockRows {
			t.Fatalf("%d features: %d rows per block, want fewer than %d", features, rows, blockRows)
		}
		cols := walkInputs(r, features, 40)
		checkWalk(t, m, trees, 1, cols, 40)
		var s Scratch
		out := [][]float64{make([]float64, 40)}
		if err := m.Predict(cols, 40, out, &s); err != nil {
			t.Fatal(err)
		}
		if b := 4 * cap(s.keys); b > keyBlockBytes {
			t.Errorf("%d features: %d bytes of keys, want at most %d", features, b, keyBlockBytes)
		}
	}
}

// TestKeyPair checks keyPair, the branch-free conversion a batch uses,
// against key, for special values and random bit patterns.
func TestKeyPair(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, math.Inf(1), math.Inf(-1), math.NaN(),
		math.Copysign(math.NaN(), -1), math.Float64frombits(0x7ff0000000000001), math.Float64frombits(0xfff0000000000001),
		math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 1e-40, -1e-40, math.MaxFloat32, -math.MaxFloat32,
		math.MaxFloat64, -math.MaxFloat64, 3.4028235677973366e38}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		vals = append(vals, math.Float64frombits(r.Uint64()), float64(math.Float32frombits(r.Uint32())))
	}
	for _, x := range vals {
		hi, lo := keyPair(x)
		want := key(float32(x))
		wantLo := want
		if math.IsNaN(x) {
			wantLo = 0
		}
		if hi != want || lo != wantLo {
			t.Fatalf("keyPair(%v = %#x) = %#x, %#x, want %#x, %#x", x, math.Float64bits(x), hi, lo, want, wantLo)
		}
	}
}

// TestForestPredictAllocatesNothing checks steady-state prediction, batch and
// single row, allocates nothing with a reused Scratch.
func TestForestPredictAllocatesNothing(t *testing.T) {
	m := mustParse(t, synthModel(50, 6, 30, 3))
	cols := randomCols(30, 2*blockRows+3, 0.05, 4)
	out := [][]float64{make([]float64, 2*blockRows+3)}
	var s Scratch
	for _, n := range []int{1, levelRows + 1, 2*blockRows + 3} {
		if err := m.Predict(cols, n, out, &s); err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(20, func() {
			if err := m.Predict(cols, n, out, &s); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%d rows: %.1f allocations per Predict, want 0", n, a)
		}
	}
}
