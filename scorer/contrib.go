package scorer

import (
	"errors"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// Feature contributions.
//
// A contribution says how much one input moved one row's margin (the score
// before the objective's link: log-odds for binary:logistic). The
// contributions of all inputs plus the bias add up to the margin.
//
// Linear models: contribution_j = weight_j * x_j (a missing x_j takes the
// feature's missing value), bias = intercept. Exact.
//
// Trees: the path attribution XGBoost computes for predict(...,
// pred_contribs=True, approx_contribs=True) (Saabas): every node has a mean
// value, a leaf its value and a split the mean of its children weighted by
// their hessian sums (XGBoost's FillNodeMeanValues, from the sum_hessian
// the model file records per node; not base_weights, which are the node's
// own training weight). Walking the row's path, each split on feature f adds
// mean(child) - mean(node) to f; the bias is the sum of the trees' root
// means plus the base margin. Missing values follow each split's default
// direction, categorical splits their category sets, exactly as prediction
// does. Arithmetic is float32 in XGBoost's order (per tree, then summed over
// trees), so the values match XGBoost's to float32 rounding (in practice, to
// the bit).
//
// Cost: one pass of the row through the trees of its output, plus, per tree,
// a step per level; no allocation with a reused Scratch and dst.

// ErrNoContributions is wrapped by the errors of Contributions and Explain
// when a model cannot attribute its score to its inputs: an XGBoost model
// file without per-node sum_hessian, or a multi:softmax score (a class index,
// not a margin).
var ErrNoContributions = errors.New("no feature contributions")

// pathStep is one split on a row's path through a tree: the feature split
// on and how much the node mean changed by going to the chosen child.
type pathStep struct {
	feat  uint32
	delta float32
}

// nodeMeans returns XGBoost's mean value of every node of t: a leaf's value,
// and for a split (mean(left)*hess(left) + mean(right)*hess(right)) /
// hess(node), rounded to float32 at each step as XGBoost's
// FillNodeMeanValue does. order lists the reachable nodes parents first.
func nodeMeans(t *xgbTree, order []int32) ([]float32, error) {
	n := len(t.LeftChildren)
	switch len(t.SumHessian) {
	case n:
	case 0:
		return nil, errors.New("the model file has no sum_hessian (per-node cover) to weight node means with")
	default:
		return nil, fmt.Errorf("sum_hessian has %d entries, want %d", len(t.SumHessian), n)
	}
	mv := make([]float32, n)
	for q := len(order) - 1; q >= 0; q-- {
		id := order[q]
		l, r := t.LeftChildren[id], t.RightChildren[id]
		if l == -1 {
			mv[id] = t.SplitConditions[id]
			continue
		}
		// The conversions round each product to float32 (and keep the
		// compiler from fusing a multiply-add), as XGBoost's float code does.
		v := float32(mv[l]*t.SumHessian[l]) + float32(mv[r]*t.SumHessian[r])
		v /= t.SumHessian[id]
		if v != v || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("node %d: mean value is %v (sum_hessian %v)", id, v, t.SumHessian[id])
		}
		mv[id] = v
	}
	return mv, nil
}

// CheckContributions returns nil if the model can attribute its scores to
// its inputs (Contributions, Explain), or an error wrapping
// ErrNoContributions that says why not.
func (m *Model) CheckContributions() error { return m.impl.noContributions() }

func (f *forest) noContributions() error { return f.noContrib }

// Contributions computes how much each input moved one row's margin for
// output k (0 <= k < Outputs(); the class for multi:softprob). x holds the
// row's features in model order (Features()), NaN for missing. The result,
// in dst grown as needed, holds len(Features())+1 values: the
// contribution of each feature in model order, then the bias. They sum to
// the row's margin (PredictMargins): exactly for linear models, within
// float32 rounding for trees. See the package's contribution notes for the
// method. s is the caller's Scratch (not shared between goroutines); with a
// reused s and dst the call allocates nothing.
func (m *Model) Contributions(dst []float64, x []float64, k int, s *Scratch) ([]float64, error) {
	nf := len(m.info.Features)
	if len(x) != nf {
		return dst, fmt.Errorf("contributions: %d feature values, model has %d", len(x), nf)
	}
	if k < 0 || k >= m.info.Outputs {
		return dst, fmt.Errorf("contributions: output %d, model has %d", k, m.info.Outputs)
	}
	if cap(dst) < nf+1 {
		dst = make([]float64, nf+1)
	}
	dst = dst[:nf+1]
	if err := m.impl.contributions(dst, x, k, s); err != nil {
		return dst, fmt.Errorf("contributions: %w", err)
	}
	return dst, nil
}

func (f *forest) contributions(dst, x []float64, k int, s *Scratch) error {
	nf := f.numFeature
	if f.noContrib != nil {
		return f.noContrib
	}
	if f.obj == objMultiSoftmax {
		return fmt.Errorf("%w: a multi:softmax score is a class index, not a margin", ErrNoContributions)
	}
	if cap(s.keys) < 2*nf {
		s.keys = make([]uint32, 2*nf)
	}
	if cap(s.acc) < nf+1 {
		s.acc = make([]float32, nf+1)
	}
	if cap(s.path) < f.maxDepth {
		s.path = make([]pathStep, 0, f.maxDepth)
	}
	keys := s.keys[:2*nf]
	rowKeys(keys, x)
	acc := s.acc[:nf+1]
	clear(acc)
	f.pathContributions(keys, k, acc, s.path[:0])
	for j, v := range acc {
		dst[j] = float64(v)
	}
	return nil
}

// pathContributions adds the path attributions of every tree of group g for the
// row with keys k to acc (features, then the bias), and the base margin to
// the bias, in XGBoost's order: a tree's steps on the same feature are
// summed first, then added to the feature's total.
func (f *forest) pathContributions(k []uint32, g int, acc []float32, path []pathStep) {
	nf := f.numFeature
	for ti := range f.trees {
		t := &f.trees[ti]
		if int(t.group) != g {
			continue
		}
		var root float32
		if t.slow >= 0 {
			root, path = f.slow[t.slow].path(k, path[:0])
		} else {
			root, path = f.completePath(t, k, path[:0])
		}
		acc[nf] += root
		for a, st := range path {
			seen := false
			for _, p := range path[:a] {
				if p.feat == st.feat {
					seen = true
					break
				}
			}
			if seen {
				continue
			}
			sum := st.delta
			for _, p := range path[a+1:] {
				if p.feat == st.feat {
					sum += p.delta
				}
			}
			acc[st.feat] += sum
		}
	}
	acc[nf] += f.base[g]
}

// completePath walks a complete-layout tree, returning its root mean and the
// steps of the path. Pass-through nodes (below a leaf XGBoost placed above
// the tree's depth) are not XGBoost nodes and add no step.
func (f *forest) completePath(t *ftree, k []uint32, path []pathStep) (float32, []pathStep) {
	if t.depth == 0 {
		return f.leaf[t.leaf], path
	}
	tn, tm := f.nodes[t.node:], f.mean[t.node:]
	sh := keyShift(f.numFeature)
	inner := uint32(1)<<t.depth - 1
	var p uint32
	root := tm[0]
	cur := root
	for range t.depth {
		nd := tn[p]
		c := 2*p + 1 + b2u(k[nd.slot(sh)] >= nd.thr)
		var v float32
		if c < inner {
			v = tm[c]
		} else {
			v = f.leaf[t.lbase+c]
		}
		if nd.thr != 0 { // 0 only for pass-through nodes: every real key is above it
			path = append(path, pathStep{feat: nd.feature(sh), delta: v - cur})
		}
		cur, p = v, c
	}
	return root, path
}

// path walks the tree as walk does, returning its root mean and the steps
// of the path.
func (c *catTree) path(keys []uint32, path []pathStep) (float32, []pathStep) {
	id := int32(0)
	root := c.mean[0]
	cur := root
	for c.left[id] != -1 {
		next := c.next(id, keys)
		path = append(path, pathStep{feat: c.feat[id], delta: c.mean[next] - cur})
		cur, id = c.mean[next], next
	}
	return root, path
}

// Contribution is one input's share of a row's margin.
type Contribution struct {
	// Feature is the model's name for the input.
	Feature string
	// Value is the input as the model read it from the batch; NaN when
	// missing.
	Value float64
	// Contribution is how much the input moved the margin.
	Contribution float64
}

// Explanation is how one row's margin for one output decomposes: Bias plus
// the sum of the Features' contributions.
type Explanation struct {
	// Features are the model's inputs, in model order.
	Features []Contribution
	// Bias is the part no input accounts for: the intercept, or the base
	// margin plus the trees' root means.
	Bias float64
}

// Explain computes the contributions to the margin behind output k of row
// i of rec. The features are read from rec exactly as Score reads them
// (matched by name; float64, float32, int64 or int32; nulls are missing),
// so rec may be the feature batch or any batch carrying its columns, such
// as the pipeline's result batch. It allocates: it is meant for the few
// rows that raise an alert, not for every row (Contributions is the
// allocation-free form).
func (m *Model) Explain(rec arrow.RecordBatch, i, k int) (Explanation, error) {
	if i < 0 || int64(i) >= rec.NumRows() {
		return Explanation{}, fmt.Errorf("explain: row %d of a %d-row batch", i, rec.NumRows())
	}
	if err := m.CheckContributions(); err != nil {
		return Explanation{}, fmt.Errorf("explain: %w", err)
	}
	row := rec.NewSlice(int64(i), int64(i+1))
	defer row.Release()
	var r Result
	cols, err := r.bindColumns(row, m.Features())
	if err != nil {
		return Explanation{}, fmt.Errorf("explain: %w", err)
	}
	x := make([]float64, len(cols))
	for j, c := range cols {
		x[j] = c[0]
	}
	c, err := m.Contributions(nil, x, k, &r.scratch)
	if err != nil {
		return Explanation{}, fmt.Errorf("explain: %w", err)
	}
	ex := Explanation{Features: make([]Contribution, len(x)), Bias: c[len(x)]}
	for j, name := range m.Features() {
		ex.Features[j] = Contribution{Feature: name, Value: x[j], Contribution: c[j]}
	}
	return ex, nil
}
