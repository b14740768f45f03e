package scorer

import (
	"math"
	"unsafe"
)

func (f *lgbForest) marginOutputs() int     { return f.numGroup }
func (f *lgbForest) noContributions() error { return f.noContrib }

// lgbB2U is 1 for true, without a branch.
func lgbB2U(b bool) uint32 { return uint32(*(*uint8)(unsafe.Pointer(&b))) }

// catKey is the key of input x in categorical column col.
func lgbCatKey(x float64) uint32 {
	// LightGBM truncates to int (x86 gives INT_MIN, a negative category,
	// beyond int32); a negative category goes right. Values within
	// lgbZeroThreshold of 0 truncate to category 0 as LightGBM's
	// prediction API, which drops them, reads them.
	if x > -1 && x < 1<<31 {
		return uint32(int32(x))
	}
	return lgbMissing
}

// rowKeys sets one row's keys: of x when set, else of row i of cols.
func (f *lgbForest) rowKeys(keys []uint32, cols [][]float64, i int, x []float64) {
	for c := range f.cols {
		col := &f.cols[c]
		if col.src >= 0 {
			keys[c] = keys[col.src] + 1
			continue
		}
		var v float64
		if x != nil {
			v = x[col.feature]
		} else {
			v = cols[col.feature][i]
		}
		if col.mode == lgbColCat {
			keys[c] = lgbCatKey(v)
			continue
		}
		keys[c] = f.key(col, v)
	}
}

// lgbRow reads a row's raw inputs, for linear leaves: x when set, else
// cols[feature][i].
type lgbRow struct {
	cols [][]float64
	x    []float64
	i    int
}

func (r lgbRow) value(f int32) float64 {
	v := 0.0
	if r.x != nil {
		v = r.x[f]
	} else {
		v = r.cols[f][r.i]
	}
	if math.Abs(v) <= lgbZeroThreshold {
		v = 0
	}
	return v
}

// lgbKeys is one row's keys in a block of column-major keys: column c of
// the row is k[c*stride+i]. A lone row's keys are k itself (stride 1, i 0).
type lgbKeys struct {
	k      []uint32
	stride int
	i      int
}

// lgbChild returns the child of split nd for a row whose key in nd's
// column is key.
func lgbChild(nd *lgbSNode, key uint32, words []uint32) int32 {
	var right bool
	if nd.fa&1 == 0 {
		right = key >= nd.thr
	} else {
		w := key >> 5
		right = w >= nd.ncat || words[nd.thr+w]>>(key&31)&1 == 0
	}
	if right {
		return nd.right
	}
	return nd.left
}

func (st *lgbSlowTree) leafIndex(k lgbKeys, words []uint32) int32 {
	if len(st.nodes) == 0 {
		return 0
	}
	kk, stride := k.k[k.i:], k.stride
	n := int32(0)
	for n >= 0 {
		nd := &st.nodes[n]
		n = lgbChild(nd, kk[int(nd.fa>>1)*stride], words)
	}
	return ^n
}

func (st *lgbSlowTree) output(k lgbKeys, words []uint32, r lgbRow) float64 {
	leaf := st.leafIndex(k, words)
	if st.linear != nil {
		return st.linear.output(leaf, st.leaf[leaf], r)
	}
	return st.leaf[leaf]
}

// output is a linear leaf's value as LightGBM's Tree::Predict computes it:
// the leaf's constant plus its coefficients times the inputs, or the
// plain leaf value when one of those inputs is missing.
func (lin *lgbLinearLeaves) output(leaf int32, leafValue float64, r lgbRow) float64 {
	out := lin.leafConst[leaf]
	for j, f := range lin.features[leaf] {
		v := r.value(f)
		if v != v {
			return leafValue
		}
		out += lin.coeff[leaf][j] * v
	}
	return out
}

// anyMissing reports whether one of a linear leaf's inputs is NaN (the
// leaf then outputs its plain value).
func (lin *lgbLinearLeaves) anyMissing(leaf int32, r lgbRow) bool {
	for _, f := range lin.features[leaf] {
		if v := r.value(f); v != v {
			return true
		}
	}
	return false
}

func (f *lgbForest) predict(cols [][]float64, n int, out [][]float64, s *Scratch, margins bool) {
	nc := max(len(f.cols), 1)
	// A block's keys, column-major (column c of row i at c*lgbKeyStride+i,
	// so rows reading the same column read neighbouring keys), then each
	// row's position in the tree being walked, then one row's keys side
	// by side, for the walks of a single row.
	if need := nc*lgbKeyStride + lgbBlockRows + nc; cap(s.keys) < need {
		s.keys = make([]uint32, need)
	}
	keys := s.keys[:nc*lgbKeyStride]
	pos := s.keys[nc*lgbKeyStride : nc*lgbKeyStride+lgbBlockRows]
	row := s.keys[nc*lgbKeyStride+lgbBlockRows : nc*lgbKeyStride+lgbBlockRows+nc]
	if n < 4 {
		for i := range n {
			f.rowKeys(row, cols, i, nil)
			for g := range f.numGroup {
				out[g][i] = 0
			}
			f.addRow(row, lgbRow{cols: cols, i: i}, out, i)
			f.finish(out, i, 1, margins)
		}
		return
	}
	for start := 0; start < n; start += lgbBlockRows {
		b := min(lgbBlockRows, n-start)
		for c := range f.cols {
			col := &f.cols[c]
			kc := keys[c*lgbKeyStride:][:b]
			if col.src >= 0 {
				for i, k := range keys[int(col.src)*lgbKeyStride:][:b] {
					kc[i] = k + 1
				}
				continue
			}
			xs := cols[col.feature][start : start+b]
			if col.mode == lgbColCat {
				for i, x := range xs {
					kc[i] = lgbCatKey(x)
				}
				continue
			}
			f.keys(col, xs, kc)
		}
		for g := range f.numGroup {
			clear(out[g][start : start+b])
		}
		f.addTrees(keys, pos, row, cols, start, b, out)
		f.finish(out, start, b, margins)
	}
}

// addTrees adds every tree's output for the b rows from start (keys
// column-major) to out, tree by tree in model order as LightGBM sums
// them: a complete tree level by level over the rows (every row one level
// down per pass, so the loads of many rows overlap), a compact tree four
// rows at a time, then the last b%4 rows one at a time through all trees.
func (f *lgbForest) addTrees(keys, posBuf, row []uint32, cols [][]float64, start, b int, out [][]float64) {
	const stride = lgbKeyStride
	if len(posBuf) < b || b > lgbBlockRows || len(keys) < len(f.cols)*stride {
		panic("scorer: lightgbm addTrees: block larger than its key columns")
	}
	n4 := b &^ 3
	for ti := 0; ti < len(f.trees) && n4 > 0; ti++ {
		t := &f.trees[ti]
		o := out[t.group][start : start+n4]
		switch t.layout {
		case lgbBranching:
			st := &f.slow[ti]
			for i := range o {
				o[i] += st.output(lgbKeys{k: keys, stride: stride, i: i}, f.catWords, lgbRow{cols: cols, i: start + i})
			}
			continue
		case lgbCompact:
			f.addCompact4(t, keys, o)
			continue
		}
		f.addCompleteLevels(t, keys, o, posBuf[:n4])
	}
	for i := n4; i < b; i++ {
		for c := range row {
			row[c] = keys[c*stride+i]
		}
		f.addRow(row, lgbRow{cols: cols, i: start + i}, out, start+i)
	}
}

// addRow adds every tree's output for one row to out[group][i], in model
// order, eight complete or four compact trees at a time where it can
// (their walks overlap in the CPU).
func (f *lgbForest) addRow(k []uint32, r lgbRow, out [][]float64, i int) {
	trees, nodes := f.trees, f.nodes
	t := 0
	for t < len(trees) {
		if trees[t].layout == lgbCompact && trees[t].run >= 4 {
			f.addCompactTrees4(trees[t:t+4], k, out, i)
			t += 4
			continue
		}
		if trees[t].layout != lgbComplete || trees[t].run < 8 {
			tr := &trees[t]
			switch tr.layout {
			case lgbComplete:
				p := lgbFinishWalk(nodes[tr.node:], k, 0, tr.depth)
				out[tr.group][i] += f.leaf[tr.lbase+p]
			case lgbCompact:
				out[tr.group][i] += f.leaf[tr.leaf+lgbCompactWalk(f.cnodes[tr.node:], k)]
			default:
				out[tr.group][i] += f.slow[t].output(lgbKeys{k: k, stride: 1}, f.catWords, r)
			}
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
			p0 = 2*p0 + 1 + lgbB2U(k[a0.col] >= a0.thr)
			p1 = 2*p1 + 1 + lgbB2U(k[a1.col] >= a1.thr)
			p2 = 2*p2 + 1 + lgbB2U(k[a2.col] >= a2.thr)
			p3 = 2*p3 + 1 + lgbB2U(k[a3.col] >= a3.thr)
			p4 = 2*p4 + 1 + lgbB2U(k[a4.col] >= a4.thr)
			p5 = 2*p5 + 1 + lgbB2U(k[a5.col] >= a5.thr)
			p6 = 2*p6 + 1 + lgbB2U(k[a6.col] >= a6.thr)
			p7 = 2*p7 + 1 + lgbB2U(k[a7.col] >= a7.thr)
		}
		ps := [8]uint32{
			lgbFinishWalk(n0, k, p0, tr[0].depth-d), lgbFinishWalk(n1, k, p1, tr[1].depth-d),
			lgbFinishWalk(n2, k, p2, tr[2].depth-d), lgbFinishWalk(n3, k, p3, tr[3].depth-d),
			lgbFinishWalk(n4, k, p4, tr[4].depth-d), lgbFinishWalk(n5, k, p5, tr[5].depth-d),
			lgbFinishWalk(n6, k, p6, tr[6].depth-d), lgbFinishWalk(n7, k, p7, tr[7].depth-d),
		}
		for j := range ps {
			out[tr[j].group][i] += f.leaf[tr[j].lbase+ps[j]]
		}
		t += 8
	}
}

// addCompact4 adds a compact tree's leaf values to o for every row of the
// block but the last len(o)%4, four rows at a time: each step moves all
// four (a row at a leaf stays there), until all four are at leaves.
func (f *lgbForest) addCompact4(t *lgbTree, keys []uint32, o []float64) {
	tn := f.cnodes[t.node:]
	lv := f.leaf[t.leaf:]
	for i := 0; i+4 <= len(o); i += 4 {
		var p0, p1, p2, p3 uint32
		for {
			n0, n1, n2, n3 := tn[p0], tn[p1], tn[p2], tn[p3]
			if n0.thr|n1.thr|n2.thr|n3.thr == 0 {
				break
			}
			p0 = n0.kids + lgbB2U(keys[int(n0.col)*lgbKeyStride+i] >= n0.thr)
			p1 = n1.kids + lgbB2U(keys[int(n1.col)*lgbKeyStride+i+1] >= n1.thr)
			p2 = n2.kids + lgbB2U(keys[int(n2.col)*lgbKeyStride+i+2] >= n2.thr)
			p3 = n3.kids + lgbB2U(keys[int(n3.col)*lgbKeyStride+i+3] >= n3.thr)
		}
		a := o[i : i+4 : i+4]
		a[0] += lv[p0]
		a[1] += lv[p1]
		a[2] += lv[p2]
		a[3] += lv[p3]
	}
}

// addCompactTrees4 adds four compact trees' leaf values for one row,
// walking them together until all four are at leaves.
func (f *lgbForest) addCompactTrees4(tr []lgbTree, k []uint32, out [][]float64, i int) {
	tr = tr[:4:4]
	t0, t1, t2, t3 := f.cnodes[tr[0].node:], f.cnodes[tr[1].node:], f.cnodes[tr[2].node:], f.cnodes[tr[3].node:]
	var p0, p1, p2, p3 uint32
	for {
		n0, n1, n2, n3 := t0[p0], t1[p1], t2[p2], t3[p3]
		if n0.thr|n1.thr|n2.thr|n3.thr == 0 {
			break
		}
		p0 = n0.kids + lgbB2U(k[n0.col] >= n0.thr)
		p1 = n1.kids + lgbB2U(k[n1.col] >= n1.thr)
		p2 = n2.kids + lgbB2U(k[n2.col] >= n2.thr)
		p3 = n3.kids + lgbB2U(k[n3.col] >= n3.thr)
	}
	out[tr[0].group][i] += f.leaf[tr[0].leaf+p0]
	out[tr[1].group][i] += f.leaf[tr[1].leaf+p1]
	out[tr[2].group][i] += f.leaf[tr[2].leaf+p2]
	out[tr[3].group][i] += f.leaf[tr[3].leaf+p3]
}

// lgbCompactWalk returns the leaf slot a row reaches in a compact tree.
func lgbCompactWalk(tn []lgbCNode, k []uint32) uint32 {
	var p uint32
	for {
		n := tn[p]
		if n.thr == 0 {
			return p
		}
		p = n.kids + lgbB2U(k[n.col] >= n.thr)
	}
}

func lgbFinishWalk(tn []lgbNode, k []uint32, p, steps uint32) uint32 {
	for range steps {
		nd := tn[p]
		p = 2*p + 1 + lgbB2U(k[nd.col] >= nd.thr)
	}
	return p
}

// finish averages (random forests) and converts raw scores as LightGBM's
// objective does (ConvertOutput), in place.
func (f *lgbForest) finish(out [][]float64, start, b int, margins bool) {
	if f.avgDiv != 0 {
		for g := range f.numGroup {
			o := out[g][start : start+b]
			for i := range o {
				o[i] /= f.avgDiv
			}
		}
	}
	if margins {
		return
	}
	switch f.obj.link {
	case lgbSigmoid, lgbOVA:
		s := f.obj.sigmoid
		for g := range f.numGroup {
			o := out[g][start : start+b]
			for i, v := range o {
				o[i] = 1 / (1 + math.Exp(-s*v))
			}
		}
	case lgbExp:
		o := out[0][start : start+b]
		for i, v := range o {
			o[i] = math.Exp(v)
		}
	case lgbLog1pExp:
		o := out[0][start : start+b]
		for i, v := range o {
			o[i] = math.Log1p(math.Exp(v))
		}
	case lgbSignedSquare:
		o := out[0][start : start+b]
		for i, v := range o {
			sign := 0.0
			if v > 0 {
				sign = 1
			} else if v < 0 {
				sign = -1
			}
			o[i] = sign * v * v
		}
	case lgbSoftmax:
		for i := start; i < start+b; i++ {
			mx := out[0][i]
			for g := 1; g < f.numGroup; g++ {
				mx = max(mx, out[g][i])
			}
			sum := 0.0
			for g := range f.numGroup {
				e := math.Exp(out[g][i] - mx)
				out[g][i] = e
				sum += e
			}
			for g := range f.numGroup {
				out[g][i] /= sum
			}
		}
	}
}

// contributions attributes one row's raw score for output k to its inputs
// by the path (Saabas) method on LightGBM's internal values: each split on
// input j adds value(child) - value(node) to j, where a split's value is
// its internal_value and a leaf's its leaf_value; the bias is the sum of
// the root values. A linear leaf adds coefficient times input to each of
// its inputs and its constant less its leaf value to the bias. They add up
// to the raw score (averaged for random forests). This is not LightGBM's
// pred_contrib, which computes TreeSHAP values.
func (f *lgbForest) contributions(dst, x []float64, k int, s *Scratch) error {
	if f.noContrib != nil {
		return f.noContrib
	}
	nc := max(len(f.cols), 1)
	if cap(s.keys) < nc {
		s.keys = make([]uint32, nc)
	}
	keys := s.keys[:nc]
	f.rowKeys(keys, nil, 0, x)
	clear(dst)
	bias := len(dst) - 1
	r := lgbRow{x: x}
	for ti := range f.trees {
		if int(f.trees[ti].group) != k {
			continue
		}
		st := &f.slow[ti]
		var leaf int32
		var cur float64
		if len(st.nodes) == 0 {
			cur = st.leaf[0]
			dst[bias] += cur
		} else {
			cur = st.value[0]
			dst[bias] += cur
			n := int32(0)
			for n >= 0 {
				nd := &st.nodes[n]
				next := lgbChild(nd, keys[nd.fa>>1], f.catWords)
				var v float64
				if next >= 0 {
					v = st.value[next]
				} else {
					v = st.leaf[^next]
				}
				dst[st.feat[n]] += v - cur
				cur, n = v, next
			}
			leaf = ^n
		}
		if lin := st.linear; lin != nil && !lin.anyMissing(leaf, r) {
			for j, fe := range lin.features[leaf] {
				dst[fe] += lin.coeff[leaf][j] * r.value(fe)
			}
			dst[bias] += lin.leafConst[leaf] - cur
		}
	}
	if f.avgDiv != 0 {
		for j := range dst {
			dst[j] /= f.avgDiv
		}
	}
	return nil
}
