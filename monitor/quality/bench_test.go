package quality

import (
	"math/rand/v2"
	"testing"
)

// The Add benchmarks report ns per row; allocs/op must be 0.

func benchRows() ([]float64, []bool) {
	rng := rand.New(rand.NewPCG(4, 4))
	scores := make([]float64, 1<<16)
	labels := make([]bool, 1<<16)
	for i := range scores {
		labels[i] = rng.Float64() < 0.3
		scores[i] = rng.Float64()
	}
	return scores, labels
}

func BenchmarkBinaryAdd(b *testing.B) {
	scores, labels := benchRows()
	acc := NewBinary(Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := i & (1<<16 - 1)
		acc.Add(scores[j], labels[j])
	}
}

func BenchmarkRegressionAdd(b *testing.B) {
	scores, _ := benchRows()
	acc := NewRegression()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := i & (1<<16 - 1)
		acc.Add(scores[j], scores[(j+1)&(1<<16-1)])
	}
}

// BenchmarkBinaryStatistics: rendering a period's statistics from the
// default 1000 bins.
func BenchmarkBinaryStatistics(b *testing.B) {
	scores, labels := benchRows()
	acc := NewBinary(Options{})
	for i := range scores {
		acc.Add(scores[i], labels[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		acc.Statistics()
	}
}

func TestAddAllocatesNothing(t *testing.T) {
	acc := NewBinary(Options{})
	r := NewRegression()
	if n := testing.AllocsPerRun(1000, func() { acc.Add(0.7, true); r.Add(1, 2) }); n != 0 {
		t.Errorf("Add allocates %v times per row", n)
	}
}
