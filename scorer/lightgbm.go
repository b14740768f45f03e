package scorer

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// LightGBM text models (model.txt, what Booster.save_model writes).
//
// The file is a header of key=value lines ("tree", version, num_class,
// num_tree_per_iteration, max_feature_idx, objective, average_output,
// feature_names, feature_infos, tree_sizes), then one block per tree
// ("Tree=i" and key=value lines up to a blank line), then "end of trees",
// the feature importances and the training parameters. The semantics
// followed are LightGBM's own (src/io/tree.cpp, include/LightGBM/tree.h,
// src/boosting/gbdt_model_text.cpp, src/objective/*):
//
//   - A numerical split sends x left when x <= threshold, compared in
//     double. Its decision_type holds the missing type in bits 2-3 (None,
//     Zero, NaN) and "missing goes left" in bit 1: with None, NaN is read
//     as 0; with Zero, NaN and zero (|x| <= kZeroThreshold) take the
//     default direction; with NaN, NaN does.
//   - A categorical split (bit 0) sends x left when the integer part of x
//     is in the node's bitset (cat_boundaries/cat_threshold); NaN, negative
//     values (after truncation toward zero, so -0.5 is category 0) and
//     values beyond int32 go right.
//   - Inputs with |x| <= kZeroThreshold are read as 0, as LightGBM's
//     prediction API does before any tree sees them.
//   - A row's raw score per class is the sum of its trees' leaf values in
//     double, tree by tree in file order; average_output (random forests)
//     divides it by the number of iterations; the objective then converts
//     it (sigmoid, softmax, exp...).

// isLightGBMText recognises a LightGBM text model (model.txt, as
// save_model writes it): it starts with the line "tree".
func isLightGBMText(b []byte) bool {
	return bytes.HasPrefix(b, []byte("tree\n")) || bytes.HasPrefix(b, []byte("tree\r\n"))
}

// lgbZeroThreshold is LightGBM's kZeroThreshold (1e-35f, a float widened to
// double): inputs no larger in magnitude are zero to LightGBM.
var lgbZeroThreshold = float64(float32(1e-35))

// decision_type bits (LightGBM's kCategoricalMask, kDefaultLeftMask and
// MissingType in bits 2-3).
const (
	lgbCategorical = 1
	lgbDefaultLeft = 2
	lgbMissNone    = 0
	lgbMissZero    = 1
	lgbMissNaN     = 2
)

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

type lgbHeader struct {
	version              string
	numClass             int
	numTreePerIteration  int
	maxFeatureIdx        int
	objective            string
	hasObjective         bool
	averageOutput        bool
	featureNames         []string
	treeSizes            []int64
	hasTreeSizes         bool
	linearTreeParameter  bool
	numFeatureInfos      int
	hasFeatureInfos      bool
	hasLabelIndex        bool
	hasMaxFeatureIdx     bool
	hasNumClass          bool
	hasNumTreePerIterKey bool
}

// lgbLines walks the file line by line, keeping each line's byte offset.
type lgbLines struct {
	s   string
	pos int
	no  int // 1-based number of the line last returned
}

// next returns the next line without its line ending, its length in the
// file with the ending (less the carriage return of a CRLF ending, as
// LightGBM's tree_sizes count), and false at the end.
func (l *lgbLines) next() (line string, size int, ok bool) {
	if l.pos >= len(l.s) {
		return "", 0, false
	}
	rest := l.s[l.pos:]
	i := strings.IndexByte(rest, '\n')
	if i < 0 {
		i = len(rest)
		l.pos += i
	} else {
		l.pos += i + 1
		size = 1
	}
	line = strings.TrimSuffix(rest[:i], "\r")
	l.no++
	return line, size + len(line), true
}

// parseLightGBM parses a LightGBM text model and compiles it for scoring.
func parseLightGBM(data []byte, o loadOptions) (predictor, ModelInfo, error) {
	var info ModelInfo
	lines := &lgbLines{s: string(data)}
	h, first, err := parseLGBHeader(lines)
	if err != nil {
		return nil, info, err
	}
	trees, err := parseLGBTrees(lines, first, h, o.limits)
	if err != nil {
		return nil, info, err
	}
	// What follows the trees: only the training parameters matter (a
	// linear_tree model says so there too).
	for {
		line, _, ok := lines.next()
		if !ok {
			break
		}
		if strings.HasPrefix(line, "[linear_tree: ") && strings.TrimSpace(strings.TrimPrefix(line, "[linear_tree: ")) == "1]" {
			h.linearTreeParameter = true
		}
	}
	if h.linearTreeParameter {
		for i := range trees {
			if trees[i].linear == nil && trees[i].numLeaves > 1 {
				return nil, info, fmt.Errorf("tree %d: the parameters say linear_tree but the tree has no is_linear=1", i)
			}
		}
	}
	obj, err := parseLGBObjective(h)
	if err != nil {
		return nil, info, err
	}
	f, err := compileLightGBM(h, trees, obj, o.limits)
	if err != nil {
		return nil, info, err
	}
	info.Kind = "lightgbm"
	info.Objective = h.objective
	if !h.hasObjective {
		info.Objective = "custom"
	}
	info.Features = h.featureNames
	info.Outputs = h.numTreePerIteration
	info.Trees = len(trees)
	info.TotalTrees = len(trees)
	info.MaxDepth = f.maxDepth
	info.BestIteration = -1
	info.FormatVersion = h.version
	return f, info, nil
}

// parseLGBHeader reads the header up to the first "Tree=" line, which it
// returns (empty when the file has no tree).
func parseLGBHeader(lines *lgbLines) (lgbHeader, string, error) {
	var h lgbHeader
	line, _, _ := lines.next()
	if line != "tree" {
		return h, "", fmt.Errorf("line 1: want \"tree\", got %q", lgbClip(line))
	}
	seen := map[string]bool{}
	var first string
	for {
		line, _, ok := lines.next()
		if !ok {
			break
		}
		if strings.HasPrefix(line, "Tree=") {
			first = line
			break
		}
		if line == "" {
			continue
		}
		key, val, hasVal := strings.Cut(line, "=")
		if seen[key] {
			return h, "", fmt.Errorf("line %d: header key %s appears twice", lines.no, lgbClip(key))
		}
		seen[key] = true
		if !hasVal {
			if key == "average_output" {
				h.averageOutput = true
				continue
			}
			if key == "end of trees" {
				break
			}
			return h, "", fmt.Errorf("line %d: header line %q is not key=value", lines.no, lgbClip(line))
		}
		var err error
		switch key {
		case "version":
			h.version = val
		case "num_class":
			h.hasNumClass = true
			h.numClass, err = lgbCount(key, val, 1, 1<<16)
		case "num_tree_per_iteration":
			h.hasNumTreePerIterKey = true
			h.numTreePerIteration, err = lgbCount(key, val, 1, 1<<16)
		case "label_index":
			h.hasLabelIndex = true
		case "max_feature_idx":
			h.hasMaxFeatureIdx = true
			h.maxFeatureIdx, err = lgbCount(key, val, 0, maxFeatures-1)
		case "objective":
			h.objective, h.hasObjective = val, true
		case "feature_names":
			h.featureNames = strings.Split(val, " ")
		case "feature_infos":
			h.hasFeatureInfos = true
			h.numFeatureInfos = strings.Count(val, " ") + 1
		case "tree_sizes":
			h.hasTreeSizes = true
			if val != "" {
				for _, f := range strings.Split(val, " ") {
					v, perr := strconv.ParseInt(f, 10, 64)
					if perr != nil || v <= 0 {
						return h, "", fmt.Errorf("line %d: tree_sizes entry %q is not a positive integer", lines.no, lgbClip(f))
					}
					h.treeSizes = append(h.treeSizes, v)
				}
			}
		}
		if err != nil {
			return h, "", fmt.Errorf("line %d: %w", lines.no, err)
		}
	}
	// The keys LightGBM refuses a model without.
	for _, k := range []struct {
		ok   bool
		name string
	}{{h.hasNumClass, "num_class"}, {h.hasLabelIndex, "label_index"}, {h.hasMaxFeatureIdx, "max_feature_idx"},
		{h.featureNames != nil, "feature_names"}, {h.hasFeatureInfos, "feature_infos"}} {
		if !k.ok {
			return h, "", fmt.Errorf("the header has no %s", k.name)
		}
	}
	if !h.hasNumTreePerIterKey {
		h.numTreePerIteration = h.numClass
	}
	nf := h.maxFeatureIdx + 1
	if len(h.featureNames) != nf {
		return h, "", fmt.Errorf("feature_names has %d names but max_feature_idx is %d", len(h.featureNames), h.maxFeatureIdx)
	}
	if h.numFeatureInfos != nf {
		return h, "", fmt.Errorf("feature_infos has %d entries but max_feature_idx is %d", h.numFeatureInfos, h.maxFeatureIdx)
	}
	seenName := make(map[string]int, nf)
	for i, n := range h.featureNames {
		if n == "" {
			return h, "", fmt.Errorf("feature_names: name %d is empty", i)
		}
		if j, dup := seenName[n]; dup {
			return h, "", fmt.Errorf("feature_names: %q appears at %d and %d", lgbClip(n), j, i)
		}
		seenName[n] = i
		// The names outlive the file's text.
		h.featureNames[i] = strings.Clone(n)
	}
	h.version = strings.Clone(h.version)
	h.objective = strings.Clone(h.objective)
	return h, first, nil
}

// parseLGBTrees reads the tree blocks, the first of which starts with the
// line first.
func parseLGBTrees(lines *lgbLines, first string, h lgbHeader, lim ModelLimits) ([]lgbRawTree, error) {
	var trees []lgbRawTree
	nodes := 0
	header := first
	headerSize := len(first) + 1 // the line LightGBM's tree_sizes count, with its newline
	for header != "" {
		i := len(trees)
		if header != "Tree="+strconv.Itoa(i) {
			return nil, fmt.Errorf("line %d: want \"Tree=%d\", got %q", lines.no, i, lgbClip(header))
		}
		if i >= lim.MaxTrees {
			return nil, limitError("the number of trees", int64(i+1), "max_trees", int64(lim.MaxTrees))
		}
		kv, size, err := readLGBBlock(lines)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
		size += headerSize
		t, err := parseLGBTree(kv, h.maxFeatureIdx+1, lim.MaxNodes-nodes, lim.MaxDepth)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
		nodes += 2*t.numLeaves - 1
		trees = append(trees, t)
		// A tree's size in tree_sizes runs to the next "Tree=" or "end of
		// trees" line, blank lines included.
		header = ""
		for {
			line, sz, ok := lines.next()
			if !ok || line == "end of trees" {
				break
			}
			if line == "" {
				size += sz
				continue
			}
			if !strings.HasPrefix(line, "Tree=") {
				return nil, fmt.Errorf("line %d: want \"Tree=%d\" or \"end of trees\", got %q", lines.no, i+1, lgbClip(line))
			}
			header, headerSize = line, sz
			break
		}
		if h.hasTreeSizes && i < len(h.treeSizes) && h.treeSizes[i] != int64(size) {
			return nil, fmt.Errorf("tree %d: tree_sizes says %d bytes, the tree has %d", i, h.treeSizes[i], size)
		}
	}
	if len(trees) == 0 {
		return nil, fmt.Errorf("the file has no trees")
	}
	if h.hasTreeSizes && len(h.treeSizes) != len(trees) {
		return nil, fmt.Errorf("tree_sizes lists %d trees, the file has %d", len(h.treeSizes), len(trees))
	}
	if len(trees)%h.numTreePerIteration != 0 {
		return nil, fmt.Errorf("%d trees is not a whole number of iterations of num_tree_per_iteration %d", len(trees), h.numTreePerIteration)
	}
	return trees, nil
}

// readLGBBlock reads a tree's key=value lines up to a blank line (or the
// end), returning them and their size in bytes with the blank line.
func readLGBBlock(lines *lgbLines) (map[string]string, int, error) {
	kv := make(map[string]string, 20)
	size := 0
	for {
		line, sz, ok := lines.next()
		if !ok {
			return kv, size, nil
		}
		size += sz
		if line == "" {
			return kv, size, nil
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, 0, fmt.Errorf("line %d: %q is not key=value", lines.no, lgbClip(line))
		}
		if _, dup := kv[key]; dup {
			return nil, 0, fmt.Errorf("line %d: key %s appears twice", lines.no, lgbClip(key))
		}
		if len(kv) >= 64 {
			return nil, 0, fmt.Errorf("line %d: more than 64 keys in one tree", lines.no)
		}
		kv[key] = val
	}
}

// lgbClip shortens text quoted in an error.
func lgbClip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func lgbCount(key, val string, lo, hi int) (int, error) {
	v, err := strconv.Atoi(val)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s is %q, want an integer in [%d,%d]", key, lgbClip(val), lo, hi)
	}
	return v, nil
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
