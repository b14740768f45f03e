package monitor

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// The sketch parameters Model Monitor uses (Deequ's KLLSketch defaults).
const (
	DefaultK = 2048
	DefaultC = 0.64
)

// KLL is the quantile sketch Deequ's KLLSketch analyzer keeps
// (QuantileNonSample), so Model Monitor's serialized sketches continue here
// unchanged and ours continue there:
//
//   - level h holds items that each stand for 2^h values; level 0 takes the
//     updates; Data() is the levels in order, as statistics.json's "data";
//   - level h's capacity is 2·(⌈k·c^h/2⌉+1) (2050, 1314, 842, ... for
//     k=2048, c=0.64, never below 4) and the sketch's budget is the sum
//     over its levels;
//   - when the items exceed the budget, the lowest level at or above its
//     capacity is compacted: its items but the last one (if their number is
//     odd) are sorted, every other one from an offset goes up a level, and
//     the odd one stays;
//   - the offset is Deequ's deterministic coin (the random one is commented
//     out there): each level starts at 0 and flips after each odd-numbered
//     compaction (0, 1, 1, 0, 0, 1, 1, ...), so equal inputs give equal
//     sketches and errors of consecutive compactions tend to cancel;
//   - Merge appends the other's levels and compacts while the items reach
//     the budget, as Deequ's merge does.
//
// Weights are exact: Count() is the number of values seen. Ranks are
// approximate; see the package tests for the error measured.
type KLL struct {
	k int
	c float64
	// items holds every level in one buffer, the top level first and level
	// 0 last, so an update is an append and a compaction moves only the
	// levels below the compacted one. Level h is items[lo[h]:hi(h)].
	items []float64
	lo    []int
	caps  []int
	// each level's coin: compactions done and current offset
	compactions []uint32
	offsets     []uint8
	budget      int // sum of caps
	count       float64
	// errW bounds the rank error the compactions added, in weight: a
	// compaction at level h moves any rank by at most 2^h
	errW  float64
	radix []uint64 // sort scratch, reused

	// sorted view for queries, built on demand, dropped by Reset
	dirty bool
	view  []weighted // by value, w = cumulative weight up to the item
}

type weighted struct{ v, w float64 }

// NewKLL returns an empty sketch. k is the sketch size (Deequ's
// sketchSize), c the shrinking factor; k <= 0 or c <= 0 take Model
// Monitor's 2048 and 0.64. It panics on k or c outside the ranges
// KLLFromSketch accepts, which is a programming error.
func NewKLL(k int, c float64) *KLL {
	if k <= 0 {
		k = DefaultK
	}
	if c <= 0 {
		c = DefaultC
	}
	if err := checkParams(float64(k), c); err != nil {
		panic("monitor.NewKLL: " + err.Error())
	}
	s := &KLL{k: k, c: c}
	s.expand()
	return s
}

func checkParams(k, c float64) error {
	if !(c > 0 && c <= 1) {
		return fmt.Errorf("c: %g is not in (0, 1]", c)
	}
	if !(k >= minSketchK && k <= maxSketchK) || k != math.Trunc(k) {
		return fmt.Errorf("k: %g is not an integer in [%d, %d]", k, minSketchK, maxSketchK)
	}
	return nil
}

// K is the sketch size.
func (s *KLL) K() int { return s.k }

// C is the shrinking factor.
func (s *KLL) C() float64 { return s.c }

func (s *KLL) capacity(h int) int {
	return 2 * (int(math.Ceil(float64(s.k)*math.Pow(s.c, float64(h))/2)) + 1)
}

// hi is the end of level h in items.
func (s *KLL) hi(h int) int {
	if h == 0 {
		return len(s.items)
	}
	return s.lo[h-1]
}

func (s *KLL) level(h int) []float64 { return s.items[s.lo[h]:s.hi(h)] }

// expand adds an empty top level, in front of the others. The buffer
// grows by append as items arrive, so a rebuilt sketch with many empty
// levels costs nothing, and once it holds the budget's worth of items
// updates no longer grow it.
func (s *KLL) expand() {
	c := s.capacity(len(s.lo))
	s.caps = append(s.caps, c)
	s.lo = append(s.lo, 0)
	s.budget += c
	s.compactions = append(s.compactions, 0)
	s.offsets = append(s.offsets, 0)
}

// reserve makes the buffer's capacity at least n.
func (s *KLL) reserve(n int) {
	if cap(s.items) < n {
		s.items = slices.Grow(s.items, n-len(s.items))
	}
}

// Update adds one value. NaN is ignored (callers count it as missing).
func (s *KLL) Update(v float64) {
	if v != v {
		return
	}
	s.items = append(s.items, v)
	s.count++
	s.dirty = true
	if len(s.items) > s.budget {
		s.condense()
	}
}

// condense compacts the lowest level at or above its capacity. When the
// items exceed the budget one such level exists.
func (s *KLL) condense() {
	for h := range s.lo {
		if s.hi(h)-s.lo[h] >= s.caps[h] {
			if h+1 >= len(s.lo) {
				s.expand()
			}
			s.compact(h)
			return
		}
	}
}

// compact sorts level h (but its last item when their number is odd),
// appends every other item from the coin's offset to level h+1, which ends
// where level h starts, keeps the odd item, and closes the gap by moving
// the levels below.
func (s *KLL) compact(h int) {
	lo, hi := s.lo[h], s.hi(h)
	n := hi - lo
	even := n - n%2
	if s.compactions[h]%2 == 1 {
		s.offsets[h] = 1 - s.offsets[h]
	}
	s.compactions[h]++
	s.errW += math.Ldexp(1, h)
	off := int(s.offsets[h])
	buf := s.items[lo:hi]
	s.sort(buf[:even])
	half := 0
	for i := off; i < even; i += 2 {
		buf[half] = buf[i]
		half++
	}
	end := lo + half // level h+1 now ends here
	if n%2 == 1 {
		s.items[end] = buf[n-1]
		end++
	}
	s.lo[h] = lo + half
	gap := hi - end
	if gap == 0 {
		return
	}
	copy(s.items[end:], s.items[hi:])
	s.items = s.items[:len(s.items)-gap]
	for j := range h {
		s.lo[j] -= gap
	}
}

// sort orders a level's items. It is a least-significant-digit radix sort
// on the floats' order-preserving bit patterns, a byte per pass, with the
// eight histograms counted in one read and a pass skipped when all keys
// share its byte: a level holds a few thousand items, where this is
// several times faster than a comparison sort and keeps Update under
// 100 ns. The keys live in v's own memory and one scratch buffer.
func (s *KLL) sort(v []float64) {
	if len(v) < 64 {
		slices.Sort(v)
		return
	}
	if cap(s.radix) < len(v) {
		s.radix = make([]uint64, len(v))
	}
	a := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(v))), len(v))
	b := s.radix[:len(v)]
	var count [8][256]int32
	for i, u := range a {
		if u>>63 == 1 {
			u = ^u
		} else {
			u |= 1 << 63
		}
		a[i] = u
		for d := range 8 {
			count[d][byte(u>>(8*d))]++
		}
	}
	for d := range 8 {
		shift := uint(8 * d)
		c := &count[d]
		if int(c[byte(a[0]>>shift)]) == len(a) {
			continue
		}
		var sum int32
		for i, n := range c {
			c[i] = sum
			sum += n
		}
		for _, u := range a {
			j := byte(u >> shift)
			b[c[j]] = u
			c[j]++
		}
		a, b = b, a
	}
	out := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(v))), len(v))
	for i, u := range a {
		if u>>63 == 1 {
			u &^= 1 << 63
		} else {
			u = ^u
		}
		out[i] = u
	}
}

// Merge adds o's values to s: a sketch of the union of the two streams,
// within the sketch's error. Like Deequ's merge, it appends each of o's
// levels to s's and compacts while the items reach the budget; s keeps its
// parameters. o is not changed.
func (s *KLL) Merge(o *KLL) {
	if o == nil || len(o.items) == 0 {
		return
	}
	for len(s.lo) < len(o.lo) {
		s.expand()
	}
	merged := make([]float64, 0, max(s.budget+1, len(s.items)+len(o.items)))
	for h := len(s.lo) - 1; h >= 0; h-- {
		start := len(merged)
		merged = append(merged, s.level(h)...)
		if h < len(o.lo) {
			merged = append(merged, o.level(h)...)
		}
		s.lo[h] = start
	}
	s.items = merged
	s.count += o.count
	s.errW += o.errW
	s.dirty = true
	for len(s.items) >= s.budget {
		s.condense()
	}
}

// Count is the total weight: the number of values the sketch stands for.
func (s *KLL) Count() float64 { return s.count }

// ErrorBound is a guaranteed bound on the error of any rank (CDF times
// Count) as a share of Count: each compaction at level h moves a rank by
// at most 2^h, and the sketch adds these up, its merged sketches' too. It
// covers what happened since NewKLL or KLLFromSketch (a file does not
// carry its sketch's history). For k=2048 and c=0.64 it stays near 1.2% at
// a million values; the error measured is several times smaller.
func (s *KLL) ErrorBound() float64 {
	if s.count == 0 {
		return 0
	}
	return s.errW / s.count
}

// ForEach calls fn with every retained item and its weight.
func (s *KLL) ForEach(fn func(v, w float64)) {
	w := 1.0
	for h := range s.lo {
		for _, v := range s.level(h) {
			fn(v, w)
		}
		w *= 2
	}
}

// Data returns the levels, level 0 first, as statistics.json's sketch
// "data". The slices are copies.
func (s *KLL) Data() [][]float64 {
	out := make([][]float64, len(s.lo))
	for h := range s.lo {
		out[h] = append([]float64{}, s.level(h)...)
	}
	return out
}

// Sketch returns the sketch as statistics.json writes it.
func (s *KLL) Sketch() Sketch {
	return Sketch{Parameters: SketchParameters{C: s.c, K: float64(s.k)}, Data: s.Data()}
}

// KLLFromSketch rebuilds a sketch from statistics.json's sketch, written
// by Model Monitor or by us. It refuses parameters outside c in (0, 1] and
// integer k in [2, 65536], more than 60 levels or 2^22 items, and values
// that are not finite. A sketch holding more items than its budget is
// compacted down to it.
func KLLFromSketch(sk Sketch) (*KLL, error) {
	if err := sk.validate(); err != nil {
		return nil, fmt.Errorf("kll sketch: %w", err)
	}
	s := NewKLL(int(sk.Parameters.K), sk.Parameters.C)
	for len(s.lo) < len(sk.Data) {
		s.expand()
	}
	total := 0
	for _, level := range sk.Data {
		total += len(level)
	}
	s.reserve(total)
	for h := len(s.lo) - 1; h >= 0; h-- {
		s.lo[h] = len(s.items)
		if h < len(sk.Data) {
			s.items = append(s.items, sk.Data[h]...)
			s.count += math.Ldexp(float64(len(sk.Data[h])), h)
		}
	}
	s.dirty = true
	for len(s.items) > s.budget {
		s.condense()
	}
	return s, nil
}

// Reset empties the sketch to the state NewKLL gives (one level, its
// coin at the start), keeping the item buffer, and drops the query view.
func (s *KLL) Reset() {
	s.items = s.items[:0]
	s.lo, s.caps = s.lo[:1], s.caps[:1]
	s.compactions, s.offsets = s.compactions[:1], s.offsets[:1]
	s.lo[0], s.compactions[0], s.offsets[0] = 0, 0, 0
	s.budget = s.caps[0]
	s.count, s.errW, s.dirty, s.view = 0, 0, true, nil
}

// prepare builds the sorted view queries read: distinct values with their
// cumulative weights.
func (s *KLL) prepare() {
	if !s.dirty && s.view != nil {
		return
	}
	v := s.view[:0]
	s.ForEach(func(x, w float64) { v = append(v, weighted{x, w}) })
	slices.SortFunc(v, func(a, b weighted) int { return cmp.Compare(a.v, b.v) })
	out, total := 0, 0.0
	for _, it := range v {
		total += it.w
		if out > 0 && v[out-1].v == it.v {
			v[out-1].w = total
			continue
		}
		v[out] = weighted{it.v, total}
		out++
	}
	s.view, s.dirty = v[:out:out], false
	if s.view == nil {
		s.view = []weighted{}
	}
}

// dropView frees the query view; the next query builds it again.
func (s *KLL) dropView() { s.view, s.dirty = nil, true }

// rank is the weight of items <= x (inclusive) or < x (exclusive).
func (s *KLL) rank(x float64, inclusive bool) float64 {
	s.prepare()
	var i int
	if inclusive {
		i = sortSearch(len(s.view), func(j int) bool { return s.view[j].v > x })
	} else {
		i = sortSearch(len(s.view), func(j int) bool { return s.view[j].v >= x })
	}
	if i == 0 {
		return 0
	}
	return s.view[i-1].w
}

func sortSearch(n int, after func(int) bool) int {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if after(m) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// CDF is the share of the weight on items <= x; NaN for an empty sketch.
func (s *KLL) CDF(x float64) float64 {
	if s.count == 0 {
		return math.NaN()
	}
	return s.rank(x, true) / s.count
}

// Quantile is the smallest retained item whose CDF is at least q (q
// clamped to [0, 1]; 0 gives the smallest item); NaN for an empty sketch.
func (s *KLL) Quantile(q float64) float64 {
	if s.count == 0 || q != q {
		return math.NaN()
	}
	s.prepare()
	target := min(max(q, 0), 1) * s.count
	i := sortSearch(len(s.view), func(j int) bool { return s.view[j].w >= target })
	if i >= len(s.view) {
		i = len(s.view) - 1
	}
	return s.view[i].v
}

// Buckets are n equal-width buckets between lo and hi (the column's exact
// min and max) with counts from the sketch, as Deequ's KLLSketch analyzer
// renders them: bucket i counts the weight in [lower, upper), the last one
// in [lower, upper].
func (s *KLL) Buckets(lo, hi float64, n int) []Bucket {
	out := make([]Bucket, n)
	edge := func(i int) float64 {
		e := lo + (hi-lo)*float64(i)/float64(n) // Deequ's arithmetic
		if !finite(e) {
			// Bounds near float64's limits overflow hi-lo: interpolate
			// instead, so the buckets stay writable.
			f := float64(i) / float64(n)
			e = min(max(lo*(1-f)+hi*f, lo), hi)
		}
		return e
	}
	for i := range n {
		l, u := edge(i), edge(i+1)
		var c float64
		if i == n-1 {
			c = s.rank(u, true) - s.rank(l, false)
		} else {
			c = s.rank(u, false) - s.rank(l, false)
		}
		out[i] = Bucket{LowerBound: l, UpperBound: u, Count: c}
	}
	return out
}

// MemoryBytes is what the sketch holds: its item buffer and sort scratch
// at their capacities, the per-level slices, the query view while one is
// built, and the fixed part.
func (s *KLL) MemoryBytes() int {
	n := int(unsafe.Sizeof(*s))
	n += 8*cap(s.items) + 8*cap(s.radix) + 16*cap(s.view)
	n += 8*cap(s.lo) + 8*cap(s.caps) + 4*cap(s.compactions) + cap(s.offsets)
	return n
}

// addWeighted adds v with an integer weight w, one item per set bit of w
// at the level of that bit, so the sketch's weights stay exact. It is how
// a file's buckets without a sketch become a sketch.
func (s *KLL) addWeighted(v, w float64) {
	if !(w >= 1) || !finite(v) {
		return
	}
	n := uint64(min(w, 1<<62))
	s.count += float64(n)
	for h := 0; n != 0; h++ {
		for len(s.lo) <= h {
			s.expand()
		}
		if n&1 == 1 {
			s.insertAt(h, v)
		}
		n >>= 1
	}
	s.dirty = true
	for len(s.items) > s.budget {
		s.condense()
	}
}

// insertAt puts v at the end of level h, moving the levels below.
func (s *KLL) insertAt(h int, v float64) {
	at := s.hi(h)
	s.items = slices.Insert(s.items, at, v)
	for j := range h {
		s.lo[j]++
	}
}
