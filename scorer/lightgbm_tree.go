package scorer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Reading and validating one tree block of a LightGBM text model
// (LightGBM's Tree::Tree(const char*)).

// lgbRawTree is one tree as the file states it, validated.
type lgbRawTree struct {
	numLeaves    int
	splitFeature []int32
	threshold    []float64
	decisionType []uint8
	left, right  []int32 // >= 0: internal node; < 0: ^leaf
	leafValue    []float64
	// internalValue is each split node's output as a leaf (for
	// contributions); nil when the file has none.
	internalValue []float64
	catBoundaries []int32
	catThreshold  []uint32
	depth         int
	linear        *lgbLinearLeaves
}

// lgbLinearLeaves are a linear_tree model's leaf models: leaf i outputs
// leafConst[i] + sum(coeff*x) over its features, or its leaf_value when one
// of them is NaN.
type lgbLinearLeaves struct {
	leafConst []float64
	features  [][]int32
	coeff     [][]float64
}

// lgbFields splits a space-separated array, refusing one whose length is
// not want.
func lgbFields(kv map[string]string, key string, want int) ([]string, error) {
	v, ok := kv[key]
	if !ok {
		return nil, fmt.Errorf("%s is missing", key)
	}
	if want == 0 {
		if strings.TrimSpace(v) != "" {
			return nil, fmt.Errorf("%s has entries, want none", key)
		}
		return nil, nil
	}
	// Count before splitting, so a huge line costs no huge slice.
	if n := strings.Count(strings.TrimRight(v, " "), " ") + 1; n != want {
		return nil, fmt.Errorf("%s has %d entries, want %d", key, n, want)
	}
	return strings.Split(strings.TrimRight(v, " "), " "), nil
}

func lgbFloats(kv map[string]string, key string, want int) ([]float64, error) {
	fs, err := lgbFields(kv, key, want)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(fs))
	for i, s := range fs {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil && !isRangeErr(err) {
			return nil, fmt.Errorf("%s[%d] is %q, not a number", key, i, lgbClip(s))
		}
		out[i] = v
	}
	return out, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func lgbInts(kv map[string]string, key string, want int, lo, hi int64) ([]int64, error) {
	fs, err := lgbFields(kv, key, want)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(fs))
	for i, s := range fs {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < lo || v > hi {
			return nil, fmt.Errorf("%s[%d] is %q, want an integer in [%d,%d]", key, i, lgbClip(s), lo, hi)
		}
		out[i] = v
	}
	return out, nil
}

// parseLGBTree validates one tree block: array lengths, children forming a
// tree rooted at node 0, features in range, decision types, thresholds,
// category sets. nodeBudget is how many nodes the limits still allow.
func parseLGBTree(kv map[string]string, numFeature, nodeBudget, maxDepth int) (lgbRawTree, error) {
	var t lgbRawTree
	nl, ok := kv["num_leaves"]
	if !ok {
		return t, fmt.Errorf("num_leaves is missing")
	}
	n, err := strconv.Atoi(nl)
	if err != nil || n < 1 {
		return t, fmt.Errorf("num_leaves is %q, want a positive integer", lgbClip(nl))
	}
	if 2*n-1 > nodeBudget || n > nodeBudget {
		return t, limitError("the number of nodes", int64(2*n-1), "max_nodes (what is left of it)", int64(max(nodeBudget, 0)))
	}
	t.numLeaves = n
	nc, ok := kv["num_cat"]
	if !ok {
		return t, fmt.Errorf("num_cat is missing")
	}
	numCat, err := strconv.Atoi(nc)
	if err != nil || numCat < 0 || numCat > n-1 {
		return t, fmt.Errorf("num_cat is %q, want an integer in [0,%d]", lgbClip(nc), n-1)
	}
	if t.leafValue, err = lgbFloats(kv, "leaf_value", n); err != nil {
		return t, err
	}
	for i, v := range t.leafValue {
		if !finite(v) {
			return t, fmt.Errorf("leaf_value[%d] is %v", i, v)
		}
	}
	if il, ok := kv["is_linear"]; ok && il != "0" {
		if il != "1" {
			return t, fmt.Errorf("is_linear is %q, want 0 or 1", lgbClip(il))
		}
		if t.linear, err = parseLGBLinear(kv, n, numFeature); err != nil {
			return t, err
		}
	}
	if n == 1 {
		return t, nil
	}
	m := n - 1
	if t.threshold, err = lgbFloats(kv, "threshold", m); err != nil {
		return t, err
	}
	sf, err := lgbInts(kv, "split_feature", m, 0, int64(numFeature-1))
	if err != nil {
		return t, err
	}
	l, err := lgbInts(kv, "left_child", m, -int64(n), int64(m-1))
	if err != nil {
		return t, err
	}
	r, err := lgbInts(kv, "right_child", m, -int64(n), int64(m-1))
	if err != nil {
		return t, err
	}
	var dt []int64
	if _, ok := kv["decision_type"]; ok {
		if dt, err = lgbInts(kv, "decision_type", m, 0, 15); err != nil {
			return t, err
		}
	} else {
		dt = make([]int64, m) // LightGBM's default: numerical, missing None
	}
	if _, ok := kv["internal_value"]; ok {
		if t.internalValue, err = lgbFloats(kv, "internal_value", m); err != nil {
			return t, err
		}
	}
	if numCat > 0 {
		cb, err := lgbInts(kv, "cat_boundaries", numCat+1, 0, math.MaxInt32)
		if err != nil {
			return t, err
		}
		if cb[0] != 0 {
			return t, fmt.Errorf("cat_boundaries[0] is %d, want 0", cb[0])
		}
		t.catBoundaries = make([]int32, len(cb))
		for i, v := range cb {
			if i > 0 && v < cb[i-1] {
				return t, fmt.Errorf("cat_boundaries[%d] is %d, below cat_boundaries[%d] %d", i, v, i-1, cb[i-1])
			}
			t.catBoundaries[i] = int32(v)
		}
		words, err := lgbInts(kv, "cat_threshold", int(cb[numCat]), 0, math.MaxUint32)
		if err != nil {
			return t, err
		}
		t.catThreshold = make([]uint32, len(words))
		for i, w := range words {
			t.catThreshold[i] = uint32(w)
		}
	}
	t.splitFeature = make([]int32, m)
	t.decisionType = make([]uint8, m)
	t.left = make([]int32, m)
	t.right = make([]int32, m)
	for i := range m {
		t.splitFeature[i] = int32(sf[i])
		t.left[i], t.right[i] = int32(l[i]), int32(r[i])
		d := uint8(dt[i])
		t.decisionType[i] = d
		if d&lgbCategorical != 0 {
			th := t.threshold[i]
			if th != math.Trunc(th) || th < 0 || th >= float64(numCat) {
				return t, fmt.Errorf("node %d: categorical threshold %v is not a category set index in [0,%d)", i, th, numCat)
			}
		} else {
			if math.IsNaN(t.threshold[i]) {
				return t, fmt.Errorf("node %d: threshold is NaN", i)
			}
			if mt := d >> 2; mt > lgbMissNaN {
				return t, fmt.Errorf("node %d: decision_type %d has missing type %d (want 0 None, 1 Zero or 2 NaN)", i, d, mt)
			}
		}
	}
	if err := t.checkShape(maxDepth); err != nil {
		return t, err
	}
	return t, nil
}

// checkShape checks that the children form a tree rooted at node 0 reaching
// every node and leaf exactly once, and finds its depth.
func (t *lgbRawTree) checkShape(maxDepth int) error {
	m := t.numLeaves - 1
	depth := make([]int32, m)
	seenNode := make([]bool, m)
	seenLeaf := make([]bool, t.numLeaves)
	seenNode[0] = true
	order := make([]int32, 1, m)
	for q := 0; q < len(order); q++ {
		id := order[q]
		for _, c := range [2]int32{t.left[id], t.right[id]} {
			d := int(depth[id]) + 1
			if d > maxDepth {
				return limitError("its depth", int64(d), "max_depth", int64(maxDepth))
			}
			t.depth = max(t.depth, d)
			if c < 0 {
				if seenLeaf[^c] {
					return fmt.Errorf("node %d: leaf %d is reachable twice", id, ^c)
				}
				seenLeaf[^c] = true
				continue
			}
			if c == 0 || seenNode[c] {
				return fmt.Errorf("node %d: child %d is reachable twice", id, c)
			}
			seenNode[c] = true
			depth[c] = int32(d)
			order = append(order, c)
		}
	}
	if len(order) != m {
		return fmt.Errorf("%d of %d split nodes are unreachable from node 0", m-len(order), m)
	}
	for i, s := range seenLeaf {
		if !s {
			return fmt.Errorf("leaf %d is unreachable from node 0", i)
		}
	}
	return nil
}

// parseLGBLinear reads a linear tree's leaf models.
func parseLGBLinear(kv map[string]string, n, numFeature int) (*lgbLinearLeaves, error) {
	lin := &lgbLinearLeaves{}
	var err error
	if lin.leafConst, err = lgbFloats(kv, "leaf_const", n); err != nil {
		return nil, err
	}
	counts, err := lgbInts(kv, "num_features", n, 0, int64(numFeature))
	if err != nil {
		return nil, err
	}
	total := 0
	for _, c := range counts {
		total += int(c)
	}
	// LightGBM writes each leaf's list followed by a space, and a space
	// for every leaf: empty fields separate nothing.
	feats := strings.Fields(kv["leaf_features"])
	coeffs := strings.Fields(kv["leaf_coeff"])
	if len(feats) != total || len(coeffs) != total {
		return nil, fmt.Errorf("leaf_features and leaf_coeff have %d and %d entries, num_features adds up to %d", len(feats), len(coeffs), total)
	}
	lin.features = make([][]int32, n)
	lin.coeff = make([][]float64, n)
	k := 0
	for i, c := range counts {
		if !finite(lin.leafConst[i]) {
			return nil, fmt.Errorf("leaf_const[%d] is %v", i, lin.leafConst[i])
		}
		for range c {
			f, err := strconv.Atoi(feats[k])
			if err != nil || f < 0 || f >= numFeature {
				return nil, fmt.Errorf("leaf_features entry %d is %q, want a feature index in [0,%d)", k, lgbClip(feats[k]), numFeature)
			}
			v, err := strconv.ParseFloat(coeffs[k], 64)
			if err != nil || !finite(v) {
				return nil, fmt.Errorf("leaf_coeff entry %d is %q, want a finite number", k, lgbClip(coeffs[k]))
			}
			lin.features[i] = append(lin.features[i], int32(f))
			lin.coeff[i] = append(lin.coeff[i], v)
			k++
		}
	}
	return lin, nil
}
