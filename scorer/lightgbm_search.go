package scorer

import (
	"math"
	"math/bits"
)

// Rank lookup.
//
// A numerical key is the rank of x among its column's sorted thresholds.
// A plain binary search over a column's few hundred thresholds takes
// about ten dependent steps per input. Instead, a per-column table of
// lgbBuckets(n) entries, indexed by bucket(x) = (x-lo)*scale clamped to
// the table, gives how many thresholds lie in earlier buckets; the rank
// is that plus a branch-free search of a fixed width w, the most
// thresholds any bucket holds. This is exact for every double, whatever
// the rounding, because bucket is non-decreasing in x: a threshold in an
// earlier bucket is below x and one in a later bucket above it. The
// thresholds are stored again with w +Inf after them, so the window never
// leaves them. Buckets linear in x (not in its bits, which are
// logarithmic: one bucket per binade put every threshold in [1,2) in one
// bucket) keep w small for thresholds spread over a range.

// lgbSearch is a column's rank lookup.
type lgbSearch struct {
	lo, scale, last float64 // bucket(x) = min(max((x-lo)*scale, 0), last)
	w               uint32  // window width, at least 1
	table           uint32  // the buckets are forest.buckets[table:table+last+1]
	ts              uint32  // the padded thresholds start at forest.search[ts]
}

// bucket is x's bucket (x not NaN). lo is finite and scale finite and
// positive, so (x-lo)*scale is never NaN.
func (s *lgbSearch) bucket(x float64) uint32 {
	return uint32(min(max((x-s.lo)*s.scale, 0), s.last))
}

// lgbBuckets is how many buckets a column of n thresholds gets: about two
// per threshold, a power of two, at most 4096.
func lgbBuckets(n int) int {
	return 1 << min(bits.Len(uint(n))+1, 12)
}

// addSearch builds the rank lookup of the sorted, distinct thresholds ts,
// counting its bytes.
func (f *lgbForest) addSearch(ts []float64) (lgbSearch, error) {
	nb := 1
	if len(ts) > 0 {
		nb = lgbBuckets(len(ts))
	}
	s := lgbSearch{last: float64(nb - 1), table: uint32(len(f.buckets)), scale: 1}
	var finite []float64
	for _, t := range ts {
		if !math.IsInf(t, 0) {
			finite = append(finite, t)
		}
	}
	if len(finite) > 1 {
		s.lo = finite[0]
		// Halves, so the span cannot overflow.
		if sc := float64(nb) / 2 / (finite[len(finite)-1]/2 - s.lo/2); sc > 0 && !math.IsInf(sc, 0) {
			s.scale = sc
		}
	}
	counts := make([]uint32, nb)
	for _, t := range ts {
		counts[s.bucket(t)]++
	}
	w := uint32(1)
	below := uint32(0)
	for i, c := range counts {
		w = max(w, c)
		counts[i] = below
		below += c
	}
	s.w = w
	if err := f.account(int64(nb)*4 + (int64(len(ts))+int64(w))*8); err != nil {
		return s, err
	}
	f.buckets = append(f.buckets, counts...)
	s.ts = uint32(len(f.search))
	f.search = append(f.search, ts...)
	for range w {
		f.search = append(f.search, math.Inf(1))
	}
	return s, nil
}

// keys sets kc[i] to the key of xs[i] in numerical column col, plus the
// column's add (key is that of one value).
func (f *lgbForest) keys(col *lgbColumn, xs []float64, kc []uint32) {
	kc = kc[:len(xs)]
	for i, x := range xs {
		kc[i] = f.key(col, x)
	}
}

// key is the key of x in numerical column col, plus the column's add,
// found without a data-dependent branch: NaN and values within
// lgbZeroThreshold of 0 become 0 (by their bits), then the key is their
// rank, or the missing key when the column's mode counts them missing.
func (f *lgbForest) key(col *lgbColumn, x float64) uint32 {
	s := &col.search
	b := math.Float64bits(x)
	a := b &^ (1 << 63)
	nan, small := lgbB2U(a > 0x7FF0000000000000), lgbB2U(a <= math.Float64bits(lgbZeroThreshold))
	v := math.Float64frombits(b &^ -uint64(nan|small))
	base := f.buckets[s.table+uint32(min(max((v-s.lo)*s.scale, 0), s.last))]
	win := f.search[s.ts+base:][:s.w]
	j := 0
	for n := len(win); n > 1; {
		half := n >> 1
		j += half & -int(lgbB2U(win[j+half] < v))
		n -= half
	}
	r := base + uint32(j) + lgbB2U(win[j] < v)
	return (r | -nan&-col.missNaN | -small&-col.missSmall) + uint32(col.add)
}
