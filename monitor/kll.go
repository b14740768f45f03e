package monitor

import (
	"fmt"
	"math"
	"slices"
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
	k      int
	c      float64
	levels [][]float64
	caps   []int
	// state of each level's coin: compactions done and current offset
	compactions []uint32
	offsets     []uint8
	size        int // items over all levels
	budget      int // sum of caps
	count       float64

	// sorted view for queries, rebuilt when dirty
	dirty   bool
	vals    []float64
	cum     []float64 // cumulative weight up to and including vals[i]
	scratch []weighted
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

// expand adds a level. Level buffers are allocated with room for their
// capacity plus the slack the budget allows, so steady-state updates do
// not grow them.
func (s *KLL) expand() {
	h := len(s.levels)
	c := s.capacity(h)
	s.caps = append(s.caps, c)
	s.budget += c
	room := c + 1
	if h == 0 {
		room = s.budget + 1
	}
	s.levels = append(s.levels, make([]float64, 0, room))
	s.compactions = append(s.compactions, 0)
	s.offsets = append(s.offsets, 0)
}

// Update adds one value. NaN is ignored (callers count it as missing).
func (s *KLL) Update(v float64) {
	if v != v {
		return
	}
	s.levels[0] = append(s.levels[0], v)
	s.size++
	s.count++
	s.dirty = true
	if s.size > s.budget {
		s.condense()
	}
}

// condense compacts the lowest level at or above its capacity. When the
// items exceed the budget one such level exists.
func (s *KLL) condense() {
	for h := range s.levels {
		if len(s.levels[h]) >= s.caps[h] {
			if h+1 >= len(s.levels) {
				s.expand()
			}
			s.compact(h)
			return
		}
	}
}

func (s *KLL) compact(h int) {
	buf := s.levels[h]
	n := len(buf)
	even := n - n%2
	if s.compactions[h]%2 == 1 {
		s.offsets[h] = 1 - s.offsets[h]
	}
	off := int(s.offsets[h])
	slices.Sort(buf[:even])
	up := s.levels[h+1]
	for i := off; i < even; i += 2 {
		up = append(up, buf[i])
	}
	s.levels[h+1] = up
	if n%2 == 1 {
		buf[0] = buf[n-1]
		s.levels[h] = buf[:1]
	} else {
		s.levels[h] = buf[:0]
	}
	s.size -= even - even/2
	s.compactions[h]++
}

// Merge adds o's values to s: a sketch of the union of the two streams,
// within the sketch's error. s keeps its parameters. o is not changed.
func (s *KLL) Merge(o *KLL) {
	if o == nil || o.size == 0 {
		return
	}
	for len(s.levels) < len(o.levels) {
		s.expand()
	}
	n := len(o.levels)
	for h := range n {
		s.levels[h] = append(s.levels[h], o.levels[h][:len(o.levels[h]):len(o.levels[h])]...)
	}
	s.size += o.size
	s.count += o.count
	s.dirty = true
	for s.size >= s.budget {
		s.condense()
	}
}

// Count is the total weight: the number of values the sketch stands for.
func (s *KLL) Count() float64 { return s.count }

// ForEach calls fn with every retained item and its weight.
func (s *KLL) ForEach(fn func(v, w float64)) {
	w := 1.0
	for _, level := range s.levels {
		for _, v := range level {
			fn(v, w)
		}
		w *= 2
	}
}

// Data returns the levels, level 0 first, as statistics.json's sketch
// "data". The slices are copies.
func (s *KLL) Data() [][]float64 {
	out := make([][]float64, len(s.levels))
	for h, level := range s.levels {
		out[h] = slices.Clone(level)
		if out[h] == nil {
			out[h] = []float64{}
		}
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
	for len(s.levels) < len(sk.Data) {
		s.expand()
	}
	w := 1.0
	for h, level := range sk.Data {
		s.levels[h] = append(s.levels[h], level...)
		s.size += len(level)
		s.count += w * float64(len(level))
		w *= 2
	}
	s.dirty = true
	for s.size > s.budget {
		s.condense()
	}
	return s, nil
}

// Reset empties the sketch and keeps its buffers.
func (s *KLL) Reset() {
	for h := range s.levels {
		s.levels[h] = s.levels[h][:0]
		s.compactions[h] = 0
		s.offsets[h] = 0
	}
	s.size, s.count, s.dirty = 0, 0, true
}

// prepare builds the sorted view queries read.
func (s *KLL) prepare() {
	if !s.dirty && s.vals != nil {
		return
	}
	s.scratch = s.scratch[:0]
	s.ForEach(func(v, w float64) { s.scratch = append(s.scratch, weighted{v, w}) })
	slices.SortFunc(s.scratch, func(a, b weighted) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	s.vals, s.cum = s.vals[:0], s.cum[:0]
	total := 0.0
	for _, it := range s.scratch {
		total += it.w
		if n := len(s.vals); n > 0 && s.vals[n-1] == it.v {
			s.cum[n-1] = total
			continue
		}
		s.vals = append(s.vals, it.v)
		s.cum = append(s.cum, total)
	}
	if s.vals == nil {
		s.vals = []float64{}
	}
	s.dirty = false
}

// rank is the weight of items <= x (inclusive) or < x (exclusive).
func (s *KLL) rank(x float64, inclusive bool) float64 {
	s.prepare()
	var i int
	if inclusive {
		i = sortSearch(s.vals, func(v float64) bool { return v > x })
	} else {
		i = sortSearch(s.vals, func(v float64) bool { return v >= x })
	}
	if i == 0 {
		return 0
	}
	return s.cum[i-1]
}

func sortSearch(vals []float64, after func(float64) bool) int {
	lo, hi := 0, len(vals)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if after(vals[m]) {
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
	i := sortSearch(s.cum, func(c float64) bool { return c >= target })
	if i >= len(s.vals) {
		i = len(s.vals) - 1
	}
	return s.vals[i]
}

// Buckets are n equal-width buckets between lo and hi (the column's exact
// min and max) with counts from the sketch, as Deequ's KLLSketch analyzer
// renders them: bucket i counts the weight in [lower, upper), the last one
// in [lower, upper].
func (s *KLL) Buckets(lo, hi float64, n int) []Bucket {
	out := make([]Bucket, n)
	for i := range n {
		l := lo + (hi-lo)*float64(i)/float64(n)
		u := lo + (hi-lo)*float64(i+1)/float64(n)
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

// MemoryBytes is what the sketch holds: its level buffers' capacities and
// the query view's, plus the fixed part.
func (s *KLL) MemoryBytes() int {
	n := 160 // the struct and slice headers
	for _, l := range s.levels {
		n += 24 + 8*cap(l)
	}
	n += 8*cap(s.caps) + 4*cap(s.compactions) + cap(s.offsets)
	n += 8*cap(s.vals) + 8*cap(s.cum) + 16*cap(s.scratch)
	return n
}

// addWeighted adds v with an integer weight w, one item per set bit of w
// at the level of that bit, so the sketch's weights stay exact. It is how
// a file's buckets without a sketch become a sketch.
func (s *KLL) addWeighted(v, w float64) {
	if !(w >= 1) || v != v {
		return
	}
	n := uint64(min(w, 1<<62))
	for h := 0; n != 0; h++ {
		if n&1 == 1 {
			for len(s.levels) <= h {
				s.expand()
			}
			s.levels[h] = append(s.levels[h], v)
			s.size++
		}
		n >>= 1
	}
	s.count += float64(uint64(min(w, 1<<62)))
	s.dirty = true
	for s.size > s.budget {
		s.condense()
	}
}
