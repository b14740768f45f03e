package scorer

import (
	"fmt"
	"math"
	"unsafe"
)

// XGBoost's dart booster is a gbtree whose trees each carry a weight
// (weight_drop, set by the dropout normalisation during training). XGBoost
// 1.7 predicts with a DMatrix (Booster.predict, SageMaker's container) by
// starting each row at the base margin and adding, tree by tree in model
// order, the tree's leaf value times its weight, the product rounded to
// float32 before the float32 sum (Dart::PredictBatchImpl). Scaling each
// leaf by its tree's weight once, at load, rounds exactly as that product
// does, so the forest's ordinary float32 sum reproduces dart's margins bit
// for bit and every layout and speed-up of the forest applies unchanged.
//
// best_iteration limits the trees as for gbtree (XGBoost's LayerToTree is
// the same for both), with the final weights: XGBoost keeps no weights as
// of an earlier iteration.
//
// Booster.inplace_predict (the scikit-learn interface's path) rounds
// differently, adding ((base + leaf) - base) * weight, so its margins
// differ from predict's, and ours, in the last float32 bits.
//
// Contributions: XGBoost (CPUPredictor::PredictContribution) attributes
// each unscaled tree (node means from its own leaves), multiplies that
// tree's attribution by its weight and adds it, in float32, tree by tree;
// the base margin goes to the bias last. Attributing the scaled trees
// instead rounds the node means differently (measured: up to 3.8 float32
// ulps of a row's largest contribution on the fixtures), so dartForest
// keeps each tree unscaled as a forest of its own, used only to attribute,
// and applies the weights as XGBoost does: contributions match to the bit.
// This doubles the compiled size of a dart model with weights other than 1,
// and a row's contributions convert its features once per tree (they are
// meant for the few rows that raise an alert).

// dartWeights checks dart's weight_drop against the trees it weights: one
// finite weight per tree of the file.
func dartWeights(w []float32, numTrees int) ([]float32, error) {
	if len(w) != numTrees {
		return nil, fmt.Errorf("xgboost model: booster \"dart\": weight_drop has %d entries for %d trees", len(w), numTrees)
	}
	for i, v := range w {
		if v != v || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("xgboost model: booster \"dart\": weight_drop[%d] is %v, want a finite number", i, v)
		}
	}
	return w, nil
}

// weightedTree returns t with every leaf value multiplied by w, rounded to
// float32 as XGBoost's product is. t itself is left alone (its slices may
// be shared with the decoder's document); a weight of 1 returns t.
func weightedTree(t *xgbTree, w float32) (*xgbTree, error) {
	if w == 1 {
		return t, nil
	}
	wt := *t
	wt.SplitConditions = make([]float32, len(t.SplitConditions))
	copy(wt.SplitConditions, t.SplitConditions)
	for id, l := range t.LeftChildren {
		if l != -1 || id >= len(wt.SplitConditions) {
			continue // splits keep their thresholds; addTree reports a short array
		}
		v := wt.SplitConditions[id]
		// The conversion rounds the product (and keeps the compiler from
		// fusing it with a later add), as XGBoost's float multiply does.
		p := float32(v * w)
		if math.IsInf(float64(p), 0) && !math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("node %d: leaf value %v times weight_drop %v overflows float32", id, v, w)
		}
		wt.SplitConditions[id] = p
	}
	return &wt, nil
}

// dartForest is a dart model: its forest (leaves scaled by their weights)
// predicts; the per-tree forests attribute.
type dartForest struct {
	*forest
	trees []dartTree // the trees prediction uses, in model order
}

// dartTree is one tree, unscaled, in a forest of its own, with its weight.
type dartTree struct {
	f     *forest
	group int
	w     float32
}

var _ predictor = (*dartForest)(nil)

// newDartForest wraps the scaled forest f of body's first use trees with
// what attributing them as XGBoost does takes. Both count against the
// model's heap limit.
func newDartForest(f *forest, body *xgbGBTreeBody, weights []float32, use int, lim ModelLimits) (*dartForest, error) {
	d := &dartForest{forest: f}
	unit := true
	for _, w := range weights[:use] {
		unit = unit && w == 1
	}
	if f.noContrib != nil || f.obj == objMultiSoftmax || unit {
		// No contributions to compute, or (every weight 1, as with the
		// default rate_drop of 0) the forest's are XGBoost's.
		return d, nil
	}
	heap := f.heap
	d.trees = make([]dartTree, use)
	for t := range use {
		one := &forest{numFeature: f.numFeature, numGroup: f.numGroup, obj: f.obj, limits: lim}
		one.base = make([]float32, f.numGroup)
		g := body.TreeInfo[t]
		if err := one.addTree(&body.Trees[t], uint32(g)); err != nil {
			return nil, fmt.Errorf("xgboost model: tree %d: %w", t, err)
		}
		if heap+one.heap > lim.MaxHeapBytes {
			return nil, limitError("the compiled trees' size (dart keeps each tree scaled and unscaled)", heap+one.heap, "max_heap_bytes", lim.MaxHeapBytes)
		}
		if one.noContrib != nil {
			// The unscaled tree's means failed where the scaled ones did
			// not (an overflow): say so rather than attribute differently.
			f.noContrib = one.noContrib
			d.trees = nil
			return d, nil
		}
		heap += one.heap
		d.trees[t] = dartTree{f: one, group: g, w: weights[t]}
	}
	return d, nil
}

func (d *dartForest) noContributions() error {
	if d.obj == objMultiSoftmax {
		return fmt.Errorf("%w: a multi:softmax score is a class index, not a margin", ErrNoContributions)
	}
	return d.noContrib
}

// contributions sums, in float32 and model order, each tree's attribution
// times its weight, then adds the base margin to the bias. dst holds the
// running sums (float32 values) while s.tree receives one tree's: the
// caller's Scratch, not a pool, so a reused one allocates nothing even
// where a pool would drop buffers (as under the race detector).
func (d *dartForest) contributions(dst, x []float64, k int, s *Scratch) error {
	if err := d.noContributions(); err != nil {
		return err
	}
	if d.trees == nil {
		return d.forest.contributions(dst, x, k, s)
	}
	clear(dst)
	if cap(s.tree) < len(dst) {
		s.tree = make([]float64, len(dst))
	}
	one := s.tree[:len(dst)]
	for i := range d.trees {
		t := &d.trees[i]
		if t.group != k {
			continue
		}
		if err := t.f.contributions(one, x, k, s); err != nil {
			return err
		}
		for j, c := range one {
			dst[j] = float64(float32(dst[j]) + float32(float32(c)*t.w))
		}
	}
	nf := len(dst) - 1
	dst[nf] = float64(float32(dst[nf]) + d.base[k])
	return nil
}

// compileDart builds a dart model: the gbtree body's trees weighted by
// weight_drop.
func compileDart(body *xgbGBTreeBody, weightDrop []float32, h xgbHeader, attrs map[string]string, opts loadOptions, info *ModelInfo) (*dartForest, error) {
	w, err := dartWeights(weightDrop, len(body.Trees))
	if err != nil {
		return nil, err
	}
	f, err := compileTrees(body, w, h, attrs, opts, info)
	if err != nil {
		return nil, err
	}
	return newDartForest(f, body, w, info.Trees, opts.limits)
}

// residentBytes is the scaled forest plus, when the model has
// contributions, every unscaled tree's own forest.
func (d *dartForest) residentBytes() int64 {
	n := d.forest.residentBytes() + int64(cap(d.trees))*int64(unsafe.Sizeof(dartTree{}))
	for i := range d.trees {
		n += d.trees[i].f.residentBytes() + int64(unsafe.Sizeof(forest{}))
	}
	return n
}
