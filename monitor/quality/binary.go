package quality

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// Defaults of Options: the one home of each.
const (
	// DefaultThreshold is Model Monitor's probability_threshold_attribute
	// default, and the alert threshold a score is usually read against.
	DefaultThreshold = 0.5
	// DefaultBins splits [0, 1] into bins of width 0.001: 16 KB per
	// accumulator, an AUC off by at most half the share of positive and
	// negative pairs that share a bin (AUCErrorBound, about 5e-4 times the
	// overlap of the two classes' score densities; doc.go has the
	// measured figures), and scores written with three decimals, as many
	// models' are, never share a bin with a different score.
	DefaultBins = 1000
	// MaxBins bounds the histogram (1 MiB per accumulator) and the state a
	// reader accepts.
	MaxBins = 1 << 16
	// minBins is the fewest bins that still order scores at all.
	minBins = 2
)

// Options configure a Binary accumulator. The zero value is the default.
type Options struct {
	// Threshold: a score >= Threshold predicts the positive class. 0 means
	// DefaultThreshold; otherwise it must be in (0, 1], the range where
	// clamping a score into [0, 1] never changes its predicted class.
	Threshold float64
	// Bins is the number of equal-width bins of the per-class score
	// histogram over [0, 1] that AUC and the curves come from. 0 means
	// DefaultBins; otherwise it must be in [2, MaxBins].
	Bins int
}

// resolved returns the options with the defaults filled in.
func (o Options) resolved() Options {
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.Bins == 0 {
		o.Bins = DefaultBins
	}
	return o
}

// Validate reports options NewBinary would refuse, naming the field, so a
// caller reading them from configuration can say which is wrong.
func (o Options) Validate() error {
	r := o.resolved()
	if !(r.Threshold > 0 && r.Threshold <= 1) {
		return fmt.Errorf("threshold: %g is not in (0, 1]", o.Threshold)
	}
	if r.Bins < minBins || r.Bins > MaxBins {
		return fmt.Errorf("bins: %d is not in [%d, %d]", o.Bins, minBins, MaxBins)
	}
	return nil
}

// Binary accumulates the quality of a binary classifier's scores against
// their labels: the confusion counts at the threshold, a per-class
// histogram of the scores (AUC, ROC and precision-recall curves), the
// Brier score's sums. Its size is fixed by Options.Bins whatever the
// number of rows, and two accumulators with the same options merge
// exactly, so a stream can keep one per period and worker and add them up
// later. Not safe for concurrent use.
type Binary struct {
	threshold float64
	bins      int
	fbins     float64 // bins as a float, for the bin index

	tp, fp, fn, tn int64
	missing        int64
	// pos and neg count the positive and negative rows whose clamped
	// score falls in each bin: bin i holds [i/bins, (i+1)/bins), the last
	// bin also 1.
	pos, neg []int64
	// sq and quad are the sums of e² and e⁴, e the clamped score minus the
	// label, in fixed point (fixedOne is 1): integers add up to the same
	// total in any order, so merging is exact.
	sq, quad uint128
}

// NewBinary returns an empty accumulator. It panics on options Validate
// refuses: they are the caller's programming error, or configuration the
// caller should have validated when reading it.
func NewBinary(o Options) *Binary {
	if err := o.Validate(); err != nil {
		panic("quality.NewBinary: " + err.Error())
	}
	r := o.resolved()
	return &Binary{
		threshold: r.Threshold,
		bins:      r.Bins,
		fbins:     float64(r.Bins),
		pos:       make([]int64, r.Bins),
		neg:       make([]int64, r.Bins),
	}
}

// Options returns the accumulator's options with the defaults filled in.
func (b *Binary) Options() Options { return Options{Threshold: b.threshold, Bins: b.bins} }

// Add counts one labelled score. A NaN or infinite score is counted as
// missing and left out of every metric; a finite score outside [0, 1] is
// read as the nearest end of it (which, with the threshold in (0, 1],
// never changes the predicted class).
func (b *Binary) Add(score float64, label bool) {
	if score-score != 0 { // NaN or ±Inf
		b.missing++
		return
	}
	predicted := score >= b.threshold
	s := min(max(score, 0), 1)
	i := min(int(s*b.fbins), b.bins-1)
	e := s
	switch {
	case label && predicted:
		b.tp++
	case label:
		b.fn++
	case predicted:
		b.fp++
	default:
		b.tn++
	}
	if label {
		e = 1 - s
		b.pos[i]++
	} else {
		b.neg[i]++
	}
	e2 := e * e
	b.sq.add(uint64(e2*fixedOne + 0.5))
	b.quad.add(uint64(e2*e2*fixedOne + 0.5))
}

// Count is the number of rows in the metrics (item_count): rows with a
// finite score.
func (b *Binary) Count() int64 { return b.tp + b.fp + b.fn + b.tn }

// Missing is the number of rows left out for a NaN or infinite score.
func (b *Binary) Missing() int64 { return b.missing }

// Reset empties the accumulator and keeps its options and memory.
func (b *Binary) Reset() {
	b.tp, b.fp, b.fn, b.tn, b.missing = 0, 0, 0, 0, 0
	clear(b.pos)
	clear(b.neg)
	b.sq, b.quad = uint128{}, uint128{}
}

// MemoryBytes is what the accumulator holds: the struct and its two
// histograms.
func (b *Binary) MemoryBytes() int {
	return int(unsafe.Sizeof(*b)) + 8*(cap(b.pos)+cap(b.neg))
}

// Merge adds o's rows to b, so that b is what one accumulator fed both
// sets of rows would be, exactly. The options must be equal: the error
// names the one that differs.
func (b *Binary) Merge(o *Binary) error {
	if o == nil {
		return nil
	}
	if b.threshold != o.threshold {
		return fmt.Errorf("merge binary: threshold %g and %g differ", b.threshold, o.threshold)
	}
	if b.bins != o.bins {
		return fmt.Errorf("merge binary: bins %d and %d differ", b.bins, o.bins)
	}
	b.tp += o.tp
	b.fp += o.fp
	b.fn += o.fn
	b.tn += o.tn
	b.missing += o.missing
	for i := range b.pos {
		b.pos[i] += o.pos[i]
		b.neg[i] += o.neg[i]
	}
	b.sq.addWide(o.sq)
	b.quad.addWide(o.quad)
	return nil
}

// AUCErrorBound bounds how far the AUC Statistics reports can be from the
// exact one (scikit-learn's roc_auc_score, Spark's areaUnderROC) on the
// same rows. Pairs of a positive and a negative row in different bins are
// ordered as their exact scores are; a pair in the same bin counts one
// half, as a tie does, where the exact AUC counts 0, ½ or 1. So the error
// is at most half the share of pairs that share a bin. NaN without both
// classes.
func (b *Binary) AUCErrorBound() float64 {
	p, n := float64(b.tp+b.fn), float64(b.fp+b.tn)
	if p == 0 || n == 0 {
		return math.NaN()
	}
	var same float64
	for i := range b.pos {
		same += float64(b.pos[i]) * float64(b.neg[i])
	}
	return 0.5 * same / (p * n)
}

// fixedOne is 1.0 in the fixed point of the Brier sums: 52 fractional
// bits hold e² and e⁴ in [0, 1] to within 2⁻⁵³ per row, below float64's
// own rounding of a mean, and a 128-bit sum cannot overflow before 2⁷⁶
// rows.
const fixedOne = 1 << 52

// uint128 is an unsigned 128-bit integer: a fixed-point sum.
type uint128 struct{ hi, lo uint64 }

func (u *uint128) add(v uint64) {
	var carry uint64
	u.lo, carry = bits.Add64(u.lo, v, 0)
	u.hi += carry
}

func (u *uint128) addWide(v uint128) {
	var carry uint64
	u.lo, carry = bits.Add64(u.lo, v.lo, 0)
	u.hi += v.hi + carry
}

// float is the sum in units of fixedOne.
func (u uint128) float() float64 {
	return (float64(u.hi)*(1<<64) + float64(u.lo)) / fixedOne
}

// errTooLarge is returned for fixed-point sums no set of rows can give.
var errTooLarge = errors.New("larger than the rows' count allows")

// check reports whether the sum is at most count times fixedOne, the most
// count rows can add up to.
func (u uint128) check(count int64) error {
	// count * fixedOne as 128 bits: count < 2^63, fixedOne = 2^52.
	hi, lo := bits.Mul64(uint64(count), fixedOne)
	if u.hi > hi || (u.hi == hi && u.lo > lo) {
		return errTooLarge
	}
	return nil
}
