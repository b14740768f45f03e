package scorer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// lgbStump is a one-split model on f0: leaf 0 (left) is -1, leaf 1
// (right) is +1, so a row's raw score says where it went.
func lgbStump(decisionType int, threshold string, objective string, extra string) []byte {
	body := fmt.Sprintf("num_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=%s\ndecision_type=%d\nleft_child=-1\nright_child=-2\nleaf_value=-1 1\ninternal_value=0\n%sis_linear=0\nshrinkage=1", threshold, decisionType, extra)
	return lgbWriteModel(objective, 1, 2, []string{body}, "")
}

func lgbScore(t *testing.T, m *Model, x float64, margins bool) float64 {
	t.Helper()
	out := alloc(m.Outputs(), 1)
	cols := [][]float64{{x}, {0}}
	var s Scratch
	var err error
	if margins {
		err = m.PredictMargins(cols, 1, out, &s)
	} else {
		err = m.Predict(cols, 1, out, &s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out[0][0]
}

// Numerical splits follow LightGBM's NumericalDecision: x <= threshold
// goes left; with missing type None a NaN reads as 0; with Zero, NaN, 0
// and anything within kZeroThreshold of 0 take the default direction;
// with NaN only NaN does; inputs within kZeroThreshold of 0 are 0.
func TestLightGBMNumericalMissingTypes(t *testing.T) {
	nan := math.NaN()
	inputs := []float64{nan, 0, 1e-36, -1e-36, -1, -0.5, math.Nextafter(-0.5, 1), 1, math.Inf(1), math.Inf(-1)}
	// Expected side for each input, split at -0.5.
	for _, c := range []struct {
		dt   int
		name string
		want string
	}{
		{0, "None", "RRRRLLRRRL"},
		{2, "None, default left (ignored)", "RRRRLLRRRL"},
		{4, "Zero, default right", "RRRRLLRRRL"},
		{6, "Zero, default left", "LLLLLLRRRL"},
		{8, "NaN, default right", "RRRRLLRRRL"},
		{10, "NaN, default left", "LRRRLLRRRL"},
	} {
		m := mustParse(t, lgbStump(c.dt, "-0.5", "regression", ""))
		for i, x := range inputs {
			want := -1.0
			if c.want[i] == 'R' {
				want = 1
			}
			if got := lgbScore(t, m, x, true); got != want {
				t.Errorf("decision_type %d (%s), x=%v: raw score %v, want %v", c.dt, c.name, x, got, want)
			}
		}
	}
	// A threshold of 0 tells a tiny input (read as 0, so left) from its
	// own value (right of 0).
	m := mustParse(t, lgbStump(8, "0", "regression", ""))
	if got := lgbScore(t, m, 1e-36, true); got != -1 {
		t.Errorf("1e-36 at threshold 0: %v, want -1 (read as 0)", got)
	}
	if got := lgbScore(t, m, 1e-30, true); got != 1 {
		t.Errorf("1e-30 at threshold 0: %v, want 1", got)
	}
}

// Categorical splits follow LightGBM's CategoricalDecision: the integer
// part of x (truncated toward zero) in the bitset goes left; NaN,
// negative categories and values beyond int32 go right.
func TestLightGBMCategoricalSplit(t *testing.T) {
	// Categories 0, 3 and 40 (bit 8 of the second word) go left.
	body := "num_leaves=2\nnum_cat=1\nsplit_feature=0\nthreshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=-1 1\ninternal_value=0\ncat_boundaries=0 2\ncat_threshold=9 256\nis_linear=0\nshrinkage=1"
	m := mustParse(t, lgbWriteModel("regression", 1, 2, []string{body}, ""))
	for _, c := range []struct {
		x    float64
		left bool
	}{
		{0, true}, {3, true}, {40, true}, {1, false}, {2, false}, {41, false},
		{3.7, true}, {40.99, true}, {-0.5, true} /* truncates to category 0 */, {1e-36, true},
		{-1, false}, {-3, false}, {64, false}, {1 << 20, false}, {1 << 31, false}, {1e300, false},
		{math.NaN(), false}, {math.Inf(1), false}, {math.Inf(-1), false},
	} {
		want := 1.0
		if c.left {
			want = -1
		}
		if got := lgbScore(t, m, c.x, true); got != want {
			t.Errorf("category %v: raw score %v, want %v", c.x, got, want)
		}
	}
}

// Each objective converts the raw score as its LightGBM ConvertOutput
// does.
func TestLightGBMObjectives(t *testing.T) {
	sig := func(s float64) func(float64) float64 {
		return func(r float64) float64 { return 1 / (1 + math.Exp(-s*r)) }
	}
	id := func(r float64) float64 { return r }
	exp := math.Exp
	for _, c := range []struct {
		objective string
		convert   func(float64) float64
	}{
		{"binary sigmoid:1", sig(1)},
		{"binary sigmoid:2.5", sig(2.5)},
		{"cross_entropy", sig(1)},
		{"xentropy", sig(1)},
		{"cross_entropy_lambda", func(r float64) float64 { return math.Log1p(math.Exp(r)) }},
		{"regression", id}, {"regression_l1", id}, {"huber", id}, {"fair", id}, {"quantile", id},
		{"mape", id}, {"lambdarank", id}, {"rank_xendcg", id}, {"mse", id}, {"custom", id}, {"", id},
		{"regression sqrt", func(r float64) float64 { return math.Copysign(r*r, r) }},
		{"huber sqrt", id}, // LightGBM's Huber loss turns sqrt off
		{"poisson", exp}, {"gamma", exp}, {"tweedie", exp},
	} {
		m := mustParse(t, lgbStump(2, "0.5", c.objective, ""))
		want := c.objective
		if want == "" {
			want = "custom"
		}
		if m.Info().Objective != want {
			t.Errorf("objective %q: Info().Objective %q", c.objective, m.Info().Objective)
		}
		for _, x := range []float64{0, 1} {
			raw := lgbScore(t, m, x, true)
			if got := lgbScore(t, m, x, false); got != c.convert(raw) {
				t.Errorf("objective %q, raw %v: prediction %v, want %v", c.objective, raw, got, c.convert(raw))
			}
		}
	}
	// Multi-class: softmax, and one sigmoid per class for multiclassova.
	bodies := []string{}
	for k := range 3 {
		bodies = append(bodies, fmt.Sprintf("num_leaves=2\nnum_cat=0\nsplit_feature=%d\nthreshold=0\ndecision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=%d %d\ninternal_value=0\nis_linear=0\nshrinkage=1", k%2, -k, k+1))
	}
	for _, obj := range []string{"multiclass num_class:3", "multiclassova num_class:3 sigmoid:2"} {
		m := mustParse(t, lgbWriteModel(obj, 3, 2, bodies, ""))
		cols := [][]float64{{-1, 1}, {1, -1}}
		raw, pred := alloc(3, 2), alloc(3, 2)
		var s Scratch
		if err := m.PredictMargins(cols, 2, raw, &s); err != nil {
			t.Fatal(err)
		}
		if err := m.Predict(cols, 2, pred, &s); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			mx := math.Max(raw[0][i], math.Max(raw[1][i], raw[2][i]))
			sum := 0.0
			for k := range 3 {
				sum += math.Exp(raw[k][i] - mx)
			}
			for k := range 3 {
				want := math.Exp(raw[k][i]-mx) / sum
				if strings.HasPrefix(obj, "multiclassova") {
					want = 1 / (1 + math.Exp(-2*raw[k][i]))
				}
				if math.Abs(pred[k][i]-want) > 1e-15 {
					t.Errorf("%s row %d class %d: %v, want %v", obj, i, k, pred[k][i], want)
				}
			}
		}
	}
}

// A random forest (average_output) averages its trees, then applies the
// objective, as LightGBM's GBDT::Predict has since 2.2.3.
func TestLightGBMRandomForestConverts(t *testing.T) {
	model := readLGBModel(t, "leaves/lg_rf_iris.model")
	m := mustParse(t, model)
	ref := lgbReference(t, model)
	rows := readLGBLibSVM(t, "leaves/iris_test.libsvm", 4)
	cols := lgbCols(rows, 4)
	raw, pred := alloc(1, len(rows)), alloc(1, len(rows))
	var s Scratch
	if err := m.PredictMargins(cols, len(rows), raw, &s); err != nil {
		t.Fatal(err)
	}
	if err := m.Predict(cols, len(rows), pred, &s); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if want := ref(r)[0] / 30; raw[0][i] != want {
			t.Fatalf("row %d: raw %v, the sum of 30 trees over 30 is %v", i, raw[0][i], want)
		}
		if want := 1 / (1 + math.Exp(-raw[0][i])); pred[0][i] != want {
			t.Fatalf("row %d: prediction %v, want sigmoid(raw) %v", i, pred[0][i], want)
		}
	}
}

// Windows line endings, a file without tree_sizes (LightGBM then reads the
// trees in sequence) and a model.tar.gz holding model.txt load and score
// as the plain file does.
func TestLightGBMFileVariants(t *testing.T) {
	plain := readLGBModel(t, "boosters/regression_missing/model.txt")
	crlf := bytes.ReplaceAll(plain, []byte("\n"), []byte("\r\n"))
	var noSizes []byte
	for _, line := range bytes.SplitAfter(plain, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("tree_sizes=")) {
			noSizes = append(noSizes, line...)
		}
	}
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "model.txt", Mode: 0o644, Size: int64(len(plain)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	rows, raw, _ := boostersCase(t, "regression_missing", false)
	cols := lgbCols(rows, 10)
	for name, data := range map[string][]byte{"crlf": crlf, "no tree_sizes": noSizes, "model.tar.gz": tgz.Bytes()} {
		m, err := ParseModel(data, WithKind("lightgbm"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := alloc(1, len(rows))
		var s Scratch
		if err := m.PredictMargins(cols, len(rows), out, &s); err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			if out[0][i] != raw[i][0] {
				t.Fatalf("%s row %d: %v, LightGBM %v", name, i, out[0][i], raw[i][0])
			}
		}
	}
	if _, err := ParseModel(plain, WithKind("xgboost")); !errors.Is(err, ErrUnsupportedModel) {
		t.Fatalf("a LightGBM model configured as xgboost: %v", err)
	}
}

// Damaged model text fails with an error naming the tree and the key (or
// the header line), and never loads something half right.
func TestLightGBMBadModels(t *testing.T) {
	good := string(lgbStump(10, "0.5", "binary sigmoid:1", ""))
	sub := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	// A second tree, for the count checks.
	body := "num_leaves=1\nnum_cat=0\nleaf_value=0.5\nis_linear=0\nshrinkage=1"
	twoTrees := string(lgbWriteModel("multiclass num_class:2", 2, 2, []string{body, body, body}, ""))
	for _, c := range []struct {
		name, text string
		want       []string
		is         error
	}{
		{"no header", "tree\n", []string{"no num_class"}, nil},
		{"no feature_names", strings.Replace(good, "feature_names=f0 f1\n", "", 1), []string{"no feature_names"}, nil},
		{"names and max_feature_idx", sub("feature_names=f0 f1", "feature_names=f0"), []string{"feature_names has 1 names but max_feature_idx is 1"}, nil},
		{"duplicate name", sub("feature_names=f0 f1", "feature_names=f0 f0"), []string{`"f0" appears at 0 and 1`}, nil},
		{"unknown objective", sub("objective=binary sigmoid:1", "objective=softplus"), []string{`objective "softplus"`}, ErrUnsupportedModel},
		{"no sigmoid", sub("objective=binary sigmoid:1", "objective=binary"), []string{"sigmoid parameter"}, nil},
		{"multiclass count", sub("objective=binary sigmoid:1", "objective=multiclass num_class:3"), []string{"num_class 3", "num_tree_per_iteration 1"}, nil},
		{"tree_sizes count", sub("\n\nTree=0", " 5\n\nTree=0"), []string{"tree_sizes lists 2 trees, the file has 1"}, nil},
		{"tree_sizes size", sub("tree_sizes=", "tree_sizes=1"), []string{"tree 0: tree_sizes says 1"}, nil},
		{"tree number", sub("Tree=0", "Tree=1"), []string{`want "Tree=0"`}, nil},
		{"no trees", good[:strings.Index(good, "Tree=0")] + "end of trees\n", []string{"no trees"}, nil},
		{"iterations", twoTrees, []string{"3 trees is not a whole number of iterations of num_tree_per_iteration 2"}, nil},
		{"num_leaves absurd", sub("num_leaves=2", "num_leaves=1000000000000"), []string{"tree 0", "max_nodes"}, ErrModelLimit},
		{"num_leaves text", sub("num_leaves=2", "num_leaves=two"), []string{"tree 0", "num_leaves"}, nil},
		{"leaf_value count", sub("leaf_value=-1 1", "leaf_value=-1 1 2"), []string{"tree 0: leaf_value has 3 entries, want 2"}, nil},
		{"leaf_value missing", sub("leaf_value=-1 1\n", ""), []string{"tree 0: leaf_value is missing"}, nil},
		{"leaf_value inf", sub("leaf_value=-1 1", "leaf_value=-1 inf"), []string{"tree 0: leaf_value[1] is +Inf"}, nil},
		{"threshold NaN", sub("threshold=0.5", "threshold=nan"), []string{"tree 0: node 0: threshold is NaN"}, nil},
		{"threshold text", sub("threshold=0.5", "threshold=half"), []string{"tree 0: threshold[0]"}, nil},
		{"child out of range", sub("left_child=-1", "left_child=3"), []string{"tree 0: left_child[0]", "want an integer in [-2,0]"}, nil},
		{"child cycle", sub("left_child=-1", "left_child=0"), []string{"tree 0: node 0: child 0 is reachable twice"}, nil},
		{"leaf twice", sub("right_child=-2", "right_child=-1"), []string{"tree 0: node 0: leaf 0 is reachable twice"}, nil},
		{"feature out of range", sub("split_feature=0", "split_feature=2"), []string{"tree 0: split_feature[0]"}, nil},
		{"missing type", sub("decision_type=10", "decision_type=12"), []string{"tree 0: node 0: decision_type 12 has missing type 3"}, nil},
		{"decision_type range", sub("decision_type=10", "decision_type=99"), []string{"tree 0: decision_type[0]"}, nil},
		{"category set index", sub("decision_type=10", "decision_type=1"), []string{"tree 0: node 0: categorical threshold 0.5"}, nil},
		{"cat_boundaries", sub("num_cat=0", "num_cat=1"), []string{"tree 0: cat_boundaries is missing"}, nil},
		{"duplicate key", sub("num_cat=0\n", "num_cat=0\nnum_cat=0\n"), []string{"key num_cat appears twice"}, nil},
		{"linear without leaves", sub("is_linear=0", "is_linear=1"), []string{"tree 0: leaf_const is missing"}, nil},
		{"not key=value", sub("num_cat=0", "num_cat"), []string{`"num_cat" is not key=value`}, nil},
		{"linear parameter", sub("[boosting: gbdt]", "[linear_tree: 1]"), []string{"tree 0", "linear_tree"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseModel([]byte(c.text))
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
		})
	}
}

// ModelLimits bound LightGBM models as they bound XGBoost's.
func TestLightGBMLimits(t *testing.T) {
	model := readLGBModel(t, "boosters/multiclass/model.txt") // 30 trees of up to 15 leaves
	for _, c := range []struct {
		lim  ModelLimits
		want string
	}{
		{ModelLimits{MaxTrees: 10}, "max_trees limit of 10"},
		{ModelLimits{MaxNodes: 100}, "max_nodes"},
		{ModelLimits{MaxDepth: 2}, "max_depth limit of 2"},
		{ModelLimits{MaxHeapBytes: 4096}, "max_heap_bytes limit of 4096"},
	} {
		_, err := ParseModel(model, WithLimits(c.lim))
		if !errors.Is(err, ErrModelLimit) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("limits %+v: %v, want %q", c.lim, err, c.want)
		}
	}
	m := mustParse(t, model)
	if f := m.impl.(*lgbForest); f.heap <= 0 || f.heap > 1<<20 {
		t.Fatalf("compiled size %d bytes for a 27 KB model", f.heap)
	}
}
