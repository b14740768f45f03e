package scorer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// LinearFormatMarker is the key that marks the linear model JSON format:
//
//	{
//	  "streamscore_linear": 1,
//	  "link": "logistic",
//	  "intercept": -2.5,
//	  "features": [
//	    {"name": "temp_mean_5m", "weight": 0.031},
//	    {"name": "vibration_max_5m", "weight": 1.7, "missing": 0.2}
//	  ]
//	}
//
// score = link(intercept + sum(weight * x)), where a missing x (NaN or null)
// is replaced by the feature's "missing" value (default 0). link is
// "identity" (default), "logistic" (1/(1+exp(-z))) or "exp". Arithmetic is
// float64.
const LinearFormatMarker = "streamscore_linear"

type linearDoc struct {
	Version   *int    `json:"streamscore_linear"`
	Link      string  `json:"link"`
	Intercept float64 `json:"intercept"`
	Features  []struct {
		Name    string   `json:"name"`
		Weight  *float64 `json:"weight"`
		Missing float64  `json:"missing"`
	} `json:"features"`
}

type linearModel struct {
	intercept float64
	weights   []float64
	missing   []float64
	link      objective
}

func isLinearDoc(b []byte) bool {
	return bytes.Contains(b, []byte(`"`+LinearFormatMarker+`"`))
}

func parseLinear(b []byte) (*linearModel, ModelInfo, error) {
	var info ModelInfo
	var doc linearDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, info, fmt.Errorf("linear model: %w", err)
	}
	if doc.Version == nil || *doc.Version != 1 {
		return nil, info, fmt.Errorf("linear model: %q must be 1", LinearFormatMarker)
	}
	lm := &linearModel{intercept: doc.Intercept}
	switch doc.Link {
	case "", "identity":
		lm.link, doc.Link = objIdentity, "identity"
	case "logistic":
		lm.link = objRegLogistic
	case "exp":
		lm.link = objExp
	default:
		return nil, info, fmt.Errorf("linear model: link %q: want identity, logistic or exp", doc.Link)
	}
	if len(doc.Features) == 0 {
		return nil, info, fmt.Errorf("linear model: no features")
	}
	if !finite(doc.Intercept) {
		return nil, info, fmt.Errorf("linear model: intercept is not finite")
	}
	seen := map[string]bool{}
	for i, f := range doc.Features {
		switch {
		case f.Name == "":
			return nil, info, fmt.Errorf("linear model: features[%d]: name is empty", i)
		case seen[f.Name]:
			return nil, info, fmt.Errorf("linear model: features[%d]: name %q appears twice", i, f.Name)
		case f.Weight == nil:
			return nil, info, fmt.Errorf("linear model: features[%d] (%s): weight is missing", i, f.Name)
		case !finite(*f.Weight) || !finite(f.Missing):
			return nil, info, fmt.Errorf("linear model: features[%d] (%s): weight and missing must be finite", i, f.Name)
		}
		seen[f.Name] = true
		info.Features = append(info.Features, f.Name)
		lm.weights = append(lm.weights, *f.Weight)
		lm.missing = append(lm.missing, f.Missing)
	}
	info.Kind = "linear"
	info.Objective = "linear:" + doc.Link
	info.Outputs = 1
	info.BestIteration = -1
	return lm, info, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func (lm *linearModel) marginOutputs() int { return 1 }

func (lm *linearModel) noContributions() error { return nil }

// contributions of a linear model are exact: weight times value.
func (lm *linearModel) contributions(dst, x []float64, _ int, _ *Scratch) error {
	for j, w := range lm.weights {
		v := x[j]
		if v != v {
			v = lm.missing[j]
		}
		dst[j] = w * v
	}
	dst[len(lm.weights)] = lm.intercept
	return nil
}

func (lm *linearModel) predict(cols [][]float64, n int, outs [][]float64, _ *Scratch, margins bool) {
	out := outs[0]
	for i := range n {
		out[i] = lm.intercept
	}
	for j, w := range lm.weights {
		c, miss := cols[j][:n], lm.missing[j]
		for i, x := range c {
			if x != x {
				x = miss
			}
			out[i] += w * x
		}
	}
	if margins {
		return
	}
	switch lm.link {
	case objRegLogistic:
		for i := range n {
			out[i] = sigmoid(out[i])
		}
	case objExp:
		for i := range n {
			out[i] = math.Exp(out[i])
		}
	}
}
