package monitor

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// exactRanks returns the number of values < x and <= x in sorted.
func exactRanks(sorted []float64, x float64) (lo, hi int) {
	lo, _ = slices.BinarySearch(sorted, x)
	hi = lo
	for hi < len(sorted) && sorted[hi] == x {
		hi++
	}
	return lo, hi
}

// quantileRankError is how far q·n lies from the exact rank interval of
// the sketch's q-quantile, in values.
func quantileRankError(s *KLL, sorted []float64, q float64) float64 {
	lo, hi := exactRanks(sorted, s.Quantile(q))
	target := q * float64(len(sorted))
	switch {
	case target < float64(lo):
		return float64(lo) - target
	case target > float64(hi):
		return target - float64(hi)
	}
	return 0
}

func stream(name string, n int, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float64, n)
	for i := range v {
		switch name {
		case "uniform":
			v[i] = r.Float64()
		case "normal":
			v[i] = r.NormFloat64()*3 + 10
		case "lognormal":
			v[i] = math.Exp(r.NormFloat64() * 2)
		case "few-values":
			v[i] = float64(r.IntN(7))
		case "sorted":
			v[i] = float64(i)
		case "reversed":
			v[i] = float64(n - i)
		}
	}
	return v
}

func TestKLLCapacitiesAreDeequs(t *testing.T) {
	// 2·(⌈2048·0.64^h/2⌉+1), the capacities Deequ's QuantileNonSample gives
	// its compactors, down to the floor of 4.
	want := []int{2050, 1314, 842, 540, 346, 222, 144, 94, 60, 40, 26, 18, 12, 10, 6, 6, 4, 4, 4}
	s := NewKLL(0, 0)
	for h, w := range want {
		if got := s.capacity(h); got != w {
			t.Errorf("capacity(%d) = %d, want %d", h, got, w)
		}
	}
	if s.K() != 2048 || s.C() != 0.64 {
		t.Errorf("defaults k=%d c=%g, want Model Monitor's 2048 and 0.64", s.K(), s.C())
	}
}

// TestKLLCompactionByHand traces Deequ's rules on a sketch small enough to
// follow: k=4, c=0.5 give capacities 6, 4, 4, ... (2·(⌈4·0.5^h/2⌉+1)).
func TestKLLCompactionByHand(t *testing.T) {
	s := NewKLL(4, 0.5)
	for _, v := range []float64{7, 3, 5, 1, 6, 2} {
		s.Update(v)
	}
	// six items, budget 6: nothing compacted yet
	if got := s.Data(); len(got) != 1 || !slices.Equal(got[0], []float64{7, 3, 5, 1, 6, 2}) {
		t.Fatalf("before compaction data = %v", got)
	}
	// the seventh exceeds the budget: level 0 (7 >= 6) is compacted. Its
	// first six items sorted are 1 2 3 5 6 7; the first compaction's offset
	// is 0, so 1 3 6 go up; the odd seventh item (4) stays.
	s.Update(4)
	if got := s.Data(); len(got) != 2 || !slices.Equal(got[0], []float64{4}) || !slices.Equal(got[1], []float64{1, 3, 6}) {
		t.Fatalf("after first compaction data = %v, want [[4] [1 3 6]]", got)
	}
	if s.Count() != 7 {
		t.Fatalf("count %g, want 7", s.Count())
	}
	// fill level 0 to six again (budget 10 now): 4 8 9 10 11 12 → at the
	// 11th item the sketch holds 3+7 = 10, at the 12th 11 > 10: level 0 has
	// 8 items >= 6 and is compacted with the flipped offset 1 (the second
	// compaction of a level flips): sorted 0.5 4 8 9 10 11 12 13 → 4 9 11 13.
	for _, v := range []float64{8, 9, 10, 11, 12, 13, 0.5} {
		s.Update(v)
	}
	got := s.Data()
	if len(got) != 2 || len(got[0]) != 0 || !slices.Equal(got[1], []float64{1, 3, 6, 4, 9, 11, 13}) {
		t.Fatalf("after second compaction data = %v, want [[] [1 3 6 4 9 11 13]]", got)
	}
	if s.Count() != 14 {
		t.Fatalf("count %g, want 14", s.Count())
	}
}

func TestKLLCountIsExact(t *testing.T) {
	s := NewKLL(0, 0)
	for i := range 123457 {
		s.Update(float64(i % 1000))
	}
	s.Update(math.NaN())
	w := 0.0
	s.ForEach(func(_, wt float64) { w += wt })
	if s.Count() != 123457 || w != 123457 {
		t.Fatalf("count %g, weights %g, want 123457 (NaN ignored)", s.Count(), w)
	}
}

// TestKLLRankError checks the sketch on a million values against the exact
// ranks. Each compaction at level h moves a rank by at most 2^h, so the
// error can never exceed ErrorBound (that is a proof, checked here for
// every quantile from 0.1% to 99.9%); and for Model Monitor's k=2048,
// c=0.64 that bound stays under 1.5% of the values at this size.
func TestKLLRankError(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 200_000
	}
	for _, dist := range []string{"uniform", "normal", "lognormal", "few-values", "sorted", "reversed"} {
		t.Run(dist, func(t *testing.T) {
			vals := stream(dist, n, 1)
			s := NewKLL(0, 0)
			for _, v := range vals {
				s.Update(v)
			}
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			bound := s.ErrorBound() * float64(n)
			if s.ErrorBound() > 0.015 {
				t.Errorf("error bound %.4f above 1.5%%", s.ErrorBound())
			}
			worst := 0.0
			for i := 1; i < 1000; i++ {
				worst = max(worst, quantileRankError(s, sorted, float64(i)/1000))
			}
			for _, x := range []float64{sorted[n/3], sorted[n/2], sorted[9*n/10]} {
				lo, hi := exactRanks(sorted, x)
				est := s.CDF(x) * float64(n)
				if est < float64(lo)-bound || est > float64(hi)+bound {
					t.Errorf("CDF(%g)·n = %g, exact rank in [%d, %d], bound %g", x, est, lo, hi, bound)
				}
			}
			if worst > bound {
				t.Errorf("worst quantile rank error %g values, above the bound %g", worst, bound)
			}
			t.Logf("n=%d worst rank error %.5f, bound %.5f, items %d", n, worst/float64(n), s.ErrorBound(), len(s.items))
		})
	}
}

func TestKLLMergeIsTheUnion(t *testing.T) {
	const shards, per = 8, 100_000
	merged := NewKLL(0, 0)
	var all []float64
	for i := range shards {
		part := stream("normal", per, uint64(i+10))
		for j := range part {
			part[j] += float64(i) // shards that differ
		}
		s := NewKLL(0, 0)
		for _, v := range part {
			s.Update(v)
		}
		before := s.Data()
		merged.Merge(s)
		if !equalData(before, s.Data()) {
			t.Fatal("Merge changed its argument")
		}
		all = append(all, part...)
	}
	slices.Sort(all)
	if merged.Count() != float64(len(all)) {
		t.Fatalf("merged count %g, want %d", merged.Count(), len(all))
	}
	bound := merged.ErrorBound() * float64(len(all))
	if merged.ErrorBound() > 0.015 {
		t.Errorf("merged error bound %.4f above 1.5%%", merged.ErrorBound())
	}
	for i := 1; i < 100; i++ {
		if e := quantileRankError(merged, all, float64(i)/100); e > bound {
			t.Errorf("q=%.2f rank error %g values above the bound %g", float64(i)/100, e, bound)
		}
	}
	if merged.budget < len(merged.items) {
		t.Errorf("merged sketch holds %d items over its budget %d", len(merged.items), merged.budget)
	}
}

func equalData(a, b [][]float64) bool {
	return slices.EqualFunc(a, b, func(x, y []float64) bool { return slices.Equal(x, y) })
}

func TestKLLIsDeterministic(t *testing.T) {
	a, b := NewKLL(0, 0), NewKLL(0, 0)
	for _, v := range stream("lognormal", 50_000, 3) {
		a.Update(v)
		b.Update(v)
	}
	if !equalData(a.Data(), b.Data()) {
		t.Fatal("equal inputs gave different sketches")
	}
}

func TestKLLFromSketchRoundTrip(t *testing.T) {
	s := NewKLL(0, 0)
	for _, v := range stream("normal", 300_000, 4) {
		s.Update(v)
	}
	r, err := KLLFromSketch(s.Sketch())
	if err != nil {
		t.Fatal(err)
	}
	if !equalData(s.Data(), r.Data()) || r.Count() != s.Count() || r.K() != s.K() || r.C() != s.C() {
		t.Fatal("rebuilt sketch differs")
	}
	for _, q := range []float64{0, 0.01, 0.5, 0.99, 1} {
		if r.Quantile(q) != s.Quantile(q) {
			t.Errorf("Quantile(%g) = %g rebuilt, %g original", q, r.Quantile(q), s.Quantile(q))
		}
	}
	// the rebuilt sketch keeps going like the original
	for _, v := range stream("normal", 10_000, 5) {
		s.Update(v)
		r.Update(v)
	}
	if r.Count() != s.Count() {
		t.Fatalf("after updates count %g, want %g", r.Count(), s.Count())
	}
}

func TestKLLFromSketchOverBudgetIsCompacted(t *testing.T) {
	level := make([]float64, 10_000)
	for i := range level {
		level[i] = float64(i)
	}
	s, err := KLLFromSketch(Sketch{Parameters: SketchParameters{C: 0.64, K: 2048}, Data: [][]float64{level, {1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Count() != 10_004 || len(s.items) > s.budget {
		t.Fatalf("count %g items %d budget %d", s.Count(), len(s.items), s.budget)
	}
}

// TestKLLFromSketchManyEmptyLevels: a file may declare the largest k with
// no shrinking and sixty empty levels; the rebuilt sketch holds only what
// the file has.
func TestKLLFromSketchManyEmptyLevels(t *testing.T) {
	s, err := KLLFromSketch(Sketch{Parameters: SketchParameters{C: 1, K: maxSketchK}, Data: make([][]float64, 60)})
	if err != nil {
		t.Fatal(err)
	}
	if m := s.MemoryBytes(); m > 4096 {
		t.Fatalf("an empty rebuilt sketch holds %d bytes", m)
	}
}

func TestKLLFromSketchRefuses(t *testing.T) {
	ok := SketchParameters{C: 0.64, K: 2048}
	cases := []struct {
		name string
		s    Sketch
		want string
	}{
		{"c zero", Sketch{Parameters: SketchParameters{C: 0, K: 2048}}, "parameters.c"},
		{"c above one", Sketch{Parameters: SketchParameters{C: 1.5, K: 2048}}, "parameters.c"},
		{"c NaN", Sketch{Parameters: SketchParameters{C: math.NaN(), K: 2048}}, "parameters.c"},
		{"k fractional", Sketch{Parameters: SketchParameters{C: 0.64, K: 20.5}}, "parameters.k"},
		{"k huge", Sketch{Parameters: SketchParameters{C: 0.64, K: 1e12}}, "parameters.k"},
		{"k one", Sketch{Parameters: SketchParameters{C: 0.64, K: 1}}, "parameters.k"},
		{"too many levels", Sketch{Parameters: ok, Data: make([][]float64, 61)}, "61 levels"},
		{"infinite item", Sketch{Parameters: ok, Data: [][]float64{{1}, {2, math.Inf(1)}}}, "data[1][1]"},
		{"NaN item", Sketch{Parameters: ok, Data: [][]float64{{math.NaN()}}}, "data[0][0]"},
		{"too many items", Sketch{Parameters: ok, Data: [][]float64{make([]float64, 1<<22+1)}}, "more than"},
	}
	for _, c := range cases {
		_, err := KLLFromSketch(c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.name, err, c.want)
		}
	}
}

// TestKLLBucketsAsDeequ: equal-width buckets between min and max, counts
// of [lower, upper) and the last one closed, on a sketch that is still
// exact.
func TestKLLBucketsAsDeequ(t *testing.T) {
	s := NewKLL(0, 0)
	for _, v := range []float64{0, 1, 1, 2, 5, 9.5, 10} {
		s.Update(v)
	}
	got := s.Buckets(0, 10, 5)
	want := []Bucket{{0, 2, 3}, {2, 4, 1}, {4, 6, 1}, {6, 8, 0}, {8, 10, 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	one := NewKLL(0, 0)
	one.Update(3)
	one.Update(3)
	if got := one.Buckets(3, 3, 3); got[2].Count != 2 || got[0].Count+got[1].Count != 0 {
		t.Fatalf("constant column buckets %v, want the count in the last", got)
	}
}

func TestKLLQueriesOnEmptyAndEdges(t *testing.T) {
	s := NewKLL(0, 0)
	if !math.IsNaN(s.Quantile(0.5)) || !math.IsNaN(s.CDF(1)) || s.ErrorBound() != 0 {
		t.Fatal("empty sketch answers numbers")
	}
	for _, v := range []float64{5, 1, 3} {
		s.Update(v)
	}
	if s.Quantile(0) != 1 || s.Quantile(-1) != 1 || s.Quantile(1) != 5 || s.Quantile(2) != 5 || s.Quantile(0.5) != 3 {
		t.Fatalf("quantiles 0,-1,1,2,0.5 = %g %g %g %g %g", s.Quantile(0), s.Quantile(-1), s.Quantile(1), s.Quantile(2), s.Quantile(0.5))
	}
	if s.CDF(0.5) != 0 || s.CDF(3) != 2.0/3 || s.CDF(9) != 1 {
		t.Fatalf("CDF 0.5, 3, 9 = %g %g %g", s.CDF(0.5), s.CDF(3), s.CDF(9))
	}
	// a query after an update sees the update
	s.Update(0)
	if s.Quantile(0) != 0 {
		t.Fatal("query view not refreshed after Update")
	}
	s.Reset()
	if s.Count() != 0 || len(s.Data()[0]) != 0 || !math.IsNaN(s.Quantile(0.5)) {
		t.Fatal("Reset left values")
	}
}

func TestKLLSortOrdersAllFloats(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	v := []float64{math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		-math.SmallestNonzeroFloat64, 0, math.Copysign(0, -1), 1, -1}
	for range 3000 {
		switch r.IntN(3) {
		case 0:
			v = append(v, r.NormFloat64())
		case 1:
			v = append(v, math.Float64frombits(r.Uint64()&^(0x7ff<<52)|uint64(r.IntN(2047))<<52))
		default:
			v = append(v, float64(r.IntN(10)-5))
		}
	}
	want := slices.Clone(v)
	slices.Sort(want)
	s := NewKLL(0, 0)
	s.sort(v)
	if !slices.Equal(v, want) {
		t.Fatal("radix sort disagrees with slices.Sort")
	}
}

func TestKLLUpdateAllocatesNothing(t *testing.T) {
	s := NewKLL(0, 0)
	vals := stream("normal", 1<<16, 2)
	for _, v := range vals {
		s.Update(v)
	}
	i := 0
	allocs := testing.AllocsPerRun(20_000, func() {
		s.Update(vals[i&(1<<16-1)])
		i++
	})
	if allocs != 0 {
		t.Fatalf("Update allocates %g per call in steady state", allocs)
	}
}

func TestKLLMemoryIsTheBuffer(t *testing.T) {
	s := NewKLL(0, 0)
	for _, v := range stream("uniform", 1_000_000, 6) {
		s.Update(v)
	}
	// about one float per item of the budget plus the sort scratch; the
	// query view is dropped by Reset and by a profile after rendering
	s.dropView()
	if m := s.MemoryBytes(); m < 8*len(s.items) || m > 8*3*s.budget+4096 {
		t.Fatalf("MemoryBytes %d for %d items, budget %d", m, len(s.items), s.budget)
	}
}
