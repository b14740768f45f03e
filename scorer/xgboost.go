package scorer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrUnsupportedModel is wrapped by every error that refuses a model which
// parsed but uses something the embedded scorer cannot reproduce exactly.
var ErrUnsupportedModel = errors.New("unsupported model")

// xgbDoc mirrors the parts of XGBoost's JSON model schema (1.0 to 3.x) that
// prediction needs; everything else (loss changes, hessians, training
// parameters) is skipped.
type xgbDoc struct {
	Learner *xgbLearner
	Version []int
}

type xgbLearner struct {
	Attributes        map[string]string
	FeatureNames      []string
	FeatureTypes      []string
	GradientBooster   xgbBooster
	LearnerModelParam struct {
		BaseScore, NumClass, NumFeature, NumTarget string
	}
	Objective struct {
		Name string
	}
}

// xgbBooster is learner.gradient_booster. Name selects which of its
// bodies applies; a decoder (JSON, UBJSON or the legacy binary format)
// fills only that booster's fields:
//
//   - "gbtree": Model, from gradient_booster.model.
//   - "dart": Model, from gradient_booster.gbtree.model (dart wraps a
//     whole gbtree), and WeightDrop.
//   - "gblinear": Linear, from gradient_booster.model.
type xgbBooster struct {
	Name  string
	Model *xgbGBTreeBody
	// WeightDrop is dart's weight_drop: one weight per tree of Model.Trees,
	// in the same order, by which XGBoost multiplies that tree's output
	// when predicting. nil for other boosters.
	WeightDrop []float32
	// Linear is gblinear's model; nil for other boosters.
	Linear *xgbLinearBody
}

// xgbLinearBody is a gblinear model (gradient_booster.model).
type xgbLinearBody struct {
	// Weights are laid out as XGBoost's GBLinearModel keeps them:
	// num_feature*num_group feature weights, feature-major (the weight of
	// feature j for output group g is Weights[j*num_group+g]), then
	// num_group biases.
	Weights []float32
}

type xgbGBTreeBody struct {
	Param struct {
		NumParallelTree, NumTrees, SizeLeafVector string
	}
	IterationIndptr []int
	TreeInfo        []int
	Trees           []xgbTree
}

type xgbTree struct {
	LeftChildren, RightChildren []int32
	SplitIndices                []int64
	SplitConditions             []float32
	DefaultLeft                 []bool
	SplitType                   []int32
	Categories                  []int64
	CategoriesNodes             []int64
	CategoriesSegments          []int64
	CategoriesSizes             []int64
	// SumHessian is each node's hessian sum (its cover); feature
	// contributions weight child means by it. Prediction does not need it.
	SumHessian []float32
	TreeParam  struct {
		NumNodes, SizeLeafVector string
	}
}

// objective identifies how margins become predictions.
type objective uint8

const (
	objBinaryLogistic objective = iota + 1
	objBinaryLogitRaw
	objRegSquaredError
	objRegLogistic
	objCountPoisson
	objMultiSoftprob
	objMultiSoftmax
	objIdentity // linear models with an identity link
	objExp      // linear models with a log link
)

var objectiveNames = map[string]objective{
	"binary:logistic":  objBinaryLogistic,
	"binary:logitraw":  objBinaryLogitRaw,
	"reg:squarederror": objRegSquaredError,
	"reg:logistic":     objRegLogistic,
	"count:poisson":    objCountPoisson,
	"multi:softprob":   objMultiSoftprob,
	"multi:softmax":    objMultiSoftmax,
}

func (o objective) String() string {
	for k, v := range objectiveNames {
		if v == o {
			return k
		}
	}
	switch o {
	case objIdentity:
		return "identity"
	case objExp:
		return "exp"
	}
	return "objective(" + strconv.Itoa(int(o)) + ")"
}

func supportedObjectives() string {
	return "binary:logistic, binary:logitraw, reg:squarederror, reg:logistic, count:poisson, multi:softprob, multi:softmax"
}

// parseXGBoostJSON parses an XGBoost JSON model document.
func parseXGBoostJSON(data []byte, opts loadOptions) (predictor, ModelInfo, error) {
	var doc xgbDoc
	if err := decodeXGBoost(data, &doc); err != nil {
		return nil, ModelInfo{}, fmt.Errorf("xgboost model: %w", err)
	}
	return compileXGBoost(&doc, opts)
}

func atoiField(name, s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("xgboost model: %s is %q, want a non-negative integer", name, s)
	}
	return v, nil
}

// parseBaseScore reads base_score as XGBoost writes it: "5E-1" before 3.1,
// "[5E-1]" (one per target) from 3.1 on.
func parseBaseScore(s string) ([]float32, error) {
	if s == "" {
		return []float32{0.5}, nil
	}
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "[") {
		if !strings.HasSuffix(t, "]") {
			return nil, fmt.Errorf("xgboost model: base_score %q: unterminated list", s)
		}
		t = t[1 : len(t)-1]
	}
	var out []float32
	for part := range strings.SplitSeq(t, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 32)
		if err != nil {
			return nil, fmt.Errorf("xgboost model: base_score %q: %w", s, err)
		}
		out = append(out, float32(v))
	}
	return out, nil
}

// xgbHeader is what every booster takes from the learner: how many
// inputs and output groups, the objective and the base margin.
type xgbHeader struct {
	obj        objective
	numFeature int
	numGroup   int
	margin     float32 // base_score in margin space
}

func compileXGBoost(doc *xgbDoc, opts loadOptions) (predictor, ModelInfo, error) {
	h, info, err := xgbLearnerHeader(doc, opts.limits)
	if err != nil {
		return nil, info, err
	}
	gb := &doc.Learner.GradientBooster
	var p predictor
	switch gb.Name {
	case "gbtree":
		if gb.Model == nil {
			return nil, info, fmt.Errorf("xgboost model: gradient_booster.model is missing")
		}
		p, err = compileTrees(gb.Model, nil, h, doc.Learner.Attributes, opts, &info)
	case "dart":
		if gb.Model == nil {
			return nil, info, fmt.Errorf("xgboost model: booster \"dart\": gradient_booster.gbtree.model is missing")
		}
		p, err = compileDart(gb.Model, gb.WeightDrop, h, doc.Learner.Attributes, opts, &info)
	case "gblinear":
		p, err = compileGBLinear(gb.Linear, h, opts, &info)
	case "":
		return nil, info, fmt.Errorf("xgboost model: gradient_booster.name is missing")
	default:
		return nil, info, fmt.Errorf("%w: booster %q: the boosters scored in process are gbtree, dart and gblinear", ErrUnsupportedModel, gb.Name)
	}
	if err != nil {
		return nil, info, err
	}
	info.Outputs = h.numGroup
	if h.obj == objMultiSoftmax {
		info.Outputs = 1
	}
	info.Kind, info.Booster = "xgboost", gb.Name
	return p, info, nil
}

// xgbLearnerHeader checks the learner's objective, features, classes and
// base_score, which every booster shares, and starts the model's info.
func xgbLearnerHeader(doc *xgbDoc, lim ModelLimits) (xgbHeader, ModelInfo, error) {
	var (
		info ModelInfo
		h    xgbHeader
	)
	l := doc.Learner
	if l == nil {
		return h, info, fmt.Errorf("xgboost model: no \"learner\" object (is this an XGBoost JSON model?)")
	}
	if len(doc.Version) > 0 {
		parts := make([]string, len(doc.Version))
		for i, v := range doc.Version {
			parts[i] = strconv.Itoa(v)
		}
		info.FormatVersion = strings.Join(parts, ".")
	}
	objName := l.Objective.Name
	obj, ok := objectiveNames[objName]
	if !ok {
		return h, info, fmt.Errorf("%w: objective %q: supported objectives are %s", ErrUnsupportedModel, objName, supportedObjectives())
	}
	info.Objective = objName
	mp := l.LearnerModelParam
	numClass, err := atoiField("num_class", mp.NumClass, 0)
	if err != nil {
		return h, info, err
	}
	numFeature, err := atoiField("num_feature", mp.NumFeature, 0)
	if err != nil {
		return h, info, err
	}
	numTarget, err := atoiField("num_target", mp.NumTarget, 1)
	if err != nil {
		return h, info, err
	}
	if numTarget > 1 {
		return h, info, fmt.Errorf("%w: num_target is %d: multi-target models are not supported", ErrUnsupportedModel, numTarget)
	}
	numGroup := 1
	if obj == objMultiSoftprob || obj == objMultiSoftmax {
		if numClass < 2 {
			return h, info, fmt.Errorf("xgboost model: objective %s needs num_class >= 2, got %d", objName, numClass)
		}
		numGroup = numClass
	} else if numClass > 1 {
		return h, info, fmt.Errorf("xgboost model: num_class is %d but objective %s is not multi-class", numClass, objName)
	}
	if numFeature > lim.MaxFeatures {
		return h, info, limitError("num_feature", int64(numFeature), "max_features", int64(lim.MaxFeatures))
	}
	names := l.FeatureNames
	if len(names) == 0 {
		names = make([]string, numFeature)
		for i := range names {
			names[i] = "f" + strconv.Itoa(i)
		}
	} else if len(names) != numFeature {
		return h, info, fmt.Errorf("xgboost model: %d feature_names but num_feature is %d", len(names), numFeature)
	}
	if len(l.FeatureTypes) != 0 && len(l.FeatureTypes) != numFeature {
		return h, info, fmt.Errorf("xgboost model: %d feature_types but num_feature is %d", len(l.FeatureTypes), numFeature)
	}
	seen := make(map[string]int, len(names))
	for i, n := range names {
		if j, dup := seen[n]; dup {
			return h, info, fmt.Errorf("xgboost model: feature name %q appears at %d and %d", n, j, i)
		}
		seen[n] = i
	}
	info.Features = names
	info.FeatureTypes = l.FeatureTypes

	base, err := parseBaseScore(mp.BaseScore)
	if err != nil {
		return h, info, err
	}
	for i := 1; i < len(base); i++ {
		if base[i] != base[0] {
			return h, info, fmt.Errorf("%w: base_score %q: per-class intercepts are not supported", ErrUnsupportedModel, mp.BaseScore)
		}
	}
	margin, err := baseMargin(obj, base[0])
	if err != nil {
		return h, info, err
	}
	return xgbHeader{obj: obj, numFeature: numFeature, numGroup: numGroup, margin: margin}, info, nil
}

// compileTrees builds the forest of a gbtree body, or of a dart model's
// when weights (one per tree) is not nil, and fills info's tree counts.
func compileTrees(body *xgbGBTreeBody, weights []float32, h xgbHeader, attrs map[string]string, opts loadOptions, info *ModelInfo) (*forest, error) {
	if slv, _ := atoiField("size_leaf_vector", body.Param.SizeLeafVector, 0); slv > 1 {
		return nil, fmt.Errorf("%w: size_leaf_vector is %d: vector-leaf (multi_output_tree) models are not supported", ErrUnsupportedModel, slv)
	}
	numTrees := len(body.Trees)
	if nt, err := atoiField("num_trees", body.Param.NumTrees, numTrees); err != nil {
		return nil, err
	} else if nt != numTrees {
		return nil, fmt.Errorf("xgboost model: num_trees is %d but %d trees are present", nt, numTrees)
	}
	if len(body.TreeInfo) != numTrees {
		return nil, fmt.Errorf("xgboost model: tree_info has %d entries for %d trees", len(body.TreeInfo), numTrees)
	}
	parallel, err := atoiField("num_parallel_tree", body.Param.NumParallelTree, 1)
	if err != nil {
		return nil, err
	}
	parallel = max(parallel, 1)
	use := numTrees
	if bi, ok := attrs["best_iteration"]; ok && !opts.allTrees {
		it, err := strconv.Atoi(bi)
		if err != nil || it < 0 {
			return nil, fmt.Errorf("xgboost model: attribute best_iteration is %q, want a non-negative integer", bi)
		}
		info.BestIteration = it
		limit := (it + 1) * parallel * h.numGroup
		if len(body.IterationIndptr) > it+1 {
			limit = body.IterationIndptr[it+1]
		}
		use = min(limit, numTrees)
	} else {
		info.BestIteration = -1
	}

	if numTrees > opts.limits.MaxTrees {
		return nil, limitError("the number of trees", int64(numTrees), "max_trees", int64(opts.limits.MaxTrees))
	}
	nodes := 0
	for i := range body.Trees {
		nodes += len(body.Trees[i].LeftChildren)
	}
	if nodes > opts.limits.MaxNodes {
		return nil, limitError("the number of nodes", int64(nodes), "max_nodes", int64(opts.limits.MaxNodes))
	}
	f := &forest{numFeature: h.numFeature, numGroup: h.numGroup, obj: h.obj, limits: opts.limits}
	f.base = make([]float32, h.numGroup)
	for g := range f.base {
		f.base[g] = h.margin
	}
	for t := 0; t < use; t++ {
		g := body.TreeInfo[t]
		if g < 0 || g >= h.numGroup {
			return nil, fmt.Errorf("xgboost model: tree %d: tree_info group %d out of range [0,%d)", t, g, h.numGroup)
		}
		tree := &body.Trees[t]
		if weights != nil {
			if tree, err = weightedTree(tree, weights[t]); err != nil {
				return nil, fmt.Errorf("xgboost model: tree %d: %w", t, err)
			}
		}
		if err := f.addTree(tree, uint32(g)); err != nil {
			return nil, fmt.Errorf("xgboost model: tree %d: %w", t, err)
		}
	}
	info.Trees = use
	info.TotalTrees = numTrees
	info.MaxDepth = f.maxDepth
	return f, nil
}

// baseMargin converts base_score from prediction space into margin space the
// way XGBoost's objectives do (ProbToMargin), in float32 as XGBoost does.
// binary:logitraw keeps base_score as a margin (its ProbToMargin is the
// identity), unlike binary:logistic.
func baseMargin(obj objective, p float32) (float32, error) {
	switch obj {
	case objBinaryLogistic, objRegLogistic:
		if !(p > 0 && p < 1) {
			return 0, fmt.Errorf("xgboost model: base_score %v must be in (0,1) for %s", p, obj)
		}
		return float32(-math.Log(float64(1/p - 1))), nil
	case objCountPoisson:
		if !(p > 0) {
			return 0, fmt.Errorf("xgboost model: base_score %v must be > 0 for %s", p, obj)
		}
		return float32(math.Log(float64(p))), nil
	}
	if math.IsNaN(float64(p)) || math.IsInf(float64(p), 0) {
		return 0, fmt.Errorf("xgboost model: base_score %v is not finite", p)
	}
	return p, nil
}
