package scorer

import (
	"fmt"
	"testing"
)

// BenchmarkForestWalk measures Predict on 4,096-row batches (30 features, 5 %
// missing) for the three shapes scorer/bench/compare.sh times against
// XGBoost, on synthetic full trees.
//
//	go test -run XXX -bench ForestWalk -count 5 ./scorer
func BenchmarkForestWalk(b *testing.B) {
	for _, shape := range []struct{ trees, depth int }{{100, 6}, {300, 6}, {500, 8}} {
		b.Run(fmt.Sprintf("%dx%d", shape.trees, shape.depth), func(b *testing.B) {
			m := mustParse(b, synthModel(shape.trees, shape.depth, 30, 1))
			const n = 4096
			cols := randomCols(30, n, 0.05, 2)
			out := [][]float64{make([]float64, n)}
			var s Scratch
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Predict(cols, n, out, &s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkFewRows compares, for small batches of a 300-tree depth-6 model,
// the row walk (one row through eight trees at a time) with the level walk
// (every row of the block one level at a time), which is where levelRows
// comes from. Keys are converted outside the timed loop.
func BenchmarkFewRows(b *testing.B) {
	m := mustParse(b, synthModel(300, 6, 30, 1))
	f := m.impl.(*forest)
	const nf = 30
	cols := randomCols(nf, 64, 0.05, 2)
	sh := keyShift(nf)
	for _, n := range []int{1, 2, 4, 8, 16, 32, 64} {
		row := make([]uint32, 2*nf*n)
		block := make([]uint32, 2*nf<<sh)
		for i := range n {
			for j := range nf {
				hi, lo := keyPair(cols[j][i])
				row[i*2*nf+2*j], row[i*2*nf+2*j+1] = hi, lo
				block[2*j<<sh+i], block[(2*j+1)<<sh+i] = hi, lo
			}
		}
		acc := make([]float32, n)
		pos := make([]uint32, n)
		b.Run(fmt.Sprintf("row/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				for i := range n {
					acc[i] = f.base[0]
					f.predictRow(row[i*2*nf:(i+1)*2*nf], acc[i:i+1], 0, 1)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
		b.Run(fmt.Sprintf("level/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				for i := range acc {
					acc[i] = f.base[0]
				}
				f.predictBlock(block, n, acc, pos)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}
