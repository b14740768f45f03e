package scorer

import (
	"fmt"
	"math"
)

// gblinear is XGBoost's linear booster. XGBoost 1.7 (GBLinear::Pred)
// computes each output group's margin in float32: the group's bias weight
// plus the base margin, then, in feature order, each present input (as
// float32) times its weight, every product and sum rounded to float32.
// Missing inputs are absent from XGBoost's sparse rows and add nothing.
// Predictions apply the objective's link as for trees. XGBoost ignores
// iteration ranges for gblinear, so best_iteration changes nothing.
//
// Contributions are XGBoost's for gblinear (PredictContribution): each
// present input's value times its weight (0 when missing), and a bias of
// the bias weight plus the base margin; they sum to the margin up to
// float32 rounding.
type gblinear struct {
	numFeature, numGroup int
	obj                  objective
	// w holds the feature weights feature-major: w[j*numGroup+g].
	w []float32
	// bias is each group's starting margin, bias weight + base margin,
	// rounded to float32 as XGBoost adds them.
	bias []float32
	// link turns margins into scores: the forest's transform, so both
	// boosters apply an objective identically. It holds no trees.
	link forest
	// rows is how many rows one pass accumulates (numGroup margins each),
	// bounded so a model with many classes keeps a small Scratch.
	rows int
}

var _ predictor = (*gblinear)(nil)

// gblinearAccValues bounds the float32 margins one pass keeps per Scratch.
const gblinearAccValues = 1 << 16

// compileGBLinear checks a gblinear body against the learner's shape.
func compileGBLinear(body *xgbLinearBody, h xgbHeader, opts loadOptions, info *ModelInfo) (*gblinear, error) {
	if body == nil {
		return nil, fmt.Errorf("xgboost model: booster \"gblinear\": gradient_booster.model is missing")
	}
	nf, ng := h.numFeature, h.numGroup
	want := (nf + 1) * ng
	if len(body.Weights) != want {
		return nil, fmt.Errorf("xgboost model: booster \"gblinear\": weights has %d entries, want %d ((num_feature %d + 1) x %d output groups)",
			len(body.Weights), want, nf, ng)
	}
	if b := int64(want) * 4; b > opts.limits.MaxHeapBytes {
		return nil, limitError("the linear weights' size", b, "max_heap_bytes", opts.limits.MaxHeapBytes)
	}
	for i, v := range body.Weights {
		if v != v || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("xgboost model: booster \"gblinear\": weights[%d] is %v, want a finite number", i, v)
		}
	}
	lm := &gblinear{
		numFeature: nf, numGroup: ng, obj: h.obj,
		w:    body.Weights[: nf*ng : nf*ng],
		bias: make([]float32, ng),
		link: forest{numGroup: ng, obj: h.obj},
		rows: max(1, min(blockRows, gblinearAccValues/ng)),
	}
	for g := range ng {
		lm.bias[g] = body.Weights[nf*ng+g] + h.margin
	}
	info.BestIteration = -1
	return lm, nil
}

func (lm *gblinear) marginOutputs() int { return lm.numGroup }

func (lm *gblinear) predict(cols [][]float64, n int, out [][]float64, s *Scratch, margins bool) {
	ng := lm.numGroup
	if cap(s.acc) < lm.rows*ng {
		s.acc = make([]float32, lm.rows*ng)
	}
	for start := 0; start < n; start += lm.rows {
		b := min(lm.rows, n-start)
		acc := s.acc[:b*ng]
		for g := range ng {
			a := acc[g*b : g*b+b]
			for i := range a {
				a[i] = lm.bias[g]
			}
		}
		lm.accumulate(cols, start, b, acc)
		lm.link.transform(acc, b, start, out, margins)
	}
}

func (lm *gblinear) noContributions() error {
	if lm.obj == objMultiSoftmax {
		return fmt.Errorf("%w: a multi:softmax score is a class index, not a margin", ErrNoContributions)
	}
	return nil
}

func (lm *gblinear) contributions(dst, x []float64, k int, _ *Scratch) error {
	if err := lm.noContributions(); err != nil {
		return err
	}
	for j, v := range x {
		dst[j] = 0
		if v == v {
			dst[j] = float64(float32(v) * lm.w[j*lm.numGroup+k])
		}
	}
	dst[lm.numFeature] = float64(lm.bias[k])
	return nil
}

// residentBytes is the weights the model keeps.
func (lm *gblinear) residentBytes() int64 {
	return int64(cap(lm.w)+cap(lm.bias)) * 4
}

// accumulate adds every present input's term to the b margins of each
// group in acc, four features at a time so each margin is loaded and
// stored once per four terms; each margin still adds its terms one by one
// in feature order, as XGBoost does.
func (lm *gblinear) accumulate(cols [][]float64, start, b int, acc []float32) {
	nf, ng := lm.numFeature, lm.numGroup
	j := 0
	for ; j+4 <= nf; j += 4 {
		c0, c1 := cols[j][start:start+b], cols[j+1][start:start+b]
		c2, c3 := cols[j+2][start:start+b], cols[j+3][start:start+b]
		for g := range ng {
			w0, w1, w2, w3 := lm.w[j*ng+g], lm.w[(j+1)*ng+g], lm.w[(j+2)*ng+g], lm.w[(j+3)*ng+g]
			a := acc[g*b : g*b+b]
			for i := range a {
				s := a[i]
				// The conversions round each product before the sum, as
				// XGBoost's float code does (no fused multiply-add).
				if x := c0[i]; x == x {
					s += float32(float32(x) * w0)
				}
				if x := c1[i]; x == x {
					s += float32(float32(x) * w1)
				}
				if x := c2[i]; x == x {
					s += float32(float32(x) * w2)
				}
				if x := c3[i]; x == x {
					s += float32(float32(x) * w3)
				}
				a[i] = s
			}
		}
	}
	for ; j < nf; j++ {
		c := cols[j][start : start+b]
		for g := range ng {
			wj := lm.w[j*ng+g]
			a := acc[g*b : g*b+b]
			for i, x := range c {
				if x == x {
					a[i] += float32(float32(x) * wj)
				}
			}
		}
	}
}
