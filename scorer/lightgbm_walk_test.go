package scorer

import (
	"fmt"
	"testing"
)

// Complete trees of every shallow depth (the level walk's special cases:
// one level, two levels, root levels then the last) give LightGBM's raw
// scores to the bit in batches (two blocks and a remainder) and single
// rows, against the literal reference walk.
func TestLightGBMCompleteDepths(t *testing.T) {
	for depth := 1; depth <= 4; depth++ {
		t.Run(fmt.Sprint("depth", depth), func(t *testing.T) {
			model := xgbAsLightGBM(t, synthModel(20, depth, 10, uint64(depth)), "binary sigmoid:1")
			m := mustParse(t, model)
			f := m.impl.(*lgbForest)
			for ti := range f.trees {
				if f.trees[ti].layout != lgbComplete {
					t.Fatalf("tree %d is not laid out complete", ti)
				}
			}
			ref := lgbReference(t, model)
			const n = 1030
			cols := randomCols(10, n, 0.05, uint64(depth))
			out, one := alloc(1, n), alloc(1, 1)
			var s Scratch
			if err := m.PredictMargins(cols, n, out, &s); err != nil {
				t.Fatal(err)
			}
			x := make([]float64, 10)
			view := make([][]float64, 10)
			for i := range n {
				for j := range x {
					x[j] = cols[j][i]
					view[j] = cols[j][i : i+1]
				}
				want := ref(x)[0]
				if out[0][i] != want {
					t.Fatalf("row %d: batch raw score %v, reference %v", i, out[0][i], want)
				}
				if err := m.PredictMargins(view, 1, one, &s); err != nil {
					t.Fatal(err)
				}
				if one[0][0] != want {
					t.Fatalf("row %d: single-row raw score %v, reference %v", i, one[0][0], want)
				}
			}
		})
	}
}
