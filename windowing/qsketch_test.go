package windowing

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestQSketchWithinRankBound: whatever the order of the values (random,
// sorted, reversed, heavy duplicates) and however they were split into
// merged parts, every estimate lies within qsRankBound(n)*n ranks of the
// exact nearest-rank quantile; below qsK values it is exact.
func TestQSketchWithinRankBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	orders := map[string]func(n int) []float64{
		"random": func(n int) []float64 {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = rng.NormFloat64()*10 + 60
			}
			return xs
		},
		"sorted": func(n int) []float64 {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(i)
			}
			return xs
		},
		"reversed": func(n int) []float64 {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(n - i)
			}
			return xs
		},
		"duplicates": func(n int) []float64 {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(rng.IntN(5))
			}
			return xs
		},
	}
	var scratch []weighted
	var fs []float64
	for name, gen := range orders {
		for _, n := range []int{1, 2, 255, 256, 257, 1000, 10_000, 200_000} {
			xs := gen(n)
			for _, parts := range []int{1, 7, -7} { // -7: 7 parts gathered as a window's accumulator does
				var q qsketch
				var held int64
				chunk := (n + abs(parts) - 1) / abs(parts)
				for p := 0; p < n; p += chunk {
					var part qsketch
					for _, x := range xs[p:min(n, p+chunk)] {
						part.add(x)
					}
					if parts < 0 {
						q.gather(&part)
						held = q.bytes()
					} else {
						held += q.merge(&part)
					}
				}
				if held != q.bytes() {
					t.Fatalf("%s n=%d: byte deltas sum to %d, sketch holds %d", name, n, held, q.bytes())
				}
				sorted := slices.Clone(xs)
				slices.Sort(sorted)
				bound := qsRankBound(uint64(n)) * float64(n)
				for _, p := range []float64{0, 0.01, 0.5, 0.9, 0.95, 0.99, 1} {
					got := q.quantile(p, &scratch, &fs)
					r := min(float64(n-1), math.Floor(p*float64(n)))
					// ranks the value got occupies in the exact order
					lo := float64(sort.SearchFloat64s(sorted, got))
					hi := float64(sort.Search(n, func(i int) bool { return sorted[i] > got }) - 1)
					if hi < lo || r < lo-bound || r > hi+bound {
						t.Errorf("%s n=%d parts=%d p=%v: got %v at ranks [%v, %v], want rank %v ± %.0f",
							name, n, parts, p, got, lo, hi, r, bound)
					}
					if n < qsK && got != sorted[int(r)] {
						t.Errorf("%s n=%d p=%v: got %v, exact %v", name, n, p, got, sorted[int(r)])
					}
				}
			}
		}
	}
}

// TestQSketchDeterministic: the same values in the same order give the same
// state and estimates, so a replay re-emits the same features bit for bit.
func TestQSketchDeterministic(t *testing.T) {
	var a, b qsketch
	rng := rand.New(rand.NewPCG(1, 1))
	for range 50_000 {
		x := rng.Float64()
		a.add(x)
		b.add(x)
	}
	var s []weighted
	var f []float64
	for _, p := range []float64{0.1, 0.5, 0.95} {
		if x, y := a.quantile(p, &s, &f), b.quantile(p, &s, &f); x != y {
			t.Fatalf("p=%v: %v != %v", p, x, y)
		}
	}
	if d := a.reset(); a.bytes() != 0 || d >= 0 {
		t.Fatalf("reset kept %d bytes (delta %d) of a large sketch", a.bytes(), d)
	}
}

// TestQSketchSmall: a pane of the factory example (60 readings) costs a few
// hundred bytes, not the ~16 KiB of the t-digest it replaces.
func TestQSketchSmall(t *testing.T) {
	var q qsketch
	var held int64
	for i := range 60 {
		held += q.add(float64(i))
	}
	if held != q.bytes() || held > 64*8 {
		t.Fatalf("60 values hold %d bytes (deltas %d), want at most %d", q.bytes(), held, 64*8)
	}
}

func abs(n int) int { return max(n, -n) }
