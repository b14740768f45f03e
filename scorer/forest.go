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
// All trees live in one flat node array, each tree in breadth-first order so
// that the two children of a node are adjacent: right = left+1. A row walks a
// tree with no data-dependent branch:
//
//	next = node.left + (key(x[node.feature]) + node.add >= node.thr)
//
// where key maps a float32 to a uint32 whose unsigned order is the float order
// (NaN maps to the largest key). That single comparison reproduces XGBoost's
// float32 "x < split_condition goes left" test and its missing-value rule:
// for a node whose default is right, NaN's key is above every threshold; for a
// default-left node add is 1, which wraps NaN's key to 0 and leaves every other
// key's order unchanged, with thr raised by one to match.
//
// A leaf points at itself (left = self-1 and thr = 0, so the comparison is
// always true), so every row takes exactly depth steps through a tree and
// the loop count is known before the walk starts. Rows are walked four at a
// time so their independent load chains overlap in the CPU.
//
// Trees holding categorical splits are rare; they keep XGBoost's own layout
// and are walked by a straightforward branching loop (catTree).
type fnode struct {
	thr  uint32 // key(split_condition) + add; 0 at leaves
	left uint32 // index of the left child; the right child is left+1
	fa   uint32 // feature<<1 | add (add = 1 when missing values go left)
}

type ftree struct {
	root  uint32
	depth uint32
	group uint32
	cat   int32 // index into forest.cats, or -1
}

type forest struct {
	nodes      []fnode
	leaf       []float32 // leaf value by node index
	trees      []ftree
	cats       []catTree
	base       []float32 // base margin per output group
	numFeature int
	numGroup   int
	maxDepth   int
	obj        objective
}

// catTree is a tree with categorical splits in XGBoost's own layout.
type catTree struct {
	left, right []int32
	feat        []uint32
	cond        []float32
	defLeft     []bool
	catSet      [][]uint64 // nil for numerical nodes; else bitset of categories that go right
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
		if maxD > maxTreeDepth {
			return fmt.Errorf("%w: deeper than %d levels", ErrUnsupportedModel, maxTreeDepth)
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
	if hasCat {
		ct, err := newCatTree(t, n)
		if err != nil {
			return err
		}
		f.cats = append(f.cats, ct)
		f.trees = append(f.trees, ftree{group: group, cat: int32(len(f.cats) - 1)})
		return nil
	}
	// Lay out breadth first: allocate both children of a node together.
	base := uint32(len(f.nodes))
	if uint64(base)+uint64(n) > math.MaxUint32/2 {
		return fmt.Errorf("%w: too many nodes", ErrUnsupportedModel)
	}
	pos := make([]uint32, n) // original id -> new index
	next := base + 1
	pos[0] = base
	f.nodes = append(f.nodes, make([]fnode, len(order))...)
	f.leaf = append(f.leaf, make([]float32, len(order))...)
	for _, id := range order {
		p := pos[id]
		l, r := t.LeftChildren[id], t.RightChildren[id]
		if l == -1 {
			f.nodes[p] = fnode{thr: 0, left: p - 1, fa: 0}
			f.leaf[p] = t.SplitConditions[id]
			continue
		}
		pos[l], pos[r] = next, next+1
		var add uint32
		if t.DefaultLeft[id] {
			add = 1
		}
		f.nodes[p] = fnode{
			thr:  key(t.SplitConditions[id]) + add,
			left: next,
			fa:   uint32(t.SplitIndices[id])<<1 | add,
		}
		next += 2
	}
	f.trees = append(f.trees, ftree{root: base, depth: uint32(maxD), group: group, cat: -1})
	return nil
}

func newCatTree(t *xgbTree, n int) (catTree, error) {
	ct := catTree{
		left: t.LeftChildren, right: t.RightChildren,
		feat: make([]uint32, n), cond: t.SplitConditions, defLeft: t.DefaultLeft,
		catSet: make([][]uint64, n),
	}
	for i := range n {
		ct.feat[i] = uint32(max(t.SplitIndices[i], 0))
	}
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
		k := keys[c.feat[id]]
		if k == math.MaxUint32 {
			if c.defLeft[id] {
				id = c.left[id]
			} else {
				id = c.right[id]
			}
			continue
		}
		x := unkey(k)
		if set := c.catSet[id]; set != nil {
			right := false
			if x >= 0 && x < maxCategory {
				cat := uint32(x)
				right = int(cat/64) < len(set) && set[cat/64]&(1<<(cat%64)) != 0
			}
			if right {
				id = c.right[id]
			} else {
				id = c.left[id]
			}
			continue
		}
		if x < c.cond[id] {
			id = c.left[id]
		} else {
			id = c.right[id]
		}
	}
	return c.cond[id]
}

// predictMargins adds every tree's leaf values to acc for the n rows held
// row-major in keys (n*numFeature). acc holds numGroup runs of n float32
// margins and must be initialised with the base margin. Summation is in
// float32, tree by tree, as XGBoost's CPU predictor does, so margins match it
// bit for bit.
func (f *forest) predictMargins(keys []uint32, n int, acc []float32) {
	nf := f.numFeature
	nodes := f.nodes
	leaf := f.leaf
	for ti := range f.trees {
		t := &f.trees[ti]
		a := acc[int(t.group)*n : int(t.group)*n+n]
		if t.cat >= 0 {
			ct := &f.cats[t.cat]
			for i := range a {
				a[i] += ct.walk(keys[i*nf : i*nf+nf])
			}
			continue
		}
		i := 0
		for ; i+4 <= n; i += 4 {
			k0 := keys[i*nf : i*nf+nf]
			k1 := keys[(i+1)*nf : (i+1)*nf+nf]
			k2 := keys[(i+2)*nf : (i+2)*nf+nf]
			k3 := keys[(i+3)*nf : (i+3)*nf+nf]
			p0, p1, p2, p3 := t.root, t.root, t.root, t.root
			for d := t.depth; d > 0; d-- {
				n0, n1, n2, n3 := &nodes[p0], &nodes[p1], &nodes[p2], &nodes[p3]
				p0 = n0.left + b2u(k0[n0.fa>>1]+n0.fa&1 >= n0.thr)
				p1 = n1.left + b2u(k1[n1.fa>>1]+n1.fa&1 >= n1.thr)
				p2 = n2.left + b2u(k2[n2.fa>>1]+n2.fa&1 >= n2.thr)
				p3 = n3.left + b2u(k3[n3.fa>>1]+n3.fa&1 >= n3.thr)
			}
			a[i] += leaf[p0]
			a[i+1] += leaf[p1]
			a[i+2] += leaf[p2]
			a[i+3] += leaf[p3]
		}
		for ; i < n; i++ {
			k := keys[i*nf : i*nf+nf]
			p := t.root
			for d := t.depth; d > 0; d-- {
				nd := &nodes[p]
				p = nd.left + b2u(k[nd.fa>>1]+nd.fa&1 >= nd.thr)
			}
			a[i] += leaf[p]
		}
	}
}
