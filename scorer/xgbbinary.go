package scorer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// XGBoost's legacy binary model format: what Booster.save_model writes in
// XGBoost 0.x and 1.x when the file name has no .json or .ubj extension,
// and so what SageMaker's built-in XGBoost containers leave in
// model.tar.gz as xgboost-model. It is XGBoost's in-memory structs written
// little-endian (XGBoost byte-swaps on big-endian hosts), strings and
// vectors as a uint64 length and their bytes:
//
//	"binf"                  from 1.3 on; absent before
//	LearnerModelParamLegacy 136 bytes (binLearner* offsets)
//	objective name          string ("reg:linear" before 1.0)
//	booster name            string: gbtree, dart or gblinear
//	gbtree, dart:           GBTreeModelParam (160 bytes), then per tree
//	                        TreeParam (148 bytes), num_nodes RTreeNodes
//	                        (20 bytes), num_nodes RTreeNodeStats (16 bytes);
//	                        then tree_info (int32 per tree);
//	                        dart then weight_drop (vector<float>)
//	gblinear:               a 136-byte parameter block, then the weights
//	                        (vector<float>)
//	attributes              vector<pair<string,string>>, if
//	                        contain_extra_attrs; before 1.0 other data
//	                        may follow, which XGBoost ignores too.
//
// The reader fills the xgbDoc the JSON reader fills, so both compile the
// same way; every count is bounded by the bytes left and the ModelLimits
// before anything is allocated for it.

const (
	binLearnerParamBytes = 136
	binGBTreeParamBytes  = 160
	binTreeParamBytes    = 148
	binNodeBytes         = 20 // parent, cleft, cright, sindex, info
	binNodeStatBytes     = 16 // loss_chg, sum_hess, base_weight, leaf_child_cnt
	binLinearParamBytes  = 136
	// binMinTreeBytes is the least a tree takes: its parameters, one node
	// with its statistics and its tree_info entry.
	binMinTreeBytes = binTreeParamBytes + binNodeBytes + binNodeStatBytes + 4
	// binMaxNameBytes bounds the objective and booster names (XGBoost's
	// longest is 21 bytes).
	binMaxNameBytes = 256

	// Offsets in LearnerModelParamLegacy.
	binLearnerBaseScore    = 0
	binLearnerNumFeature   = 4
	binLearnerNumClass     = 8
	binLearnerExtraAttrs   = 12
	binLearnerMajorVersion = 20
	binLearnerMinorVersion = 24
	binLearnerNumTarget    = 28

	// Offsets in GBTreeModelParam.
	binGBTreeNumTrees        = 0
	binGBTreeNumParallelTree = 4
	binGBTreeSizeLeafVector  = 28

	// Offsets in TreeParam.
	binTreeNumNodes       = 4
	binTreeNumDeleted     = 8
	binTreeSizeLeafVector = 20

	// binDeletedNode is RTreeNode's sindex for a node pruning deleted.
	binDeletedNode = math.MaxUint32
	// binDefaultLeft is the bit of sindex that sends missing values left.
	binDefaultLeft = 1 << 31
)

// decodeXGBoostBinary reads XGBoost's legacy binary model format into doc,
// bounded by the default ModelLimits (compileXGBoost applies the
// configured ones to what it reads).
func decodeXGBoostBinary(data []byte, doc *xgbDoc) error {
	return readXGBoostBinary(data, doc, DefaultModelLimits())
}

// binReader reads the format's little-endian fields, naming the field in
// every error.
type binReader struct {
	b   []byte
	pos int
}

func (r *binReader) left() int { return len(r.b) - r.pos }

// take returns the next n bytes of field what.
func (r *binReader) take(n int, what string) ([]byte, error) {
	if n < 0 || n > r.left() {
		return nil, fmt.Errorf("%s: %d bytes needed at offset %d, %d left (is the file truncated?)", what, n, r.pos, r.left())
	}
	b := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return b, nil
}

// length reads a uint64 element count of field what whose elements take
// at least each bytes: the bytes left must hold them, and there may be no
// more than max.
func (r *binReader) length(what string, each, max int) (int, error) {
	b, err := r.take(8, what+" length")
	if err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(r.left()/each) {
		return 0, fmt.Errorf("%s: length %d at offset %d is more than the %d bytes left hold (is the file truncated?)", what, n, r.pos-8, r.left())
	}
	if n > uint64(max) {
		return 0, fmt.Errorf("%s: length %d at offset %d is over %d", what, n, r.pos-8, max)
	}
	return int(n), nil
}

func (r *binReader) string(what string, max int) (string, error) {
	n, err := r.length(what, 1, max)
	if err != nil {
		return "", err
	}
	b, err := r.take(n, what)
	return string(b), err
}

func (r *binReader) floats32(what string, max int) ([]float32, error) {
	n, err := r.length(what, 4, max)
	if err != nil {
		return nil, err
	}
	b, err := r.take(4*n, what)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = f32le(b[4*i:])
	}
	return out, nil
}

func u32le(b []byte) uint32  { return binary.LittleEndian.Uint32(b) }
func i32le(b []byte) int32   { return int32(binary.LittleEndian.Uint32(b)) }
func f32le(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

// readXGBoostBinary is decodeXGBoostBinary under the limits lim.
func readXGBoostBinary(data []byte, doc *xgbDoc, lim ModelLimits) error {
	r := &binReader{b: data}
	switch {
	case bytes.HasPrefix(data, []byte("binf")):
		r.pos = 4
	case bytes.HasPrefix(data, []byte("bs64")):
		return fmt.Errorf("%w: base64 (\"bs64\") model files are not read; XGBoost itself stopped reading them", ErrUnsupportedModel)
	}
	hdr, err := r.take(binLearnerParamBytes, "learner_model_param")
	if err != nil {
		return err
	}
	major, minor := u32le(hdr[binLearnerMajorVersion:]), u32le(hdr[binLearnerMinorVersion:])
	if major != 0 || minor != 0 { // versions before 1.0 record none
		doc.Version = []int{int(major), int(minor)}
	}
	objName, err := r.string("objective name", binMaxNameBytes)
	if err != nil {
		return err
	}
	if objName == "reg:linear" {
		// XGBoost 1.x reads the pre-1.0 name as squared error, and names
		// it so in every model it writes.
		objName = "reg:squarederror"
	}
	l := &xgbLearner{Attributes: map[string]string{}}
	doc.Learner = l
	l.Objective.Name = objName
	numTarget := u32le(hdr[binLearnerNumTarget:])
	if numTarget == 0 { // written before num_target existed; XGBoost reads 1
		numTarget = 1
	}
	mp := &l.LearnerModelParam
	mp.NumFeature = strconv.FormatUint(uint64(u32le(hdr[binLearnerNumFeature:])), 10)
	mp.NumClass = strconv.Itoa(int(i32le(hdr[binLearnerNumClass:])))
	mp.NumTarget = strconv.FormatUint(uint64(numTarget), 10)
	base := f32le(hdr[binLearnerBaseScore:])
	if major < 1 {
		base = legacyBaseScore(objName, base)
	}
	mp.BaseScore = strconv.FormatFloat(float64(base), 'g', -1, 32)

	gb := &l.GradientBooster
	if gb.Name, err = r.string("booster name", binMaxNameBytes); err != nil {
		return err
	}
	switch gb.Name {
	case "gbtree", "dart":
		if gb.Model, err = r.gbtree(lim); err != nil {
			return err
		}
		if gb.Name == "dart" && len(gb.Model.Trees) > 0 {
			if gb.WeightDrop, err = r.floats32("dart weight_drop", len(gb.Model.Trees)); err != nil {
				return err
			}
			if len(gb.WeightDrop) != len(gb.Model.Trees) {
				return fmt.Errorf("dart weight_drop has %d entries for %d trees", len(gb.WeightDrop), len(gb.Model.Trees))
			}
		}
	case "gblinear":
		if _, err := r.take(binLinearParamBytes, "gblinear model param"); err != nil {
			return err
		}
		gb.Linear = &xgbLinearBody{}
		if gb.Linear.Weights, err = r.floats32("gblinear weights", math.MaxInt); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: booster %q (want gbtree, dart or gblinear)", ErrUnsupportedModel, gb.Name)
	}
	if i32le(hdr[binLearnerExtraAttrs:]) != 0 {
		if err := r.attributes(l.Attributes); err != nil {
			return err
		}
	}
	if r.left() != 0 && major >= 1 {
		// Before 1.0, count:poisson's max_delta_step and the evaluation
		// metrics' names could follow; XGBoost skips them, as we do.
		return fmt.Errorf("%d bytes of unknown data after the model at offset %d", r.left(), r.pos)
	}
	parallel := 1
	if gb.Model != nil {
		parallel, _ = strconv.Atoi(gb.Model.Param.NumParallelTree)
	}
	return bestIterationFromNTreeLimit(l.Attributes, parallel)
}

// gbtree reads GBTreeModelParam, the trees and tree_info.
func (r *binReader) gbtree(lim ModelLimits) (*xgbGBTreeBody, error) {
	p, err := r.take(binGBTreeParamBytes, "gbtree_model_param")
	if err != nil {
		return nil, err
	}
	g := &xgbGBTreeBody{}
	numTrees := i32le(p[binGBTreeNumTrees:])
	g.Param.NumTrees = strconv.Itoa(int(numTrees))
	g.Param.NumParallelTree = strconv.Itoa(int(i32le(p[binGBTreeNumParallelTree:])))
	g.Param.SizeLeafVector = strconv.Itoa(int(i32le(p[binGBTreeSizeLeafVector:])))
	switch {
	case numTrees < 0:
		return nil, fmt.Errorf("gbtree_model_param: num_trees is %d", numTrees)
	case int(numTrees) > lim.MaxTrees:
		return nil, limitError("the number of trees", int64(numTrees), "max_trees", int64(lim.MaxTrees))
	case int(numTrees) > r.left()/binMinTreeBytes:
		return nil, fmt.Errorf("gbtree_model_param: num_trees is %d but %d bytes are left, and a tree takes at least %d (is the file truncated?)", numTrees, r.left(), binMinTreeBytes)
	}
	g.Trees = make([]xgbTree, numTrees)
	nodes := 0
	for i := range g.Trees {
		if err := r.tree(&g.Trees[i], i, &nodes, lim); err != nil {
			return nil, err
		}
	}
	if numTrees > 0 {
		b, err := r.take(4*int(numTrees), "tree_info")
		if err != nil {
			return nil, err
		}
		g.TreeInfo = make([]int, numTrees)
		for i := range g.TreeInfo {
			g.TreeInfo[i] = int(i32le(b[4*i:]))
		}
	}
	return g, nil
}

// tree reads tree i (TreeParam, its nodes and their statistics) into t;
// nodes counts the nodes read so far, for the max_nodes limit.
func (r *binReader) tree(t *xgbTree, i int, nodes *int, lim ModelLimits) error {
	what := "tree " + strconv.Itoa(i)
	p, err := r.take(binTreeParamBytes, what+": tree_param")
	if err != nil {
		return err
	}
	nn := int(i32le(p[binTreeNumNodes:]))
	if nn <= 0 {
		return fmt.Errorf("%s: tree_param: num_nodes is %d, want at least 1", what, nn)
	}
	if *nodes += nn; *nodes > lim.MaxNodes {
		return fmt.Errorf("%s: %w", what, limitError("the number of nodes", int64(*nodes), "max_nodes", int64(lim.MaxNodes)))
	}
	if need := nn * (binNodeBytes + binNodeStatBytes); need > r.left() {
		return fmt.Errorf("%s: tree_param: num_nodes is %d, which needs %d bytes at offset %d, %d left (is the file truncated?)", what, nn, need, r.pos, r.left())
	}
	t.TreeParam.NumNodes = strconv.Itoa(nn)
	t.TreeParam.SizeLeafVector = strconv.Itoa(int(i32le(p[binTreeSizeLeafVector:])))
	nb, _ := r.take(nn*binNodeBytes, what+": nodes")
	sb, _ := r.take(nn*binNodeStatBytes, what+": node statistics")
	t.LeftChildren = make([]int32, nn)
	t.RightChildren = make([]int32, nn)
	t.SplitIndices = make([]int64, nn)
	t.SplitConditions = make([]float32, nn)
	t.DefaultLeft = make([]bool, nn)
	t.SumHessian = make([]float32, nn)
	deleted := 0
	for j := range nn {
		n := nb[j*binNodeBytes:]
		t.LeftChildren[j] = i32le(n[4:])
		t.RightChildren[j] = i32le(n[8:])
		sindex := u32le(n[12:])
		if sindex == binDeletedNode && j > 0 {
			deleted++
		}
		t.SplitIndices[j] = int64(sindex &^ binDefaultLeft)
		t.DefaultLeft[j] = sindex&binDefaultLeft != 0
		// info is a union: the leaf value of a leaf, the split condition
		// of a split, as in the JSON model's split_conditions.
		t.SplitConditions[j] = f32le(n[16:])
		t.SumHessian[j] = f32le(sb[j*binNodeStatBytes+4:])
	}
	if nd := int(i32le(p[binTreeNumDeleted:])); nd != deleted {
		return fmt.Errorf("%s: tree_param: num_deleted is %d but %d nodes are marked deleted", what, nd, deleted)
	}
	return nil
}

// attributes reads the learner's attributes. XGBoost stores its objective's
// configuration ("objective") and evaluation metrics ("metrics") among
// them and takes them out on loading, so they are left out here as well.
func (r *binReader) attributes(dst map[string]string) error {
	n, err := r.length("attributes", 16, math.MaxInt)
	if err != nil {
		return err
	}
	for i := range n {
		what := "attribute " + strconv.Itoa(i)
		k, err := r.string(what+" name", math.MaxInt)
		if err != nil {
			return err
		}
		v, err := r.string(what+" ("+strconv.Quote(k)+") value", math.MaxInt)
		if err != nil {
			return err
		}
		if k != "objective" && k != "metrics" {
			dst[k] = v
		}
	}
	return nil
}

// bestIterationFromNTreeLimit gives a model that records only
// best_ntree_limit (best_iteration+1 times num_parallel_tree) the
// best_iteration that limit stands for, so prediction is limited as
// XGBoost's ntree_limit would limit it. best_iteration wins when both are
// there, as it does in XGBoost's own predict; a limit of 0 means every tree.
func bestIterationFromNTreeLimit(attrs map[string]string, parallel int) error {
	s, ok := attrs["best_ntree_limit"]
	if _, has := attrs["best_iteration"]; has || !ok {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	switch {
	case err != nil || n < 0:
		return fmt.Errorf("attribute best_ntree_limit is %q, want a non-negative integer", s)
	case n == 0:
		return nil
	}
	parallel = max(parallel, 1)
	if n < parallel {
		return fmt.Errorf("attribute best_ntree_limit is %d, less than num_parallel_tree %d", n, parallel)
	}
	attrs["best_iteration"] = strconv.Itoa(n/parallel - 1)
	return nil
}

// legacyBaseScore undoes what XGBoost before 1.0 did to base_score before
// saving it: it stored the margin (ProbToMargin of the configured value),
// so XGBoost 1.x applies the objective's prediction transform on loading,
// in float32 as it does, except for multi-class objectives, whose base
// score is a margin already.
func legacyBaseScore(obj string, stored float32) float32 {
	switch obj {
	case "binary:logistic", "reg:logistic":
		// XGBoost's common::Sigmoid, with its clamp (its 1e-16 vanishes
		// in float32).
		x := min(-stored, 88.7)
		return 1 / (float32(math.Exp(float64(x))) + 1)
	case "count:poisson":
		return float32(math.Exp(float64(stored)))
	}
	return stored
}
