package windowing

import (
	"cmp"
	"math/bits"
	"slices"
)

// qsketch is the state of one quantile feature in one pane: a deterministic
// mergeable quantile sketch, a hierarchy of compactors as in Manku,
// Rajagopalan and Lindsay (1998) and KLL (2016) without their randomness, so
// that a replay gives the same estimates bit for bit.
//
// Level 0 holds raw values (weight 1) as they come; level h holds values of
// weight 2^h. When a level reaches qsK values it is sorted and every other
// value (alternately the odd and the even positions) moves up one level
// with twice the weight. A pane of fewer than qsK values is therefore exact,
// and costs 8 bytes per value: the factory example's panes hold 10 to 60
// readings, where a t-digest held a fixed ~16 KiB per pane.
//
// Error bound: one compaction at level h moves the rank of any value by at
// most 2^h, and at most n/(qsK*2^h) compactions happen at level h, so the
// rank error of an estimate is at most L*n/qsK, where L (the number of
// levels above 0) is at most floor(log2(n/qsK))+1. See qsRankBound.
type qsketch struct {
	n   uint64      // total weight (values added)
	par uint32      // bit h: which half level h keeps at its next compaction
	buf []float64   // level 0
	up  [][]float64 // levels 1.. (nil until the first compaction)
}

// qsK is the capacity of a level: exact below 256 values, rank error at
// most 2.3% at 10^4 values, 3.5% at 10^5, 4.7% at 10^6 (qsRankBound).
const qsK = 256

// qsInitCap is the capacity of a level-0 buffer when it is first needed;
// buffers up to qsKeepCap are kept when a pane is recycled.
const (
	qsInitCap = 16
	qsKeepCap = 64
)

// qsRankBound is the largest rank error, as a fraction of n, of a sketch
// of n values: 0 below qsK values, then floor(log2(n/qsK)+1)/qsK.
func qsRankBound(n uint64) float64 {
	if n < qsK {
		return 0
	}
	return float64(bits.Len64(n/qsK)) / qsK
}

// bytes is the heap the sketch holds (its buffers; the struct itself lives
// in the operator's slice of sketches).
func (q *qsketch) bytes() int64 {
	b := int64(cap(q.buf))*8 + int64(cap(q.up))*24
	for _, l := range q.up {
		b += int64(cap(l)) * 8
	}
	return b
}

// add adds x (not NaN) and returns the change in bytes held.
func (q *qsketch) add(x float64) int64 {
	q.n++
	if len(q.buf) < cap(q.buf) && len(q.buf) < qsK-1 {
		q.buf = append(q.buf, x) // the common case: no growth
		return 0
	}
	before := q.bytes()
	if q.buf == nil {
		q.buf = make([]float64, 0, qsInitCap)
	}
	q.buf = append(q.buf, x)
	q.compact()
	return q.bytes() - before
}

// merge folds src into q and returns the change in bytes held by q.
func (q *qsketch) merge(src *qsketch) int64 {
	if src.n == 0 {
		return 0
	}
	before := q.bytes()
	q.n += src.n
	q.buf = append(q.buf, src.buf...)
	for h, l := range src.up {
		if len(l) == 0 {
			continue
		}
		for len(q.up) <= h {
			q.up = append(q.up, nil)
		}
		q.up[h] = append(q.up[h], l...)
	}
	q.compact()
	return q.bytes() - before
}

// gather folds src into q without compacting below qsAccMax values held:
// for the accumulator of a window, which is rebuilt for every row, so
// that its estimate adds no error to the panes' own (and costs no sort).
func (q *qsketch) gather(src *qsketch) {
	if src.n == 0 {
		return
	}
	q.n += src.n
	q.buf = append(q.buf, src.buf...)
	held := len(q.buf)
	for h, l := range src.up {
		for len(q.up) <= h {
			q.up = append(q.up, nil)
		}
		q.up[h] = append(q.up[h], l...)
	}
	for _, l := range q.up {
		held += len(l)
	}
	if held > qsAccMax {
		q.compact()
	}
}

// qsAccMax bounds the values an accumulator holds uncompacted (128 KiB).
const qsAccMax = 64 * qsK

// compact halves every level that reached qsK values, from the bottom up.
func (q *qsketch) compact() {
	for h := 0; ; h++ {
		var l []float64
		if h == 0 {
			l = q.buf
		} else if h-1 < len(q.up) {
			l = q.up[h-1]
		} else {
			return
		}
		if len(l) < qsK {
			continue
		}
		slices.Sort(l)
		m := len(l) &^ 1 // an odd value out stays at this level
		keep := int(q.par>>uint(h)) & 1
		q.par ^= 1 << uint(h)
		for len(q.up) <= h {
			q.up = append(q.up, nil)
		}
		for i := keep; i < m; i += 2 {
			q.up[h] = append(q.up[h], l[i])
		}
		rest := copy(l, l[m:])
		if h == 0 {
			q.buf = l[:rest]
		} else {
			q.up[h-1] = l[:rest]
		}
	}
}

// reset empties the sketch for a recycled pane. Small level-0 buffers are
// kept (a pane's usual size, so steady state allocates nothing); larger
// ones and upper levels go back to the garbage collector, so that one
// burst does not pin memory in the pool. It returns the change in bytes.
func (q *qsketch) reset() int64 {
	before := q.bytes()
	q.n, q.par = 0, 0
	if cap(q.buf) > qsKeepCap {
		q.buf = nil
	}
	q.buf = q.buf[:0]
	q.up = nil
	return q.bytes() - before
}

// weighted is one value of a sketch with its weight, for a query.
type weighted struct {
	x float64
	w uint64
}

// quantile returns the value of (0-based, weighted) rank
// min(n-1, floor(p*n)): for an exact sketch, the nearest-rank quantile of
// the values. scratch is reused across calls. n must be positive.
func (q *qsketch) quantile(p float64, scratch *[]weighted, fscratch *[]float64) float64 {
	r := uint64(float64(q.n) * p)
	if r > q.n-1 || p >= 1 {
		r = q.n - 1
	}
	exact := true
	for _, l := range q.up {
		exact = exact && len(l) == 0
	}
	if exact { // all weight 1: sort plain floats, the fast path
		f := append((*fscratch)[:0], q.buf...)
		*fscratch = f
		slices.Sort(f)
		return f[r]
	}
	s := (*scratch)[:0]
	for _, x := range q.buf {
		s = append(s, weighted{x, 1})
	}
	for h, l := range q.up {
		for _, x := range l {
			s = append(s, weighted{x, 1 << uint(h+1)})
		}
	}
	*scratch = s
	slices.SortFunc(s, func(a, b weighted) int { return cmp.Compare(a.x, b.x) })
	var cum uint64
	for _, v := range s {
		cum += v.w
		if cum > r {
			return v.x
		}
	}
	return s[len(s)-1].x
}

// clearKeep empties the sketch and keeps all its buffers: for the
// operator's accumulators, reused for every window emitted.
func (q *qsketch) clearKeep() {
	q.n, q.par = 0, 0
	q.buf = q.buf[:0]
	for i := range q.up {
		q.up[i] = q.up[i][:0]
	}
}
