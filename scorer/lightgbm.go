package scorer

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// LightGBM text models (model.txt, what Booster.save_model writes).
//
// The file is a header of key=value lines ("tree", version, num_class,
// num_tree_per_iteration, max_feature_idx, objective, average_output,
// feature_names, feature_infos, tree_sizes), then one block per tree
// ("Tree=i" and key=value lines up to a blank line), then "end of trees",
// the feature importances and the training parameters. The semantics
// followed are LightGBM's own (src/io/tree.cpp, include/LightGBM/tree.h,
// src/boosting/gbdt_model_text.cpp, src/objective/*):
//
//   - A numerical split sends x left when x <= threshold, compared in
//     double. Its decision_type holds the missing type in bits 2-3 (None,
//     Zero, NaN) and "missing goes left" in bit 1: with None, NaN is read
//     as 0; with Zero, NaN and zero (|x| <= kZeroThreshold) take the
//     default direction; with NaN, NaN does.
//   - A categorical split (bit 0) sends x left when the integer part of x
//     is in the node's bitset (cat_boundaries/cat_threshold); NaN, negative
//     values (after truncation toward zero, so -0.5 is category 0) and
//     values beyond int32 go right.
//   - Inputs with |x| <= kZeroThreshold are read as 0, as LightGBM's
//     prediction API does before any tree sees them.
//   - A row's raw score per class is the sum of its trees' leaf values in
//     double, tree by tree in file order; average_output (random forests)
//     divides it by the number of iterations; the objective then converts
//     it (sigmoid, softmax, exp...).

// isLightGBMText recognises a LightGBM text model (model.txt, as
// save_model writes it): it starts with the line "tree".
func isLightGBMText(b []byte) bool {
	return bytes.HasPrefix(b, []byte("tree\n")) || bytes.HasPrefix(b, []byte("tree\r\n"))
}

// lgbZeroThreshold is LightGBM's kZeroThreshold (1e-35f, a float widened to
// double): inputs no larger in magnitude are zero to LightGBM.
var lgbZeroThreshold = float64(float32(1e-35))

// decision_type bits (LightGBM's kCategoricalMask, kDefaultLeftMask and
// MissingType in bits 2-3).
const (
	lgbCategorical = 1
	lgbDefaultLeft = 2
	lgbMissNone    = 0
	lgbMissZero    = 1
	lgbMissNaN     = 2
)

type lgbHeader struct {
	version              string
	numClass             int
	numTreePerIteration  int
	maxFeatureIdx        int
	objective            string
	hasObjective         bool
	averageOutput        bool
	featureNames         []string
	treeSizes            []int64
	hasTreeSizes         bool
	linearTreeParameter  bool
	numFeatureInfos      int
	hasFeatureInfos      bool
	hasLabelIndex        bool
	hasMaxFeatureIdx     bool
	hasNumClass          bool
	hasNumTreePerIterKey bool
}

// lgbLines walks the file line by line, keeping each line's byte offset.
type lgbLines struct {
	s   string
	pos int
	no  int // 1-based number of the line last returned
}

// next returns the next line without its line ending, its length in the
// file with the ending (less the carriage return of a CRLF ending, as
// LightGBM's tree_sizes count), and false at the end.
func (l *lgbLines) next() (line string, size int, ok bool) {
	if l.pos >= len(l.s) {
		return "", 0, false
	}
	rest := l.s[l.pos:]
	i := strings.IndexByte(rest, '\n')
	if i < 0 {
		i = len(rest)
		l.pos += i
	} else {
		l.pos += i + 1
		size = 1
	}
	line = strings.TrimSuffix(rest[:i], "\r")
	l.no++
	return line, size + len(line), true
}

// parseLightGBM parses a LightGBM text model and compiles it for scoring.
func parseLightGBM(data []byte, o loadOptions) (predictor, ModelInfo, error) {
	var info ModelInfo
	lines := &lgbLines{s: string(data)}
	h, first, err := parseLGBHeader(lines)
	if err != nil {
		return nil, info, err
	}
	if nf := h.maxFeatureIdx + 1; nf > o.limits.MaxFeatures {
		return nil, info, limitError("the number of features (max_feature_idx+1)", int64(nf), "max_features", int64(o.limits.MaxFeatures))
	}
	trees, err := parseLGBTrees(lines, first, h, o.limits)
	if err != nil {
		return nil, info, err
	}
	// What follows the trees: only the training parameters matter (a
	// linear_tree model says so there too).
	for {
		line, _, ok := lines.next()
		if !ok {
			break
		}
		if strings.HasPrefix(line, "[linear_tree: ") && strings.TrimSpace(strings.TrimPrefix(line, "[linear_tree: ")) == "1]" {
			h.linearTreeParameter = true
		}
	}
	if h.linearTreeParameter {
		for i := range trees {
			if trees[i].linear == nil && trees[i].numLeaves > 1 {
				return nil, info, fmt.Errorf("tree %d: the parameters say linear_tree but the tree has no is_linear=1", i)
			}
		}
	}
	obj, err := parseLGBObjective(h)
	if err != nil {
		return nil, info, err
	}
	f, err := compileLightGBM(h, trees, obj, o.limits)
	if err != nil {
		return nil, info, err
	}
	info.Kind = "lightgbm"
	info.Objective = h.objective
	if !h.hasObjective {
		info.Objective = "custom"
	}
	info.Features = h.featureNames
	info.Outputs = h.numTreePerIteration
	info.Trees = len(trees)
	info.TotalTrees = len(trees)
	info.MaxDepth = f.maxDepth
	info.BestIteration = -1
	info.FormatVersion = h.version
	return f, info, nil
}

// parseLGBHeader reads the header up to the first "Tree=" line, which it
// returns (empty when the file has no tree).
func parseLGBHeader(lines *lgbLines) (lgbHeader, string, error) {
	var h lgbHeader
	line, _, _ := lines.next()
	if line != "tree" {
		return h, "", fmt.Errorf("line 1: want \"tree\", got %q", lgbClip(line))
	}
	seen := map[string]bool{}
	var first string
	for {
		line, _, ok := lines.next()
		if !ok {
			break
		}
		if strings.HasPrefix(line, "Tree=") {
			first = line
			break
		}
		if line == "" {
			continue
		}
		key, val, hasVal := strings.Cut(line, "=")
		if seen[key] {
			return h, "", fmt.Errorf("line %d: header key %s appears twice", lines.no, lgbClip(key))
		}
		seen[key] = true
		if !hasVal {
			if key == "average_output" {
				h.averageOutput = true
				continue
			}
			if key == "end of trees" {
				break
			}
			return h, "", fmt.Errorf("line %d: header line %q is not key=value", lines.no, lgbClip(line))
		}
		var err error
		switch key {
		case "version":
			h.version = val
		case "num_class":
			h.hasNumClass = true
			h.numClass, err = lgbCount(key, val, 1, 1<<16)
		case "num_tree_per_iteration":
			h.hasNumTreePerIterKey = true
			h.numTreePerIteration, err = lgbCount(key, val, 1, 1<<16)
		case "label_index":
			h.hasLabelIndex = true
		case "max_feature_idx":
			h.hasMaxFeatureIdx = true
			h.maxFeatureIdx, err = lgbCount(key, val, 0, maxFeatures-1)
		case "objective":
			h.objective, h.hasObjective = val, true
		case "feature_names":
			h.featureNames = strings.Split(val, " ")
		case "feature_infos":
			h.hasFeatureInfos = true
			h.numFeatureInfos = strings.Count(val, " ") + 1
		case "tree_sizes":
			h.hasTreeSizes = true
			if val != "" {
				for _, f := range strings.Split(val, " ") {
					v, perr := strconv.ParseInt(f, 10, 64)
					if perr != nil || v <= 0 {
						return h, "", fmt.Errorf("line %d: tree_sizes entry %q is not a positive integer", lines.no, lgbClip(f))
					}
					h.treeSizes = append(h.treeSizes, v)
				}
			}
		}
		if err != nil {
			return h, "", fmt.Errorf("line %d: %w", lines.no, err)
		}
	}
	// The keys LightGBM refuses a model without.
	for _, k := range []struct {
		ok   bool
		name string
	}{{h.hasNumClass, "num_class"}, {h.hasLabelIndex, "label_index"}, {h.hasMaxFeatureIdx, "max_feature_idx"},
		{h.featureNames != nil, "feature_names"}, {h.hasFeatureInfos, "feature_infos"}} {
		if !k.ok {
			return h, "", fmt.Errorf("the header has no %s", k.name)
		}
	}
	if !h.hasNumTreePerIterKey {
		h.numTreePerIteration = h.numClass
	}
	nf := h.maxFeatureIdx + 1
	if len(h.featureNames) != nf {
		return h, "", fmt.Errorf("feature_names has %d names but max_feature_idx is %d", len(h.featureNames), h.maxFeatureIdx)
	}
	if h.numFeatureInfos != nf {
		return h, "", fmt.Errorf("feature_infos has %d entries but max_feature_idx is %d", h.numFeatureInfos, h.maxFeatureIdx)
	}
	seenName := make(map[string]int, nf)
	for i, n := range h.featureNames {
		if n == "" {
			return h, "", fmt.Errorf("feature_names: name %d is empty", i)
		}
		if j, dup := seenName[n]; dup {
			return h, "", fmt.Errorf("feature_names: %q appears at %d and %d", lgbClip(n), j, i)
		}
		seenName[n] = i
		// The names outlive the file's text.
		h.featureNames[i] = strings.Clone(n)
	}
	h.version = strings.Clone(h.version)
	h.objective = strings.Clone(h.objective)
	return h, first, nil
}

// parseLGBTrees reads the tree blocks, the first of which starts with the
// line first.
func parseLGBTrees(lines *lgbLines, first string, h lgbHeader, lim ModelLimits) ([]lgbRawTree, error) {
	var trees []lgbRawTree
	nodes := 0
	header := first
	headerSize := len(first) + 1 // the line LightGBM's tree_sizes count, with its newline
	for header != "" {
		i := len(trees)
		if header != "Tree="+strconv.Itoa(i) {
			return nil, fmt.Errorf("line %d: want \"Tree=%d\", got %q", lines.no, i, lgbClip(header))
		}
		if i >= lim.MaxTrees {
			return nil, limitError("the number of trees", int64(i+1), "max_trees", int64(lim.MaxTrees))
		}
		kv, size, err := readLGBBlock(lines)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
		size += headerSize
		t, err := parseLGBTree(kv, h.maxFeatureIdx+1, lim.MaxNodes-nodes, lim.MaxDepth)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
		nodes += 2*t.numLeaves - 1
		trees = append(trees, t)
		// A tree's size in tree_sizes runs to the next "Tree=" or "end of
		// trees" line, blank lines included.
		header = ""
		for {
			line, sz, ok := lines.next()
			if !ok || line == "end of trees" {
				break
			}
			if line == "" {
				size += sz
				continue
			}
			if !strings.HasPrefix(line, "Tree=") {
				return nil, fmt.Errorf("line %d: want \"Tree=%d\" or \"end of trees\", got %q", lines.no, i+1, lgbClip(line))
			}
			header, headerSize = line, sz
			break
		}
		if h.hasTreeSizes && i < len(h.treeSizes) && h.treeSizes[i] != int64(size) {
			return nil, fmt.Errorf("tree %d: tree_sizes says %d bytes, the tree has %d", i, h.treeSizes[i], size)
		}
	}
	if len(trees) == 0 {
		return nil, fmt.Errorf("the file has no trees")
	}
	if h.hasTreeSizes && len(h.treeSizes) != len(trees) {
		return nil, fmt.Errorf("tree_sizes lists %d trees, the file has %d", len(h.treeSizes), len(trees))
	}
	if len(trees)%h.numTreePerIteration != 0 {
		return nil, fmt.Errorf("%d trees is not a whole number of iterations of num_tree_per_iteration %d", len(trees), h.numTreePerIteration)
	}
	return trees, nil
}

// readLGBBlock reads a tree's key=value lines up to a blank line (or the
// end), returning them and their size in bytes with the blank line.
func readLGBBlock(lines *lgbLines) (map[string]string, int, error) {
	kv := make(map[string]string, 20)
	size := 0
	for {
		line, sz, ok := lines.next()
		if !ok {
			return kv, size, nil
		}
		size += sz
		if line == "" {
			return kv, size, nil
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, 0, fmt.Errorf("line %d: %q is not key=value", lines.no, lgbClip(line))
		}
		if _, dup := kv[key]; dup {
			return nil, 0, fmt.Errorf("line %d: key %s appears twice", lines.no, lgbClip(key))
		}
		if len(kv) >= 64 {
			return nil, 0, fmt.Errorf("line %d: more than 64 keys in one tree", lines.no)
		}
		kv[key] = val
	}
}

// lgbClip shortens text quoted in an error.
func lgbClip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func lgbCount(key, val string, lo, hi int) (int, error) {
	v, err := strconv.Atoi(val)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s is %q, want an integer in [%d,%d]", key, lgbClip(val), lo, hi)
	}
	return v, nil
}
