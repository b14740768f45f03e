package scorer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The bucketed rank lookup counts exactly the thresholds below x (NaN and
// values within lgbZeroThreshold of 0 reading as 0), for
// thresholds spread evenly, bunched in one bucket, spanning every sign and
// magnitude (subnormals, infinities), and for inputs at, between and beyond
// them.
func TestLightGBMRankLookup(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 1))
	sets := map[string][]float64{
		"none":     nil,
		"one":      {0.5},
		"uniform":  nil,
		"bunched":  nil,
		"extremes": {math.Inf(-1), -math.MaxFloat64, -1, -math.SmallestNonzeroFloat64, 0, math.SmallestNonzeroFloat64, 1e-300, 1, 1e300, math.MaxFloat64, math.Inf(1)},
	}
	for range 600 {
		sets["uniform"] = append(sets["uniform"], r.Float64()*10-5)
	}
	for i := range 300 {
		sets["bunched"] = append(sets["bunched"], 1+float64(i)*1e-15, float64(i)*1e6)
	}
	for name, ts := range sets {
		slices.Sort(ts)
		ts = slices.Compact(ts)
		f := &lgbForest{limits: DefaultModelLimits()}
		s, err := f.addSearch(ts)
		if err != nil {
			t.Fatal(err)
		}
		col := &lgbColumn{search: s}
		xs := []float64{math.Inf(-1), math.Inf(1), 0, math.Copysign(0, -1), math.NaN(), 1e-36, -1e-36, -math.MaxFloat64, math.MaxFloat64}
		for _, v := range ts {
			xs = append(xs, v, math.Nextafter(v, math.Inf(1)), math.Nextafter(v, math.Inf(-1)))
		}
		for range 2000 {
			xs = append(xs, math.Float64frombits(r.Uint64()), r.NormFloat64()*3)
		}
		got := make([]uint32, len(xs))
		f.keys(col, xs, got)
		for i, x := range xs {
			if x != x || math.Abs(x) <= lgbZeroThreshold {
				x = 0 // a column of mode None reads them as 0
			}
			want, _ := slices.BinarySearch(ts, x)
			if got[i] != uint32(want) {
				t.Fatalf("%s: rank(%v) = %d, want %d", name, xs[i], got[i], want)
			}
		}
	}
}
