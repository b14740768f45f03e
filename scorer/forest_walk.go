package scorer

import "unsafe"

// Batch traversal.
//
// A block of up to blockRows rows goes through one tree at a time, one level
// at a time: the heap position of every row of the block is kept in pos, and
// each level is a loop over the rows whose iterations do not depend on each
// other, so the CPU overlaps the loads of many rows (a node, then the key it
// names) instead of waiting on one row's chain of dependent loads. On the
// benchmark shapes (scorer/bench/compare.sh) that is 1.7-2 times the rows
// per second of walking four rows through a tree at once. Walking two
// levels per pass, or a whole row per iteration, measured slower, and so did
// QuickScorer's per-feature bitvectors (4-5 times slower): in XGBoost's
// nearly full trees about half of all nodes are false for a row, 30 mask
// updates per tree against 6 steps.
//
// Keys are column-major: keys[c<<keyShift+i] is column c of row i (fnode.col
// is c<<keyShift), so rows splitting on the same feature, as every row does at the root,
// read neighbouring keys, and a node's col is already the column's offset.
//
// Positions are 1-based in the kernels (children of q are 2q and 2q+1), which
// saves an add per step. The three kernels read nodes, keys and leaves
// without bounds checks (unsafe; 10-20 % of the walk's time). What makes
// that safe is checked before they run or when the tree is built:
//   - tn holds the tree's 2^depth-1 nodes and lv its 2^depth leaves (sliced,
//     so checked, in walkLevels); a row's position after d levels is below
//     2^(d+1), so every node read is in tn and every leaf in lv;
//   - every node's col is below 2*numFeature<<sh (addTree checks the
//     feature index; pass-through nodes have col 0), keys has
//     2*numFeature<<sh entries and pos at most 1<<sh rows (predictBlock
//     checks), so col+i is inside keys.
// go test -race instruments the pointer arithmetic (checkptr) as well.

// predictBlock adds every tree's leaf values to acc for the n rows of keys.
// acc holds numGroup runs of n float32 margins, initialised with the base
// margin; leaves are added tree by tree in model order, in float32, as
// XGBoost's CPU predictor does, so margins match it bit for bit. pos has
// room for n positions.
func (f *forest) predictBlock(keys []uint32, n int, acc []float32, pos []uint32) {
	sh := keyShift(f.numFeature)
	if n > 1<<sh || len(keys) < 2*f.numFeature<<sh {
		panic("scorer: predictBlock: block larger than its key columns")
	}
	pos = pos[:n]
	for ti := range f.trees {
		t := &f.trees[ti]
		ga := acc[int(t.group)*n:][:n]
		if t.slow >= 0 {
			ct := &f.slow[t.slow]
			for i := range ga {
				ga[i] += ct.walkCol(keys, sh, i)
			}
			continue
		}
		f.walkLevels(t, keys, ga, pos)
	}
}

// walkLevels adds tree t's leaf for every row to ga.
func (f *forest) walkLevels(t *ftree, keys []uint32, ga []float32, pos []uint32) {
	lv := f.leaf[t.leaf:][:1<<t.depth]
	if t.depth == 0 {
		v := lv[0]
		for i := range ga {
			ga[i] += v
		}
		return
	}
	tn := f.nodes[t.node:][:1<<t.depth-1]
	r := tn[0]
	rk := keys[r.col:][:len(ga)]
	if t.depth == 1 {
		lv = lv[:2]
		for i := range ga {
			ga[i] += lv[b2u(rk[i] >= r.thr)]
		}
		return
	}
	rootLevels(tn, rk, keys, r.thr, pos)
	if t.depth == 2 {
		for i, q := range pos {
			ga[i] += lv[q-4]
		}
		return
	}
	for range t.depth - 3 {
		midLevel(tn, keys, pos)
	}
	lastLevel(tn, keys, lv, ga, pos)
}

// at returns the 1-based node q of the nodes from np.
func at(np unsafe.Pointer, q uint32) fnode {
	return *(*fnode)(unsafe.Add(np, uintptr(q)*8-8))
}

// keyAt returns row i of the key column at col.
func keyAt(kp unsafe.Pointer, col uint32, i int) uint32 {
	return *(*uint32)(unsafe.Add(kp, (uintptr(col)+uintptr(i))*4))
}

// rootLevels takes every row through levels 0 and 1 (rk is the root's key
// column, rt its threshold).
//
//go:noinline
func rootLevels(tn []fnode, rk, keys []uint32, rt uint32, pos []uint32) {
	np, kp := unsafe.Pointer(unsafe.SliceData(tn)), unsafe.Pointer(unsafe.SliceData(keys))
	rk = rk[:len(pos)]
	for i := range pos {
		q := 2 + b2u(rk[i] >= rt)
		nd := at(np, q)
		pos[i] = 2*q + b2u(keyAt(kp, nd.col, i) >= nd.thr)
	}
}

// midLevel takes every row one level down.
//
//go:noinline
func midLevel(tn []fnode, keys []uint32, pos []uint32) {
	np, kp := unsafe.Pointer(unsafe.SliceData(tn)), unsafe.Pointer(unsafe.SliceData(keys))
	for i, q := range pos {
		nd := at(np, q)
		pos[i] = 2*q + b2u(keyAt(kp, nd.col, i) >= nd.thr)
	}
}

// lastLevel takes every row through the last level and adds the leaf it
// reaches (position 2^depth+j is leaf j).
//
//go:noinline
func lastLevel(tn []fnode, keys []uint32, lv []float32, ga []float32, pos []uint32) {
	np, kp := unsafe.Pointer(unsafe.SliceData(tn)), unsafe.Pointer(unsafe.SliceData(keys))
	lp, nl := unsafe.Pointer(unsafe.SliceData(lv)), uintptr(len(lv))
	ga = ga[:len(pos)]
	for i, q := range pos {
		nd := at(np, q)
		c := 2*q + b2u(keyAt(kp, nd.col, i) >= nd.thr)
		ga[i] += *(*float32)(unsafe.Add(lp, uintptr(c)*4-nl*4))
	}
}

// predictRow walks one row (its keys laid out by rowKeys) through eight
// trees at a time, adding in model order as the batch path does.
func (f *forest) predictRow(k []uint32, acc []float32, i, n int) {
	nodes, trees := f.nodes, f.trees
	sh := keyShift(f.numFeature)
	t := 0
	for t < len(trees) {
		if t+8 > len(trees) || !f.allFast(trees[t:t+8]) {
			f.addTree1(&trees[t], k, sh, acc, i, n)
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
			p0 = 2*p0 + 1 + b2u(k[a0.col>>sh] >= a0.thr)
			p1 = 2*p1 + 1 + b2u(k[a1.col>>sh] >= a1.thr)
			p2 = 2*p2 + 1 + b2u(k[a2.col>>sh] >= a2.thr)
			p3 = 2*p3 + 1 + b2u(k[a3.col>>sh] >= a3.thr)
			p4 = 2*p4 + 1 + b2u(k[a4.col>>sh] >= a4.thr)
			p5 = 2*p5 + 1 + b2u(k[a5.col>>sh] >= a5.thr)
			p6 = 2*p6 + 1 + b2u(k[a6.col>>sh] >= a6.thr)
			p7 = 2*p7 + 1 + b2u(k[a7.col>>sh] >= a7.thr)
		}
		f.addLeaf(&tr[0], finishWalk(n0, k, sh, p0, tr[0].depth-d), acc, i, n)
		f.addLeaf(&tr[1], finishWalk(n1, k, sh, p1, tr[1].depth-d), acc, i, n)
		f.addLeaf(&tr[2], finishWalk(n2, k, sh, p2, tr[2].depth-d), acc, i, n)
		f.addLeaf(&tr[3], finishWalk(n3, k, sh, p3, tr[3].depth-d), acc, i, n)
		f.addLeaf(&tr[4], finishWalk(n4, k, sh, p4, tr[4].depth-d), acc, i, n)
		f.addLeaf(&tr[5], finishWalk(n5, k, sh, p5, tr[5].depth-d), acc, i, n)
		f.addLeaf(&tr[6], finishWalk(n6, k, sh, p6, tr[6].depth-d), acc, i, n)
		f.addLeaf(&tr[7], finishWalk(n7, k, sh, p7, tr[7].depth-d), acc, i, n)
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

func (f *forest) addTree1(t *ftree, k []uint32, sh uint32, acc []float32, i, n int) {
	if t.slow >= 0 {
		acc[int(t.group)*n+i] += f.slow[t.slow].walk(k)
		return
	}
	f.addLeaf(t, finishWalk(f.nodes[t.node:], k, sh, 0, t.depth), acc, i, n)
}

func finishWalk(tn []fnode, k []uint32, sh, p, steps uint32) uint32 {
	for range steps {
		nd := tn[p]
		p = 2*p + 1 + b2u(k[nd.col>>sh] >= nd.thr)
	}
	return p
}
