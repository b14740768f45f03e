package scorer

import (
	"fmt"
	"math"
)

// levelRows: batches of fewer rows are walked one row at a time through
// eight trees at a time (predictRow) rather than level by level; from four
// rows on the level walk is as fast or faster (BenchmarkFewRows).
const levelRows = 4

// Scratch holds one goroutine's prediction buffers, so that steady-state
// scoring allocates nothing. The zero value is ready to use; a Scratch must
// not be shared between goroutines.
type Scratch struct {
	keys []uint32
	acc  []float32
	pos  []uint32   // each row's heap position in the tree being walked
	path []pathStep // Contributions: one tree's decision path
	tree []float64  // Contributions of a dart model: one tree's attributions
}

// Predict scores n rows. cols holds the features column-major in the
// model's order (cols[j][i] is feature Features()[j] of row i; NaN means
// missing) and out receives Outputs() columns: out[k][i] is score k of row i.
// Every cols[j] and out[k] must hold at least n values.
func (m *Model) Predict(cols [][]float64, n int, out [][]float64, s *Scratch) error {
	if len(cols) != len(m.info.Features) {
		return fmt.Errorf("predict: %d feature columns, model has %d", len(cols), len(m.info.Features))
	}
	if len(out) < m.info.Outputs {
		return fmt.Errorf("predict: %d output columns, model has %d", len(out), m.info.Outputs)
	}
	for j, c := range cols {
		if len(c) < n {
			return fmt.Errorf("predict: feature %s has %d values, want %d", m.info.Features[j], len(c), n)
		}
	}
	for k := range m.info.Outputs {
		if len(out[k]) < n {
			return fmt.Errorf("predict: output %d has room for %d values, want %d", k, len(out[k]), n)
		}
	}
	m.impl.predict(cols, n, out, s, false)
	return nil
}

// PredictMargins is like Predict but writes raw margins (before the
// objective's transform), one column per output group; multi-class models
// write one column per class. Linear models write the linear predictor.
func (m *Model) PredictMargins(cols [][]float64, n int, out [][]float64, s *Scratch) error {
	if g := m.impl.marginOutputs(); len(out) < g {
		return fmt.Errorf("predict: %d output columns, model has %d groups", len(out), g)
	}
	m.impl.predict(cols, n, out, s, true)
	return nil
}

func (f *forest) marginOutputs() int { return f.numGroup }

func (f *forest) predict(cols [][]float64, n int, out [][]float64, s *Scratch, margins bool) {
	nf, ng := f.numFeature, f.numGroup
	sh := keyShift(nf)
	rows := 1 << sh
	if cap(s.keys) < 2*nf<<sh {
		s.keys = make([]uint32, 2*nf<<sh)
	}
	if cap(s.acc) < rows*ng {
		s.acc = make([]float32, rows*ng)
	}
	if n < levelRows || rows < levelRows {
		// Few rows (a single-row request), or so many features that a
		// block holds few: one row at a time through eight trees at a time.
		keys := s.keys[:2*nf]
		acc := s.acc[:ng]
		for i := range n {
			for j := range nf {
				keys[2*j], keys[2*j+1] = keyPair(cols[j][i])
			}
			copy(acc, f.base)
			f.predictRow(keys, acc, 0, 1)
			f.transform(acc, 1, i, out, margins)
		}
		return
	}
	if cap(s.pos) < rows {
		s.pos = make([]uint32, rows)
	}
	keys := s.keys[:2*nf<<sh]
	for start := 0; start < n; start += rows {
		b := min(rows, n-start)
		for j := range nf {
			keyColumns(keys[2*j<<sh:], keys[(2*j+1)<<sh:], cols[j][start:start+b])
		}
		acc := s.acc[:b*ng]
		for g := range ng {
			a := acc[g*b : g*b+b]
			for i := range a {
				a[i] = f.base[g]
			}
		}
		f.predictBlock(keys, b, acc, s.pos)
		f.transform(acc, b, start, out, margins)
	}
}

// keyColumns writes the keys of the values c into the two key columns of
// their feature (keyPair).
//
//go:noinline
func keyColumns(hi, lo []uint32, c []float64) {
	hi, lo = hi[:len(c)], lo[:len(c)]
	for i, x := range c {
		hi[i], lo[i] = keyPair(x)
	}
}

func (f *forest) transform(acc []float32, b, start int, out [][]float64, margins bool) {
	ng := f.numGroup
	if margins {
		for g := range ng {
			o := out[g][start : start+b]
			for i, v := range acc[g*b : g*b+b] {
				o[i] = float64(v)
			}
		}
		return
	}
	switch f.obj {
	case objBinaryLogistic, objRegLogistic:
		o := out[0][start : start+b]
		for i, v := range acc[:b] {
			o[i] = sigmoid(float64(v))
		}
	case objCountPoisson:
		o := out[0][start : start+b]
		for i, v := range acc[:b] {
			o[i] = math.Exp(float64(v))
		}
	case objMultiSoftprob:
		for i := range b {
			mx := acc[i]
			for g := 1; g < ng; g++ {
				mx = max(mx, acc[g*b+i])
			}
			sum := 0.0
			for g := range ng {
				e := math.Exp(float64(acc[g*b+i] - mx))
				out[g][start+i] = e
				sum += e
			}
			for g := range ng {
				out[g][start+i] /= sum
			}
		}
	case objMultiSoftmax:
		o := out[0][start : start+b]
		for i := range b {
			best, bv := 0, acc[i]
			for g := 1; g < ng; g++ {
				if v := acc[g*b+i]; v > bv {
					best, bv = g, v
				}
			}
			o[i] = float64(best)
		}
	default: // binary:logitraw, reg:squarederror
		o := out[0][start : start+b]
		for i, v := range acc[:b] {
			o[i] = float64(v)
		}
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
