package scorer

import (
	"fmt"
	"math"
	"unsafe"
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
//	i = 2i + 1 + (key(x[node.feature]) + node.add >= node.thr)
//
// where key maps a float32 to a uint32 whose unsigned order is the float order
// (NaN maps to the largest key). That single comparison reproduces XGBoost's
// float32 "x < split_condition goes left" test and its missing-value rule:
// for a node whose default is right, NaN's key is above every threshold; for a
// default-left node add is 1, which wraps NaN's key to 0 and leaves every other
// key's order unchanged, with thr raised by one to match.
//
// Rows are walked four at a time through a tree, or, for the last few rows
// of a batch (and single-row requests), one row through four trees at a time,
// so that independent load chains overlap in the CPU. A node is 8 bytes, so a
// 300-tree depth-6 model takes 230 KB and stays in L2.
//
// Trees holding categorical splits, and trees deeper than maxCompleteDepth
// (whose complete form would be too large), keep XGBoost's own layout and are
// walked by a straightforward branching loop (catTree).
type fnode struct {
	thr uint32 // key(split_condition) + add; 0 for pass-through nodes
	fa  uint32 // feature<<1 | add (add = 1 when missing values go left)
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
	return uint32(*(*uint8)(unsafe.Pointer(&b)))
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
		var add uint32
		if t.DefaultLeft[it.id] {
			add = 1
		}
		nodes[it.pos] = fnode{thr: key(t.SplitConditions[it.id]) + add, fa: uint32(t.SplitIndices[it.id])<<1 | add}
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

// walk returns the leaf value row x (model feature order) reaches. It mirrors
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

// next returns the child of split node id that the row goes to.
func (c *catTree) next(id int32, keys []uint32) int32 {
	k := keys[c.feat[id]]
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

// predictMargins adds every tree's leaf values to acc for the n rows held
// row-major in keys (n*numFeature). acc holds numGroup runs of n float32
// margins and must be initialised with the base margin. Summation is in
// float32, tree by tree in model order, as XGBoost's CPU predictor does, so
// margins match it bit for bit.
func (f *forest) predictMargins(keys []uint32, n int, acc []float32) {
	nf := f.numFeature
	nodes := f.nodes
	leaf := f.leaf
	n4 := n &^ 3
	for ti := range f.trees {
		if n4 == 0 {
			break
		}
		t := &f.trees[ti]
		ga := acc[int(t.group)*n : int(t.group)*n+n]
		if t.slow >= 0 {
			ct := &f.slow[t.slow]
			for i := range n4 {
				ga[i] += ct.walk(keys[i*nf : i*nf+nf])
			}
			continue
		}
		tn := nodes[t.node:]
		inner := uint32(1)<<t.depth - 1
		lv := leaf[t.leaf:]
		for i := 0; i < n4; i += 4 {
			k0 := keys[i*nf : i*nf+nf]
			k1 := keys[(i+1)*nf : (i+1)*nf+nf]
			k2 := keys[(i+2)*nf : (i+2)*nf+nf]
			k3 := keys[(i+3)*nf : (i+3)*nf+nf]
			var p0, p1, p2, p3 uint32
			for d := t.depth; d > 0; d-- {
				n0, n1, n2, n3 := tn[p0], tn[p1], tn[p2], tn[p3]
				p0 = 2*p0 + 1 + b2u(k0[n0.fa>>1]+n0.fa&1 >= n0.thr)
				p1 = 2*p1 + 1 + b2u(k1[n1.fa>>1]+n1.fa&1 >= n1.thr)
				p2 = 2*p2 + 1 + b2u(k2[n2.fa>>1]+n2.fa&1 >= n2.thr)
				p3 = 2*p3 + 1 + b2u(k3[n3.fa>>1]+n3.fa&1 >= n3.thr)
			}
			a := ga[i : i+4]
			a[0] += lv[p0-inner]
			a[1] += lv[p1-inner]
			a[2] += lv[p2-inner]
			a[3] += lv[p3-inner]
		}
	}
	// The last n%4 rows (all of a single-row request) go one row at a time
	// through four trees at a time.
	for i := n4; i < n; i++ {
		f.predictRow(keys[i*nf:i*nf+nf], acc, i, n)
	}
}

// predictRow walks one row through eight trees at a time, adding in model
// order as the batch path does.
func (f *forest) predictRow(k []uint32, acc []float32, i, n int) {
	nodes, trees := f.nodes, f.trees
	t := 0
	for t < len(trees) {
		if t+8 > len(trees) || !f.allFast(trees[t:t+8]) {
			f.addTree1(&trees[t], k, acc, i, n)
			t++
			continue
		}
		tr := trees[t : t+8 : t+8]
		n0, n1, n2, n3 := nodes[tr[0].node:], nodes[tr[1].node:], nodes[tr[2].node:], nodes[tr[3].node:]
		n4, n5, n6, n7 := nodes[tr[4].node:], nodes[tr[5].node:], nodes[tr[6].node:], nodes[tr[7].node:]
		var p0, p1, p2, p3, p4, p5, p6, p7 uint32
		d := min(tr[0].depth, tr[1].depth, tr[2].depth, tr[3].depth, tr[4].depth, tr[5].depth, tr[6].depth, tr[7].depth)
		for range d {
			a0, a1, a2, a3, a4, a5, a6, a7 := n0[p0], n1[p1], n2[p2], n3[p3], n4[p4], n5[p5], n6[p6], n7[p7]
			p0 = 2*p0 + 1 + b2u(k[a0.fa>>1]+a0.fa&1 >= a0.thr)
			p1 = 2*p1 + 1 + b2u(k[a1.fa>>1]+a1.fa&1 >= a1.thr)
			p2 = 2*p2 + 1 + b2u(k[a2.fa>>1]+a2.fa&1 >= a2.thr)
			p3 = 2*p3 + 1 + b2u(k[a3.fa>>1]+a3.fa&1 >= a3.thr)
			p4 = 2*p4 + 1 + b2u(k[a4.fa>>1]+a4.fa&1 >= a4.thr)
			p5 = 2*p5 + 1 + b2u(k[a5.fa>>1]+a5.fa&1 >= a5.thr)
			p6 = 2*p6 + 1 + b2u(k[a6.fa>>1]+a6.fa&1 >= a6.thr)
			p7 = 2*p7 + 1 + b2u(k[a7.fa>>1]+a7.fa&1 >= a7.thr)
		}
		f.addLeaf(&tr[0], finishWalk(n0, k, p0, tr[0].depth-d), acc, i, n)
		f.addLeaf(&tr[1], finishWalk(n1, k, p1, tr[1].depth-d), acc, i, n)
		f.addLeaf(&tr[2], finishWalk(n2, k, p2, tr[2].depth-d), acc, i, n)
		f.addLeaf(&tr[3], finishWalk(n3, k, p3, tr[3].depth-d), acc, i, n)
		f.addLeaf(&tr[4], finishWalk(n4, k, p4, tr[4].depth-d), acc, i, n)
		f.addLeaf(&tr[5], finishWalk(n5, k, p5, tr[5].depth-d), acc, i, n)
		f.addLeaf(&tr[6], finishWalk(n6, k, p6, tr[6].depth-d), acc, i, n)
		f.addLeaf(&tr[7], finishWalk(n7, k, p7, tr[7].depth-d), acc, i, n)
		t += 8
	}
}

func (f *forest) allFast(ts []ftree) bool {
	for i := range ts {
		if ts[i].slow >= 0 {
			return false
		}
	}
	return true
}

func (f *forest) addLeaf(t *ftree, p uint32, acc []float32, i, n int) {
	acc[int(t.group)*n+i] += f.leaf[t.lbase+p]
}

func (f *forest) addTree1(t *ftree, k []uint32, acc []float32, i, n int) {
	if t.slow >= 0 {
		acc[int(t.group)*n+i] += f.slow[t.slow].walk(k)
		return
	}
	f.addLeaf(t, finishWalk(f.nodes[t.node:], k, 0, t.depth), acc, i, n)
}

func finishWalk(tn []fnode, k []uint32, p, steps uint32) uint32 {
	for range steps {
		nd := tn[p]
		p = 2*p + 1 + b2u(k[nd.fa>>1]+nd.fa&1 >= nd.thr)
	}
	return p
}
