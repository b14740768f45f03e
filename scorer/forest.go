package scorer

import (
	"fmt"
	"math"
)

// maxFeatures bounds a model's feature count: node feature indices are packed
// into 31 bits, and a larger model is almost certainly a corrupt file.
const maxFeatures = 1 << 20

// maxTreeDepth bounds the depth of one tree. Deeper trees are legal in
// XGBoost but are walked by the fixed-depth loop, so a hostile file could
// otherwise make every row cost millions of steps.
const maxTreeDepth = 64

// Tree layout.
//
// Each tree is stored complete: a tree of depth D becomes 2^D-1 internal
// nodes in breadth-first (heap) order, so the children of node i are 2i+1 and
// 2i+2 and no child pointers are stored, plus 2^D leaf values. A leaf that
// XGBoost placed above depth D becomes a pass-through node whose whole
// subtree of leaf slots holds its value. A row then walks every tree in
// exactly D steps with no data-dependent branch:
//
//	i = 2i + 1 + (keys[node.col] >= node.thr)
//
// where key maps a float32 to a uint32 whose unsigned order is the float order
// (NaN maps to the largest key). That single comparison reproduces XGBoost's
// float32 "x < split_condition goes left" test and its missing-value rule:
// each feature has two key columns, one where NaN's key is above every
// threshold (for nodes whose default is right) and one where it is 0, below
// every threshold (default left); a node names the column it reads. Every
// non-NaN key is at least key(-Inf) = 0x007fffff, so a pass-through node
// (thr 0) always goes right.
//
// A node is 8 bytes, so a 300-tree depth-6 model takes 230 KB and stays in
// L2. How rows are walked through the trees is in forest_walk.go.
//
// Trees holding categorical splits, and trees deeper than maxCompleteDepth
// (whose complete form would be too large), keep XGBoost's own layout and are
// walked by a straightforward branching loop (catTree).
type fnode struct {
	thr uint32 // key(split_condition); 0 for pass-through nodes
	// col is the key column the node reads, 2*feature+1 if missing values
	// go left, else 2*feature, times the column stride of a block
	// (1<<keyShift(numFeature) rows), so the batch walk adds no multiply.
	col uint32
}

// slot is the node's key column as an index into one row's keys (rowKeys);
// sh is the forest's keyShift.
func (n fnode) slot(sh uint32) uint32 { return n.col >> sh }

// feature is the feature the node splits on.
func (n fnode) feature(sh uint32) uint32 { return n.col >> (sh + 1) }

// Rows per block. Batches are walked in blocks of at most blockRows rows,
// fewer for models with many features, so that a block's key columns (two
// of 4 bytes per feature and row) stay within keyBlockBytes: in L2 while
// every tree is walked over them, and a bounded Scratch.
const (
	maxKeyShift   = 9
	blockRows     = 1 << maxKeyShift
	keyBlockBytes = 256 << 10
)

// keyShift is log2 of the rows per block for a model of nf features.
func keyShift(nf int) uint32 {
	s := uint32(maxKeyShift)
	for s > 0 && 8*nf<<s > keyBlockBytes {
		s--
	}
	return s
}

// maxCompleteDepth bounds the depth of trees stored complete (8191 nodes).
const maxCompleteDepth = 12

type ftree struct {
	node uint32 // offset of the tree's first node in forest.nodes
	leaf uint32 // offset of its first leaf in forest.leaf
	// lbase is leaf - (2^depth - 1), wrapping: leaf[lbase+p] is the leaf
	// reached at heap position p.
	lbase uint32
	depth uint32
	group uint32
	slow  int32 // index into forest.slow, or -1 for the complete layout
}

type forest struct {
	nodes      []fnode
	leaf       []float32
	trees      []ftree   // in model order
	slow       []catTree // categorical or very deep trees
	base       []float32 // base margin per output group
	numFeature int
	numGroup   int
	maxDepth   int
	obj        objective

	// mean holds, parallel to nodes, each complete-layout node's mean
	// value (nodeMeans), for feature contributions. It is nil when
	// noContrib says why the model has none.
	mean      []float32
	noContrib error

	// limits bound the trees as they are added; heap is the compiled
	// form's size so far (what addTree allocates and keeps).
	limits ModelLimits
	heap   int64
}

// sparseRatio: a tree goes to the complete layout only if that layout has
// at most this many slots per node of the tree (or the tree is shallow).
// Otherwise a sparse tree (a chain of depth 12 has 25 nodes, its complete
// form 8,191 slots: 64 KB instead of about 1 KB) would amplify a small file
// into a large heap; it is walked by the branching loop instead, which costs
// a sparse tree little since its rows take few steps.
const (
	sparseRatio        = 8
	alwaysCompleteUpTo = 6
)

// completeTreeBytes is what a tree of depth d keeps in the complete layout:
// 2^d-1 inner nodes of 8 bytes plus their 4-byte means, and 2^d 4-byte leaves.
func completeTreeBytes(d int) int64 { return int64(1<<d-1)*12 + int64(1<<d)*4 }

// Bytes kept per node in the branching layout: children (8), feature (4), condition (4),
// default (1), mean (4) and, for categorical trees, its set header (24).
const (
	branchNodeBytes = 21
	catNodeBytes    = 24
)

// catTree is a tree with categorical splits in XGBoost's own layout.
type catTree struct {
	left, right []int32
	feat        []uint32
	cond        []float32
	defLeft     []bool
	catSet      [][]uint64 // nil for numerical nodes; else bitset of categories that go right
	mean        []float32  // per node, for contributions; nil without them
}

// key maps a float32 to an order-preserving uint32: negative numbers below
// positive ones, -0 equal to +0, NaN above +Inf.
func key(f float32) uint32 {
	if f != f {
		return math.MaxUint32
	}
	b := math.Float32bits(f)
	if b == 0x80000000 {
		b = 0
	}
	mask := uint32(int32(b)>>31) | 0x80000000
	return b ^ mask
}

// keyPair returns x's keys in the two columns of its feature: NaN above every
// threshold, and NaN below every threshold. It is key without branches (a
// batch converts every value, 5 % of them NaN in typical data).
func keyPair(x float64) (hi, lo uint32) {
	b := math.Float32bits(float32(x))
	k := b ^ (uint32(int32(b)>>31) | 0x80000000)
	k += b2u(k == 0x7fffffff) // -0 (the only value mapped there) to key(+0)
	nan := -b2u(b&0x7fffffff > 0x7f800000)
	return k | nan, k &^ nan
}

// rowKeys writes a row's keys (x in model feature order) in the layout the
// row walks and catTree read: k[2j] and k[2j+1] are keyPair(x[j]).
func rowKeys(k []uint32, x []float64) {
	k = k[:2*len(x)]
	for j, v := range x {
		k[2*j], k[2*j+1] = keyPair(v)
	}
}

// unkey inverts key for non-NaN keys.
func unkey(k uint32) float32 {
	if k == math.MaxUint32 {
		return float32(math.NaN())
	}
	if k&0x80000000 != 0 {
		return math.Float32frombits(k &^ 0x80000000)
	}
	return math.Float32frombits(^k)
}

func b2u(b bool) uint32 {
	var x uint32
	if b {
		x = 1
	}
	return x
}

// addTree validates one XGBoost tree and appends it in the flat layout.
func (f *forest) addTree(t *xgbTree, group uint32) error {
	n := len(t.LeftChildren)
	if n == 0 {
		return fmt.Errorf("no nodes")
	}
	if nn, err := atoiField("num_nodes", t.TreeParam.NumNodes, n); err != nil {
		return err
	} else if nn != n {
		return fmt.Errorf("num_nodes is %d but left_children has %d entries", nn, n)
	}
	if slv, _ := atoiField("size_leaf_vector", t.TreeParam.SizeLeafVector, 0); slv > 1 {
		return fmt.Errorf("%w: size_leaf_vector is %d: vector-leaf trees are not supported", ErrUnsupportedModel, slv)
	}
	for name, l := range map[string]int{
		"right_children": len(t.RightChildren), "split_indices": len(t.SplitIndices),
		"split_conditions": len(t.SplitConditions), "default_left": len(t.DefaultLeft),
	} {
		if l != n {
			return fmt.Errorf("%s has %d entries, want %d", name, l, n)
		}
	}
	if len(t.SplitType) != 0 && len(t.SplitType) != n {
		return fmt.Errorf("split_type has %d entries, want %d", len(t.SplitType), n)
	}
	// Check the children form a tree rooted at 0 (no cycles, no sharing) and
	// find its depth, breadth first.
	depth := make([]int32, n)
	seen := make([]bool, n)
	seen[0] = true
	order := make([]int32, 1, n)
	hasCat := false
	maxD := 0
	for q := 0; q < len(order); q++ {
		id := order[q]
		l, r := t.LeftChildren[id], t.RightChildren[id]
		if l == -1 {
			if r != -1 {
				return fmt.Errorf("node %d: left child -1 but right child %d", id, r)
			}
			if c := t.SplitConditions[id]; c != c || math.IsInf(float64(c), 0) {
				return fmt.Errorf("node %d: leaf value %v is not finite", id, c)
			}
			continue
		}
		for _, c := range [2]int32{l, r} {
			if c <= 0 || int(c) >= n {
				return fmt.Errorf("node %d: child %d out of range [1,%d)", id, c, n)
			}
			if seen[c] {
				return fmt.Errorf("node %d: child %d is reachable twice", id, c)
			}
			seen[c] = true
			depth[c] = depth[id] + 1
			maxD = max(maxD, int(depth[c]))
			order = append(order, c)
		}
		if maxD > f.limits.MaxDepth {
			return limitError("its depth", int64(maxD), "max_depth", int64(f.limits.MaxDepth))
		}
		if fi := t.SplitIndices[id]; fi < 0 || int(fi) >= f.numFeature {
			return fmt.Errorf("node %d: split index %d out of range [0,%d)", id, fi, f.numFeature)
		}
		isCat := false
		if len(t.SplitType) != 0 {
			switch t.SplitType[id] {
			case 0:
			case 1:
				isCat, hasCat = true, true
			default:
				return fmt.Errorf("node %d: split_type %d (want 0 numerical or 1 categorical)", id, t.SplitType[id])
			}
		}
		// Categorical nodes carry NaN here; their category set decides.
		if c := t.SplitConditions[id]; c != c && !isCat {
			return fmt.Errorf("node %d: split condition is NaN", id)
		}
	}
	f.maxDepth = max(f.maxDepth, maxD)
	var mv []float32
	if f.noContrib == nil {
		var err error
		if mv, err = nodeMeans(t, order); err != nil {
			f.noContrib, f.mean = fmt.Errorf("%w: tree %d: %w", ErrNoContributions, len(f.trees), err), nil
			for i := range f.slow {
				f.slow[i].mean = nil
			}
		}
	}
	complete := !hasCat && maxD <= maxCompleteDepth && (maxD <= alwaysCompleteUpTo || 1<<(maxD+1)-1 <= sparseRatio*n)
	cost := int64(n) * branchNodeBytes
	if hasCat {
		cost += int64(n) * catNodeBytes
	}
	if complete {
		cost = completeTreeBytes(maxD)
	}
	if f.heap+cost > f.limits.MaxHeapBytes {
		return limitError("the compiled trees' size", f.heap+cost, "max_heap_bytes", f.limits.MaxHeapBytes)
	}
	f.heap += cost
	if !complete {
		ct, err := newCatTree(t, n, hasCat)
		if err != nil {
			return err
		}
		ct.mean = mv
		f.slow = append(f.slow, ct)
		f.trees = append(f.trees, ftree{group: group, slow: int32(len(f.slow) - 1)})
		return nil
	}
	inner := 1<<maxD - 1
	if len(f.nodes)+inner > math.MaxUint32/2 || len(f.leaf)+inner+1 > math.MaxUint32/2 {
		return fmt.Errorf("%w: too many nodes", ErrUnsupportedModel)
	}
	ft := ftree{node: uint32(len(f.nodes)), leaf: uint32(len(f.leaf)), depth: uint32(maxD), group: group, slow: -1}
	ft.lbase = ft.leaf - uint32(inner)
	f.nodes = append(f.nodes, make([]fnode, inner)...)
	f.leaf = append(f.leaf, make([]float32, inner+1)...)
	nodes := f.nodes[ft.node:]
	leaves := f.leaf[ft.leaf:]
	var means []float32
	if mv != nil {
		f.mean = append(f.mean, make([]float32, inner)...)
		means = f.mean[ft.node:]
	}
	// Walk XGBoost's tree alongside heap positions.
	type item struct{ id, pos, d int32 }
	stack := []item{{0, 0, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		l, r := t.LeftChildren[it.id], t.RightChildren[it.id]
		if l == -1 {
			// Fill every leaf slot under heap position pos at depth d.
			span := 1 << (maxD - int(it.d))
			first := (int(it.pos)+1)<<(maxD-int(it.d)) - 1 - inner
			for k := first; k < first+span; k++ {
				leaves[k] = t.SplitConditions[it.id]
			}
			// The pass-through nodes below a leaf placed above the
			// tree's depth take its value as their mean, so the steps
			// through them change nothing.
			if means != nil {
				for l := 0; l < maxD-int(it.d); l++ {
					first := (int(it.pos)+1)<<l - 1
					for k := first; k < first+1<<l; k++ {
						means[k] = t.SplitConditions[it.id]
					}
				}
			}
			continue
		}
		c := 2 * uint32(t.SplitIndices[it.id])
		if t.DefaultLeft[it.id] {
			c++
		}
		nodes[it.pos] = fnode{thr: key(t.SplitConditions[it.id]), col: c << keyShift(f.numFeature)}
		if means != nil {
			means[it.pos] = mv[it.id]
		}
		stack = append(stack, item{l, 2*it.pos + 1, it.d + 1}, item{r, 2*it.pos + 2, it.d + 1})
	}
	f.trees = append(f.trees, ft)
	return nil
}

func newCatTree(t *xgbTree, n int, hasCat bool) (catTree, error) {
	ct := catTree{
		left: t.LeftChildren, right: t.RightChildren,
		feat: make([]uint32, n), cond: t.SplitConditions, defLeft: t.DefaultLeft,
	}
	for i := range n {
		ct.feat[i] = uint32(max(t.SplitIndices[i], 0))
	}
	if !hasCat {
		return ct, nil // numerical only: no per-node set headers
	}
	ct.catSet = make([][]uint64, n)
	k := len(t.CategoriesNodes)
	if len(t.CategoriesSegments) != k || len(t.CategoriesSizes) != k {
		return ct, fmt.Errorf("categories_nodes, categories_segments and categories_sizes have %d, %d and %d entries",
			k, len(t.CategoriesSegments), len(t.CategoriesSizes))
	}
	for j := range k {
		node, seg, size := t.CategoriesNodes[j], t.CategoriesSegments[j], t.CategoriesSizes[j]
		if node < 0 || int(node) >= n || t.SplitType[node] != 1 {
			return ct, fmt.Errorf("categories_nodes[%d] = %d is not a categorical split", j, node)
		}
		if seg < 0 || size < 0 || seg > int64(len(t.Categories)) || size > int64(len(t.Categories))-seg {
			return ct, fmt.Errorf("categories segment %d (offset %d, size %d) outside categories (%d entries)", j, seg, size, len(t.Categories))
		}
		var set []uint64
		for _, c := range t.Categories[seg : seg+size] {
			if c < 0 || c >= maxCategory {
				return ct, fmt.Errorf("node %d: category %d out of range [0,%d)", node, c, maxCategory)
			}
			for int(c/64) >= len(set) {
				set = append(set, 0)
			}
			set[c/64] |= 1 << (c % 64)
		}
		if set == nil {
			set = []uint64{} // categorical node with an empty set: everything goes left
		}
		ct.catSet[node] = set
	}
	for i := range n {
		if len(t.SplitType) != 0 && t.SplitType[i] == 1 && t.LeftChildren[i] != -1 && ct.catSet[i] == nil {
			ct.catSet[i] = []uint64{}
		}
	}
	return ct, nil
}

// maxCategory is the largest category XGBoost accepts (exactly representable
// in float32).
const maxCategory = 1 << 24

// walk returns the leaf value the row with keys (rowKeys) reaches. It mirrors
// XGBoost 1.7's GetNextNode: missing goes the default way; for a categorical
// split, a category in the node's set goes right and anything else
// (including negative or out-of-range values) goes left.
func (c *catTree) walk(keys []uint32) float32 {
	id := int32(0)
	for c.left[id] != -1 {
		id = c.next(id, keys)
	}
	return c.cond[id]
}

// walkCol is walk for row i of a block's key columns (see predictBlock);
// sh is the forest's keyShift.
func (c *catTree) walkCol(keys []uint32, sh uint32, i int) float32 {
	id := int32(0)
	for c.left[id] != -1 {
		id = c.nextKey(id, keys[int(c.feat[id])<<(sh+1)+i])
	}
	return c.cond[id]
}

// next returns the child of split node id that the row with keys (rowKeys)
// goes to.
func (c *catTree) next(id int32, keys []uint32) int32 {
	return c.nextKey(id, keys[2*c.feat[id]])
}

// nextKey returns the child of split node id for the key k of its feature.
func (c *catTree) nextKey(id int32, k uint32) int32 {
	if k == math.MaxUint32 {
		if c.defLeft[id] {
			return c.left[id]
		}
		return c.right[id]
	}
	x := unkey(k)
	if c.catSet == nil {
		if x < c.cond[id] {
			return c.left[id]
		}
		return c.right[id]
	}
	if set := c.catSet[id]; set != nil {
		right := false
		if x >= 0 && x < maxCategory {
			cat := uint32(x)
			right = int(cat/64) < len(set) && set[cat/64]&(1<<(cat%64)) != 0
		}
		if right {
			return c.right[id]
		}
		return c.left[id]
	}
	if x < c.cond[id] {
		return c.left[id]
	}
	return c.right[id]
}
