package scorer

import "unsafe"

// The level-wise walk of a complete tree over a block of rows, as the
// XGBoost layout's (forest_walk.go): every row of the block goes one level
// down per pass, so the loads of many rows overlap; positions are 1-based
// (children of q at 2q and 2q+1, saving an add a step); the root's two
// levels are one pass with the root's column and threshold held in
// registers, and the last level adds the leaf as it reaches it.
//
// The kernels read nodes, keys and leaves without bounds checks. That is
// safe because:
//   - tn holds the tree's 2^depth-1 nodes and lv its 2^depth leaves
//     (sliced, so checked, in addCompleteLevels); a row's position after
//     L levels is in [2^L, 2^(L+1)), so the nodes read (positions after at
//     most depth-1 levels, node q at tn[q-1]) are in tn and the leaves
//     read (position - 2^depth after depth levels) in lv;
//   - a node's column is below len(forest.cols) (pass-through nodes have
//     0), keys holds len(forest.cols)*lgbKeyStride keys and pos at most
//     lgbBlockRows rows (addTrees checks), so col*lgbKeyStride+i is inside
//     keys.
// go test -race instruments the pointer arithmetic (checkptr) as well.

// addCompleteLevels adds complete tree t's leaf for every row of o, whose
// keys are the block's; pos has a slot per row.
func (f *lgbForest) addCompleteLevels(t *lgbTree, keys []uint32, o []float64, pos []uint32) {
	lv := f.leaf[t.leaf:][: 1<<t.depth : 1<<t.depth]
	pos = pos[:len(o)]
	switch t.depth {
	case 0:
		for i := range o {
			o[i] += lv[0]
		}
		return
	case 1:
		r := f.nodes[t.node]
		rk := keys[int(r.col)*lgbKeyStride:][:len(o)]
		for i := range o {
			o[i] += lv[lgbB2U(rk[i] >= r.thr)]
		}
		return
	}
	tn := f.nodes[t.node:][: 1<<t.depth-1 : 1<<t.depth-1]
	r := tn[0]
	lgbRootLevels(tn, keys[int(r.col)*lgbKeyStride:][:len(o)], keys, r.thr, pos)
	if t.depth == 2 {
		for i, q := range pos {
			o[i] += lv[q-4]
		}
		return
	}
	for range t.depth - 3 {
		lgbMidLevel(tn, keys, pos)
	}
	lgbLastLevel(tn, keys, lv, o, pos)
}

// lgbAt returns the 1-based node q of the nodes from np.
func lgbAt(np unsafe.Pointer, q uint32) lgbNode {
	return *(*lgbNode)(unsafe.Add(np, uintptr(q)*8-8))
}

// lgbKeyAt returns row i's key in column col.
func lgbKeyAt(kp unsafe.Pointer, col uint32, i int) uint32 {
	return *(*uint32)(unsafe.Add(kp, (uintptr(col)*lgbKeyStride+uintptr(i))*4))
}

// lgbRootLevels takes every row through levels 0 and 1 (rk is the root's
// key column, rt its threshold).
//
//go:noinline
func lgbRootLevels(tn []lgbNode, rk, keys []uint32, rt uint32, pos []uint32) {
	np, kp := unsafe.Pointer(unsafe.SliceData(tn)), unsafe.Pointer(unsafe.SliceData(keys))
	rk = rk[:len(pos)]
	for i := range pos {
		q := 2 + lgbB2U(rk[i] >= rt)
		nd := lgbAt(np, q)
		pos[i] = 2*q + lgbB2U(lgbKeyAt(kp, nd.col, i) >= nd.thr)
	}
}

// lgbMidLevel takes every row one level down.
//
//go:noinline
func lgbMidLevel(tn []lgbNode, keys []uint32, pos []uint32) {
	np, kp := unsafe.Pointer(unsafe.SliceData(tn)), unsafe.Pointer(unsafe.SliceData(keys))
	for i, q := range pos {
		nd := lgbAt(np, q)
		pos[i] = 2*q + lgbB2U(lgbKeyAt(kp, nd.col, i) >= nd.thr)
	}
}

// lgbLastLevel takes every row through the last level and adds the leaf
// it reaches (position 2^depth+j is leaf j) to o.
//
//go:noinline
func lgbLastLevel(tn []lgbNode, keys []uint32, lv, o []float64, pos []uint32) {
	np, kp := unsafe.Pointer(unsafe.SliceData(tn)), unsafe.Pointer(unsafe.SliceData(keys))
	lp, nl := unsafe.Pointer(unsafe.SliceData(lv)), uintptr(len(lv))
	o = o[:len(pos)]
	for i, q := range pos {
		nd := lgbAt(np, q)
		c := 2*q + lgbB2U(lgbKeyAt(kp, nd.col, i) >= nd.thr)
		o[i] += *(*float64)(unsafe.Add(lp, uintptr(c)*8-nl*8))
	}
}
