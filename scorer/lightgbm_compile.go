package scorer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// How a LightGBM model is laid out for scoring.
//
// Every split compares one input, so each input a split reads is turned
// once per row into a 32-bit key, and every split becomes one unsigned
// compare of a key against a per-node constant, exactly reproducing
// LightGBM's double "x <= threshold" and its missing-value rules:
//
//   - A key column is an (input, how missing values are read) pair: None
//     (NaN reads as 0), Zero (NaN and zero are missing), NaN (NaN is
//     missing), or categorical. Most inputs have one column.
//   - A numerical column's key is the rank of x among the distinct
//     thresholds the model's splits on that column use (how many are
//     below x), found by a branch-free binary search. x <= T[j] exactly
//     when rank(x) <= j, so the compare is exact for every double. A
//     missing value's key is the largest uint32. Splits whose missing
//     values go left read a second column of the same input whose keys
//     are one more (the missing key wraps to 0, the threshold shifts by
//     one), derived from the first when both are used, so every split is
//     one compare with no add, as in the XGBoost layout.
//   - A categorical column's key is LightGBM's integer category, or the
//     largest uint32 for NaN, negatives and values beyond int32, which no
//     bitset holds.
//
// Each tree is then laid out in one of three ways, the first two walked
// without a data-dependent branch:
//
//   - Complete, in heap order (children of i at 2i+1 and 2i+2, 8 bytes a
//     node, a leaf above the tree's depth filling every leaf slot below
//     it), as the XGBoost layout: trees without categorical splits or
//     linear leaves at most lgbMaxCompleteDepth deep and not too sparse.
//     Every row takes exactly depth steps.
//   - Compact, for the other numerical trees: LightGBM grows trees leaf by
//     leaf, so a 31-leaf tree is typically 9 to 30 levels deep and far too
//     thin to store complete. Nodes (12 bytes) are numbered breadth first
//     with each node's two children adjacent, so a step is
//     kids + (key + add >= thr); a leaf is a node that steps to itself.
//     Rows stop when every row walked together is at a leaf.
//   - Branching: LightGBM's own shape (children indices, 20 bytes a node)
//     walked by an if per level, for trees with categorical splits or
//     linear leaves. Every tree keeps this form too, with its internal
//     values, for contributions.
//
// Rows are walked in blocks of lgbBlockRows with column-major keys: a
// complete tree level by level (every row of the block one level down per
// pass, so the loads of many rows overlap), a compact tree four rows at a
// time; the last rows of a block, and single rows, go one row at a time
// through eight complete or four compact trees at a time. Raw scores
// are summed in float64 into the output columns, tree by tree in model
// order, as LightGBM sums them, so they match LightGBM's to the bit.

const (
	lgbBlockRows = 512
	// lgbKeyStride is the distance between a block's key columns. Not a
	// power of two: with 512, the keys of one row fell into two L1 sets
	// and every walk that reads one row's keys (single rows, branching
	// trees) ran up to three times slower.
	lgbKeyStride        = lgbBlockRows + 16
	lgbMaxCompleteDepth = 12
	// A tree deeper than lgbAlwaysComplete is stored complete only when its
	// complete form has at most lgbSparseRatio slots per real node, so a
	// small file of deep, thin trees cannot become a large heap.
	lgbAlwaysComplete = 6
	lgbSparseRatio    = 8
	lgbMissing        = math.MaxUint32
)

// Key column modes.
const (
	lgbColNone uint8 = iota // NaN reads as 0
	lgbColZero              // NaN and zero are missing
	lgbColNaN               // NaN is missing
	lgbColCat               // a category
)

// Compiled sizes in bytes, counted against ModelLimits.MaxHeapBytes.
const (
	lgbSlowNodeBytes = 20 + 8 + 4 // node, internal value, feature
	lgbLeafBytes     = 8
	lgbTreeBytes     = 128 // a tree's headers in both forms
)

type lgbColumn struct {
	feature uint32
	mode    uint8
	lo, hi  uint32 // the column's sorted thresholds are forest.thresholds[lo:hi]
	// add is 1 for the column of splits whose missing values go left: its
	// keys are the rank plus one, so a missing key wraps to 0.
	add uint8
	// src is the column with the same input and mode and add 0, whose
	// keys plus one are this column's, or -1. It comes before this one.
	src int32
	// search finds a numerical key's rank (lightgbm_search.go).
	search lgbSearch
	// missNaN and missSmall are 1 when the column's mode reads NaN, and
	// values within lgbZeroThreshold of 0, as missing.
	missNaN, missSmall uint32
}

// lgbNode is a complete-layout split: a row goes right when its key in
// column col is at least thr. thr is 0 for pass-through slots.
type lgbNode struct {
	thr, col uint32
}

// lgbSNode is a split in LightGBM's own shape. fa is column<<1 |
// categorical. A numerical split goes right when key >= thr;
// a categorical one goes left when its key is in the bitset
// catWords[thr:thr+ncat].
type lgbSNode struct {
	left, right int32 // >= 0: split node; < 0: ^leaf
	fa, thr     uint32
	ncat        uint32
}

type lgbSlowTree struct {
	nodes  []lgbSNode
	leaf   []float64
	value  []float64 // internal values, for contributions; nil without them
	feat   []uint32  // input of each split, for contributions
	linear *lgbLinearLeaves
}

// lgbCNode is a compact-layout node: go to kids + (key[col] >= thr). A node's two children are adjacent. A leaf has thr 0 and kids one
// below itself, so it is its own next node.
type lgbCNode struct {
	thr, col, kids uint32
}

// Tree layouts.
const (
	lgbBranching uint8 = iota // LightGBM's own shape only (forest.slow)
	lgbComplete               // forest.nodes, heap order
	lgbCompact                // forest.cnodes, children adjacent
)

type lgbTree struct {
	// node and leaf are the offsets of the tree's first node and leaf
	// slot in forest.nodes (or forest.cnodes) and forest.leaf.
	node, leaf uint32
	lbase      uint32 // complete: leaf - (2^depth-1), wrapping: leaf[lbase+p] is heap position p's leaf
	depth      uint32
	group      uint32
	layout     uint8
	// run counts the trees from this one on with its layout (at most
	// 255), so a single row's walk picks groups of trees at a glance.
	run uint8
}

// lgbForest is a compiled LightGBM model.
type lgbForest struct {
	numFeature, numGroup, maxDepth int
	obj                            lgbObjective
	// avgDiv is the number of iterations for average_output (random
	// forest) models, 0 otherwise.
	avgDiv     float64
	cols       []lgbColumn
	thresholds []float64
	nodes      []lgbNode
	cnodes     []lgbCNode
	leaf       []float64
	trees      []lgbTree
	slow       []lgbSlowTree // parallel to trees
	catWords   []uint32
	buckets    []uint32  // rank lookup tables
	search     []float64 // thresholds again, padded for the rank lookup
	noContrib  error

	limits ModelLimits
	heap   int64
}

var _ predictor = (*lgbForest)(nil)

// lgbLink is how a raw score becomes a prediction (LightGBM's
// ConvertOutput).
type lgbLink uint8

const (
	lgbIdentity     lgbLink = iota
	lgbSigmoid              // 1/(1+exp(-sigmoid*x)): binary, cross_entropy
	lgbSoftmax              // multiclass
	lgbOVA                  // per-class sigmoid: multiclassova
	lgbExp                  // poisson, gamma, tweedie
	lgbLog1pExp             // cross_entropy_lambda
	lgbSignedSquare         // regression objectives trained with reg_sqrt
)

type lgbObjective struct {
	link    lgbLink
	sigmoid float64
}

// lgbObjectiveAlias maps LightGBM's objective aliases to the names
// ObjectiveFunction::CreateObjectiveFunction knows (config.h's
// ParseObjectiveAlias).
func lgbObjectiveAlias(s string) string {
	switch s {
	case "regression_l2", "mean_squared_error", "mse", "l2", "l2_root", "root_mean_squared_error", "rmse":
		return "regression"
	case "mean_absolute_error", "l1", "mae":
		return "regression_l1"
	case "softmax":
		return "multiclass"
	case "multiclass_ova", "ova", "ovr":
		return "multiclassova"
	case "xentropy":
		return "cross_entropy"
	case "xentlambda":
		return "cross_entropy_lambda"
	case "mean_absolute_percentage_error":
		return "mape"
	case "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart":
		return "rank_xendcg"
	case "none", "null", "na":
		return "custom"
	}
	return s
}

// lgbSupportedObjectives lists what parseLGBObjective accepts.
const lgbSupportedObjectives = "regression, regression_l1, huber, fair, quantile, mape, poisson, gamma, tweedie, binary, multiclass, multiclassova, cross_entropy, cross_entropy_lambda, lambdarank, rank_xendcg, custom"

// parseLGBObjective reads the objective line ("binary sigmoid:1",
// "multiclass num_class:5", "regression sqrt"...) as LightGBM's
// objective constructors do, and checks it against the header.
func parseLGBObjective(h lgbHeader) (lgbObjective, error) {
	var o lgbObjective
	if !h.hasObjective {
		return o, nil // a custom objective: LightGBM returns raw scores
	}
	parts := strings.Split(h.objective, " ")
	name := lgbObjectiveAlias(parts[0])
	sqrt := false
	numClass, sigmoid := -1, -1.0
	for _, p := range parts[1:] {
		if p == "sqrt" {
			sqrt = true
			continue
		}
		k, v, ok := strings.Cut(p, ":")
		if !ok {
			continue
		}
		switch k {
		case "num_class":
			n, err := strconv.Atoi(v)
			if err != nil {
				return o, fmt.Errorf("objective %q: num_class %q is not an integer", lgbClip(h.objective), lgbClip(v))
			}
			numClass = n
		case "sigmoid":
			s, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return o, fmt.Errorf("objective %q: sigmoid %q is not a number", lgbClip(h.objective), lgbClip(v))
			}
			sigmoid = s
		}
	}
	multi := false
	switch name {
	case "regression", "regression_l1", "quantile", "mape", "fair":
		if sqrt {
			o.link = lgbSignedSquare
		}
	case "huber", "lambdarank", "rank_xendcg", "custom":
	case "poisson", "gamma", "tweedie":
		o.link = lgbExp
	case "binary":
		o.link, o.sigmoid = lgbSigmoid, sigmoid
	case "cross_entropy":
		o.link, o.sigmoid = lgbSigmoid, 1
	case "cross_entropy_lambda":
		o.link = lgbLog1pExp
	case "multiclass":
		o.link, multi = lgbSoftmax, true
	case "multiclassova":
		o.link, o.sigmoid, multi = lgbOVA, sigmoid, true
	default:
		return o, fmt.Errorf("%w: objective %q: supported LightGBM objectives are %s", ErrUnsupportedModel, lgbClip(h.objective), lgbSupportedObjectives)
	}
	if (o.link == lgbSigmoid || o.link == lgbOVA) && (!(o.sigmoid > 0) || math.IsInf(o.sigmoid, 0)) {
		return o, fmt.Errorf("objective %q: the sigmoid parameter must be a positive number", lgbClip(h.objective))
	}
	if multi {
		if numClass != h.numClass || numClass != h.numTreePerIteration {
			return o, fmt.Errorf("objective %q: num_class %d, but the header has num_class %d and num_tree_per_iteration %d", lgbClip(h.objective), numClass, h.numClass, h.numTreePerIteration)
		}
	} else if name != "custom" && (h.numTreePerIteration != 1 || h.numClass != 1) {
		return o, fmt.Errorf("objective %q has one output, but the header has num_class %d and num_tree_per_iteration %d", lgbClip(h.objective), h.numClass, h.numTreePerIteration)
	}
	return o, nil
}

// colKey identifies a key column while compiling.
type colKey struct {
	feature   int32
	mode, add uint8
}

func lgbNodeMode(dt uint8) uint8 {
	if dt&lgbCategorical != 0 {
		return lgbColCat
	}
	switch dt >> 2 {
	case lgbMissZero:
		return lgbColZero
	case lgbMissNaN:
		return lgbColNaN
	}
	return lgbColNone
}

// account adds n bytes of compiled form, failing past MaxHeapBytes.
func (f *lgbForest) account(n int64) error {
	if f.heap+n > f.limits.MaxHeapBytes {
		return limitError("the compiled trees' size", f.heap+n, "max_heap_bytes", f.limits.MaxHeapBytes)
	}
	f.heap += n
	return nil
}

// compileLightGBM builds the key columns and both layouts of every tree.
func compileLightGBM(h lgbHeader, trees []lgbRawTree, obj lgbObjective, lim ModelLimits) (*lgbForest, error) {
	f := &lgbForest{
		numFeature: h.maxFeatureIdx + 1,
		numGroup:   h.numTreePerIteration,
		obj:        obj,
		limits:     lim,
	}
	if h.averageOutput {
		f.avgDiv = float64(len(trees) / h.numTreePerIteration)
	}
	// Columns and their thresholds: thresholds per (input, mode), a
	// column per (input, mode, add), the columns a sibling's keys give
	// (add 1 next to add 0) last, so one pass over the columns in order
	// can derive them.
	type fm struct {
		feature int32
		mode    uint8
	}
	thrOf := map[fm][]float64{}
	var keysSeen []colKey
	seen := map[colKey]bool{}
	for ti := range trees {
		t := &trees[ti]
		for i, dt := range t.decisionType {
			mode := lgbNodeMode(dt)
			k := colKey{t.splitFeature[i], mode, uint8(f.addFor(dt, mode))}
			if !seen[k] {
				seen[k] = true
				keysSeen = append(keysSeen, k)
			}
			if mode != lgbColCat {
				thrOf[fm{k.feature, mode}] = append(thrOf[fm{k.feature, mode}], t.threshold[i]+0) // +0 turns -0 into 0
			} else if _, ok := thrOf[fm{k.feature, mode}]; !ok {
				thrOf[fm{k.feature, mode}] = nil
			}
		}
	}
	colOf := map[colKey]int{}
	type span struct {
		lo, hi uint32
		search lgbSearch
	}
	spans := map[fm]span{}
	for _, derived := range []bool{false, true} {
		for _, k := range keysSeen {
			base := colKey{k.feature, k.mode, 0}
			if derived != (k.add == 1 && seen[base]) {
				continue
			}
			c := lgbColumn{feature: uint32(k.feature), mode: k.mode, add: k.add, src: -1}
			switch k.mode {
			case lgbColZero:
				c.missNaN, c.missSmall = 1, 1
			case lgbColNaN:
				c.missNaN = 1
			}
			if derived {
				c.src = int32(colOf[base])
			}
			sp, ok := spans[fm{k.feature, k.mode}]
			if !ok {
				ts := thrOf[fm{k.feature, k.mode}]
				slices.Sort(ts)
				ts = slices.Compact(ts)
				if err := f.account(int64(len(ts)) * 8); err != nil {
					return nil, err
				}
				sp.lo = uint32(len(f.thresholds))
				f.thresholds = append(f.thresholds, ts...)
				sp.hi = uint32(len(f.thresholds))
				if k.mode != lgbColCat {
					var err error
					if sp.search, err = f.addSearch(ts); err != nil {
						return nil, err
					}
				}
				spans[fm{k.feature, k.mode}] = sp
			}
			c.lo, c.hi, c.search = sp.lo, sp.hi, sp.search
			colOf[k] = len(f.cols)
			f.cols = append(f.cols, c)
		}
	}
	f.trees = make([]lgbTree, len(trees))
	f.slow = make([]lgbSlowTree, len(trees))
	for ti := range trees {
		if err := f.addTree(ti, &trees[ti], colOf); err != nil {
			return nil, fmt.Errorf("tree %d: %w", ti, err)
		}
	}
	for ti := len(f.trees) - 1; ti >= 0; ti-- {
		f.trees[ti].run = 1
		if ti+1 < len(f.trees) && f.trees[ti+1].layout == f.trees[ti].layout && f.trees[ti+1].run < 255 {
			f.trees[ti].run = f.trees[ti+1].run + 1
		}
	}
	return f, nil
}

func (f *lgbForest) addTree(ti int, t *lgbRawTree, colOf map[colKey]int) error {
	m := t.numLeaves - 1
	cost := lgbTreeBytes + int64(m)*lgbSlowNodeBytes + int64(t.numLeaves)*lgbLeafBytes + int64(len(t.catThreshold))*4
	if t.linear != nil {
		for _, c := range t.linear.coeff {
			cost += 8 + int64(len(c))*12
		}
	}
	if err := f.account(cost); err != nil {
		return err
	}
	f.maxDepth = max(f.maxDepth, t.depth)
	st := lgbSlowTree{leaf: t.leafValue, linear: t.linear, nodes: make([]lgbSNode, m), feat: make([]uint32, m)}
	hasCat := false
	for i := range m {
		dt := t.decisionType[i]
		mode := lgbNodeMode(dt)
		add := f.addFor(dt, mode)
		c := colOf[colKey{t.splitFeature[i], mode, uint8(add)}]
		nd := lgbSNode{left: t.left[i], right: t.right[i]}
		st.feat[i] = uint32(t.splitFeature[i])
		if mode == lgbColCat {
			hasCat = true
			idx := int(t.threshold[i])
			words := t.catThreshold[t.catBoundaries[idx]:t.catBoundaries[idx+1]]
			nd.fa = uint32(c)<<1 | 1
			nd.thr, nd.ncat = uint32(len(f.catWords)), uint32(len(words))
			f.catWords = append(f.catWords, words...)
		} else {
			nd.fa = uint32(c) << 1
			nd.thr = f.thresholdKey(c, t.threshold[i]) + add
		}
		st.nodes[i] = nd
	}
	if m == 0 || t.internalValue != nil {
		st.value = t.internalValue
		for i, v := range st.value {
			if !finite(v) && f.noContrib == nil {
				f.noContrib = fmt.Errorf("%w: tree %d: internal_value[%d] is %v", ErrNoContributions, ti, i, v)
			}
		}
	} else if f.noContrib == nil {
		f.noContrib = fmt.Errorf("%w: tree %d has no internal_value (each split's output) to attribute its path with", ErrNoContributions, ti)
	}
	f.slow[ti] = st
	f.trees[ti] = lgbTree{group: uint32(ti % f.numGroup)}
	d := t.depth
	switch {
	case hasCat || t.linear != nil:
		return nil
	case d <= lgbMaxCompleteDepth && (d <= lgbAlwaysComplete || 1<<(d+1)-1 <= lgbSparseRatio*(2*t.numLeaves-1)):
		return f.addComplete(ti, &st, d)
	default:
		return f.addCompact(ti, &st, d)
	}
}

// addCompact lays tree ti out with each node's children adjacent, breadth
// first, from its slow form.
func (f *lgbForest) addCompact(ti int, st *lgbSlowTree, d int) error {
	size := 2*len(st.nodes) + 1
	if err := f.account(int64(size) * (12 + 8)); err != nil {
		return err
	}
	if len(f.cnodes)+size > math.MaxUint32/2 || len(f.leaf)+size > math.MaxUint32/2 {
		return errors.New("too many nodes for the compact layout")
	}
	t := &f.trees[ti]
	t.layout = lgbCompact
	t.depth = uint32(d)
	t.node, t.leaf = uint32(len(f.cnodes)), uint32(len(f.leaf))
	f.cnodes = append(f.cnodes, make([]lgbCNode, size)...)
	f.leaf = append(f.leaf, make([]float64, size)...)
	nodes, leaves := f.cnodes[t.node:], f.leaf[t.leaf:]
	// id: a slow-form child (>= 0 split, < 0 ^leaf) placed at pos.
	type item struct{ id, pos int32 }
	queue := []item{{0, 0}}
	next := int32(1)
	for q := 0; q < len(queue); q++ {
		it := queue[q]
		if it.id < 0 {
			nodes[it.pos] = lgbCNode{kids: uint32(it.pos - 1)}
			leaves[it.pos] = st.leaf[^it.id]
			continue
		}
		nd := st.nodes[it.id]
		nodes[it.pos] = lgbCNode{thr: nd.thr, col: nd.fa >> 1, kids: uint32(next)}
		queue = append(queue, item{nd.left, next}, item{nd.right, next + 1})
		next += 2
	}
	return nil
}

// addFor is a numerical split's key increment: 1 when missing values go
// left (wrapping the missing key to 0), 0 otherwise. A None column has no
// missing key.
func (f *lgbForest) addFor(dt, mode uint8) uint32 {
	if mode != lgbColNone && dt&lgbDefaultLeft != 0 {
		return 1
	}
	return 0
}

// thresholdKey is the key threshold of a split on column c at threshold
// th: x > th exactly when rank(x) >= j+1, with th = T[j].
func (f *lgbForest) thresholdKey(c int, th float64) uint32 {
	col := f.cols[c]
	ts := f.thresholds[col.lo:col.hi]
	j, _ := slices.BinarySearch(ts, th+0)
	return uint32(j) + 1
}

// addComplete lays tree ti out complete, in heap order, from its slow form.
func (f *lgbForest) addComplete(ti int, st *lgbSlowTree, d int) error {
	inner := 1<<d - 1
	if err := f.account(int64(inner)*8 + int64(inner+1)*8); err != nil {
		return err
	}
	if len(f.nodes)+inner > math.MaxUint32/2 || len(f.leaf)+inner+1 > math.MaxUint32/2 {
		return errors.New("too many nodes for the complete layout")
	}
	t := &f.trees[ti]
	t.layout = lgbComplete
	t.depth = uint32(d)
	t.node, t.leaf = uint32(len(f.nodes)), uint32(len(f.leaf))
	t.lbase = t.leaf - uint32(inner)
	f.nodes = append(f.nodes, make([]lgbNode, inner)...)
	f.leaf = append(f.leaf, make([]float64, inner+1)...)
	nodes, leaves := f.nodes[t.node:], f.leaf[t.leaf:]
	type item struct{ id, pos, depth int32 }
	stack := []item{{0, 0, 0}}
	if len(st.nodes) == 0 {
		leaves[0] = st.leaf[0]
		return nil
	}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.id < 0 {
			span := 1 << (d - int(it.depth))
			first := (int(it.pos)+1)<<(d-int(it.depth)) - 1 - inner
			for k := first; k < first+span; k++ {
				leaves[k] = st.leaf[^it.id]
			}
			continue
		}
		nd := st.nodes[it.id]
		nodes[it.pos] = lgbNode{thr: nd.thr, col: nd.fa >> 1}
		stack = append(stack, item{nd.left, 2*it.pos + 1, it.depth + 1}, item{nd.right, 2*it.pos + 2, it.depth + 1})
	}
	return nil
}
