package scorer

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// boosterFixture is a dart or gblinear model trained and predicted by
// XGBoost 1.7 (testdata/gen.py, other_boosters).
type boosterFixture struct {
	name, objective string
	input           string   // input CSV (every gblinear model shares one)
	files           []string // the same model in several encodings
	margins         int      // margin columns (output groups)
	probability     bool     // predictions are probabilities (absolute tolerance)
	contribs        bool     // NAME.contribs.csv holds XGBoost's contributions
	inplace         bool     // NAME.inplace.csv holds inplace_predict's margins
}

func boosterFixtures() []boosterFixture {
	dart := func(name, obj string, margins int) boosterFixture {
		return boosterFixture{name, obj, name + ".input.csv", []string{name + ".json", name + ".ubj"}, margins, true, true, true}
	}
	lin := func(name, obj string, margins int, prob, ubj, contribs bool) boosterFixture {
		files := []string{name + ".json"}
		if ubj {
			files = append(files, name+".ubj")
		}
		return boosterFixture{name, obj, "gblinear_shared.input.csv", files, margins, prob, contribs, false}
	}
	return []boosterFixture{
		dart("dart_binary_logistic", "binary:logistic", 1),
		dart("dart_multi_softprob", "multi:softprob", 3),
		lin("gblinear_binary_logistic", "binary:logistic", 1, true, true, true),
		lin("gblinear_reg_squarederror", "reg:squarederror", 1, false, true, true),
		lin("gblinear_multi_softprob", "multi:softprob", 3, true, true, true),
		lin("gblinear_multi_softmax", "multi:softmax", 3, false, false, false),
		lin("gblinear_binary_logitraw", "binary:logitraw", 1, false, false, false),
		lin("gblinear_reg_logistic", "reg:logistic", 1, true, false, false),
		lin("gblinear_count_poisson", "count:poisson", 1, false, false, false),
	}
}

func fidelityTable(t testing.TB, name string) *FeatureTable {
	return readTable(t, filepath.Join("testdata", "fidelity", name))
}

// TestBoostersMatchXGBoost checks every prediction and margin of the dart
// and gblinear fixtures, JSON and UBJSON, against XGBoost 1.7's
// Booster.predict on every row (missing values, negative zeros and, for
// dart, values at split thresholds among them): probabilities within 1e-6
// absolute, everything else within 1e-5 relative. Margins are also
// required to be XGBoost's float32 margins exactly, which is what the
// float32 arithmetic in XGBoost's order buys.
func TestBoostersMatchXGBoost(t *testing.T) {
	for _, fx := range boosterFixtures() {
		in := fidelityTable(t, fx.input)
		want := fidelityTable(t, fx.name+".expected.csv")
		if !hasMissing(in) {
			t.Fatalf("%s: fixture has no rows with missing values", fx.name)
		}
		for _, file := range fx.files {
			t.Run(file, func(t *testing.T) {
				m := loadFixtureModel(t, file)
				if info := m.Info(); info.Kind != "xgboost" || info.Objective != fx.objective {
					t.Fatalf("kind %q objective %q, want xgboost %s", info.Kind, info.Objective, fx.objective)
				}
				preds, margins := predictTable(t, m, in, fx.margins)
				checked := 0
				for j, name := range want.Names {
					got, prob := expectedColumn(t, name, preds, margins, fx.probability)
					isMargin := strings.HasPrefix(name, "margin")
					for i := range in.Rows {
						w := want.Cols[j][i]
						if !within(got[i], w, prob) {
							t.Errorf("row %d %s: got %.9g, XGBoost %.9g", i+2, name, got[i], w)
						} else if isMargin && float32(got[i]) != float32(w) {
							t.Errorf("row %d %s: got %.9g, XGBoost %.9g: not the same float32", i+2, name, got[i], w)
						}
						checked++
					}
				}
				if checked < in.Rows*(1+fx.margins) {
					t.Fatalf("checked %d values for %d rows", checked, in.Rows)
				}
			})
		}
	}
}

func hasMissing(in *FeatureTable) bool {
	for _, c := range in.Cols {
		for _, v := range c {
			if math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}

// predictTable scores every row of in, returning the predictions and the
// margins.
func predictTable(t testing.TB, m *Model, in *FeatureTable, groups int) (preds, margins [][]float64) {
	t.Helper()
	cols, err := in.Select(m.Features())
	if err != nil {
		t.Fatal(err)
	}
	var s Scratch
	preds = alloc(m.Outputs(), in.Rows)
	if err := m.Predict(cols, in.Rows, preds, &s); err != nil {
		t.Fatal(err)
	}
	margins = alloc(groups, in.Rows)
	if err := m.PredictMargins(cols, in.Rows, margins, &s); err != nil {
		t.Fatal(err)
	}
	return preds, margins
}

// TestDartInplacePredict: margins are also within tolerance of
// Booster.inplace_predict, the scikit-learn interface's path, which
// weights each tree with a different float32 rounding.
func TestDartInplacePredict(t *testing.T) {
	for _, fx := range boosterFixtures() {
		if !fx.inplace {
			continue
		}
		t.Run(fx.name, func(t *testing.T) {
			in := fidelityTable(t, fx.input)
			want := fidelityTable(t, fx.name+".inplace.csv")
			_, margins := predictTable(t, loadFixtureModel(t, fx.name+".json"), in, fx.margins)
			if len(want.Names) != fx.margins {
				t.Fatalf("%d inplace columns, want %d", len(want.Names), fx.margins)
			}
			for k := range fx.margins {
				for i := range in.Rows {
					if !within(margins[k][i], want.Cols[k][i], false) {
						t.Errorf("row %d margin %d: got %.9g, inplace_predict %.9g", i+2, k, margins[k][i], want.Cols[k][i])
					}
				}
			}
		})
	}
}

// TestDartBestIteration: a dart model trained with early stopping
// predicts with the trees up to best_iteration, as XGBoost's
// predict(iteration_range=(0, best_iteration+1)) and the scikit-learn
// interface do, unless WithAllTrees is given; and the trees' weights
// matter (XGBoost's margins are not the unweighted trees').
func TestDartBestIteration(t *testing.T) {
	m := loadFixtureModel(t, "dart_binary_logistic.json")
	all := loadFixtureModel(t, "dart_binary_logistic.json", WithAllTrees())
	info := m.Info()
	if info.BestIteration < 0 || info.Trees != info.BestIteration+1 || info.Trees >= info.TotalTrees {
		t.Fatalf("best_iteration %d, %d of %d trees", info.BestIteration, info.Trees, info.TotalTrees)
	}
	if all.Info().Trees != all.Info().TotalTrees {
		t.Fatalf("WithAllTrees: %d of %d trees", all.Info().Trees, all.Info().TotalTrees)
	}
	in := fidelityTable(t, "dart_binary_logistic.input.csv")
	want := fidelityTable(t, "dart_binary_logistic.expected.csv")
	wm := want.Cols[indexOf(want.Names, "margin")]
	_, limited := predictTable(t, m, in, 1)
	_, every := predictTable(t, all, in, 1)
	_, unweighted := predictTable(t, mustParse(t, dartAsGBTree(t, "dart_binary_logistic.json")), in, 1)
	diffAll, diffUnweighted := 0, 0
	for i := range in.Rows {
		if !within(limited[0][i], wm[i], false) {
			t.Fatalf("row %d: %v, XGBoost %v", i+2, limited[0][i], wm[i])
		}
		if !within(every[0][i], wm[i], false) {
			diffAll++
		}
		if !within(unweighted[0][i], wm[i], false) {
			diffUnweighted++
		}
	}
	if diffAll < in.Rows/2 || diffUnweighted < in.Rows/2 {
		t.Fatalf("of %d rows, %d differ with all trees and %d without weights: the fixture cannot tell", in.Rows, diffAll, diffUnweighted)
	}
}

// dartAsGBTree rewrites a dart fixture as the gbtree model of the same
// trees without their weights.
func dartAsGBTree(t *testing.T, file string) []byte {
	t.Helper()
	doc := string(fixtureBytes(t, file))
	i := strings.Index(doc, `"gbtree":{"model":`)
	j := strings.Index(doc, `,"name":"gbtree"},"name":"dart","weight_drop":[`)
	if i < 0 || j < i {
		t.Fatalf("%s: not the dart layout gen.py writes", file)
	}
	end := strings.Index(doc[j:], "]}") + j + 2
	return []byte(doc[:i] + `"model":` + doc[i+len(`"gbtree":{"model":`):j] + `,"name":"gbtree"}` + doc[end:])
}

// TestBoosterContributions checks the contributions of the fixture rows
// against XGBoost 1.7's predict(pred_contribs=True, approx_contribs=True):
// gblinear's (value times weight, bias weight plus base margin) and
// dart's (each tree's path attribution times its weight), to the bit. Each row's contributions sum to its margin
// (to float32 rounding).
func TestBoosterContributions(t *testing.T) {
	n := 0
	for _, fx := range boosterFixtures() {
		if !fx.contribs {
			continue
		}
		n++
		in := fidelityTable(t, fx.input)
		want := fidelityTable(t, fx.name+".contribs.csv")
		for _, file := range fx.files {
			t.Run(file, func(t *testing.T) {
				m := loadFixtureModel(t, file)
				if err := m.CheckContributions(); err != nil {
					t.Fatal(err)
				}
				nf := len(m.Features())
				if len(want.Names) != m.Outputs()*(nf+1) {
					t.Fatalf("fixture has %d columns, want %d outputs x (%d features + bias)", len(want.Names), m.Outputs(), nf)
				}
				cols, err := in.Select(m.Features())
				if err != nil {
					t.Fatal(err)
				}
				_, margins := predictTable(t, m, in, fx.margins)
				var s Scratch
				var c []float64
				x := make([]float64, nf)
				missing := 0
				for i := range want.Rows {
					for j := range x {
						x[j] = cols[j][i]
						if math.IsNaN(x[j]) {
							missing++
						}
					}
					for k := range m.Outputs() {
						if c, err = m.Contributions(c, x, k, &s); err != nil {
							t.Fatal(err)
						}
						scale, sum := 0.0, 0.0
						for j := range nf + 1 {
							scale = max(scale, math.Abs(want.Cols[k*(nf+1)+j][i]))
							sum += c[j]
						}
						for j := range nf + 1 {
							w := want.Cols[k*(nf+1)+j][i]
							if c[j] != w {
								t.Errorf("row %d output %d %s: got %.9g, XGBoost %.9g", i+2, k, want.Names[k*(nf+1)+j], c[j], w)
							}
						}
						// The margin is a float32 running sum: one rounding per term.
						if math.Abs(sum-margins[k][i]) > float64(nf+1)*0x1p-24*max(scale, math.Abs(margins[k][i])) {
							t.Errorf("row %d output %d: contributions sum to %.9g, margin %.9g", i+2, k, sum, margins[k][i])
						}
					}
				}
				if missing == 0 {
					t.Fatal("no missing values among the contribution rows")
				}
			})
		}
	}
	if n < 5 {
		t.Fatalf("%d contribution fixtures, want 5 (run testdata/gen.py)", n)
	}
}

// TestGBLinearSoftmaxHasNoContributions: a multi:softmax score is a class
// index, so there is no margin to attribute; the model says so up front.
func TestGBLinearSoftmaxHasNoContributions(t *testing.T) {
	m := loadFixtureModel(t, "gblinear_multi_softmax.json")
	if err := m.CheckContributions(); !errors.Is(err, ErrNoContributions) {
		t.Fatalf("CheckContributions: %v", err)
	}
	var s Scratch
	if _, err := m.Contributions(nil, make([]float64, len(m.Features())), 0, &s); !errors.Is(err, ErrNoContributions) {
		t.Fatalf("Contributions: %v", err)
	}
}

// TestGBLinearInfo: a gblinear model has no trees, and its best_iteration
// attribute (XGBoost's training writes one) does not limit anything.
func TestGBLinearInfo(t *testing.T) {
	for _, file := range []string{"gblinear_multi_softprob.json", "gblinear_multi_softprob.ubj"} {
		info := loadFixtureModel(t, file).Info()
		if info.Outputs != 3 || info.Trees != 0 || info.TotalTrees != 0 || info.BestIteration != -1 || len(info.Features) != 8 {
			t.Errorf("%s: %+v", file, info)
		}
		if want := map[string]string{".json": "json", ".ubj": "ubjson"}[filepath.Ext(file)]; info.Encoding != want {
			t.Errorf("%s: encoding %q", file, info.Encoding)
		}
	}
	// 27 weights and 3 biases of float32.
	if m := loadFixtureModel(t, "gblinear_multi_softprob.json"); m.HeapBytes() < 30*4 {
		t.Errorf("HeapBytes %d does not count the weights", m.HeapBytes())
	}
	if !strings.Contains(string(fixtureBytes(t, "gblinear_multi_softprob.json")), `"best_iteration"`) {
		t.Fatal("the fixture has no best_iteration attribute: the test proves nothing")
	}
}

// TestBoostersAllocateNothing: with a reused Scratch and dst, scoring a
// batch and computing a row's contributions allocate nothing.
func TestBoostersAllocateNothing(t *testing.T) {
	for _, fx := range []struct{ file, input string }{
		{"gblinear_multi_softprob.json", "gblinear_shared.input.csv"},
		{"dart_multi_softprob.json", "dart_multi_softprob.input.csv"},
	} {
		m := loadFixtureModel(t, fx.file)
		in := fidelityTable(t, fx.input)
		cols, err := in.Select(m.Features())
		if err != nil {
			t.Fatal(err)
		}
		out := alloc(3, in.Rows)
		var s Scratch
		x := make([]float64, len(cols))
		for j := range x {
			x[j] = cols[j][5]
		}
		var c []float64
		allocs := testing.AllocsPerRun(20, func() {
			if err := m.Predict(cols, in.Rows, out, &s); err != nil {
				t.Fatal(err)
			}
			if c, err = m.Contributions(c, x, 2, &s); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per batch", fx.file, allocs)
		}
	}
}

// synthDart rewrites synthModel's gbtree as a dart model of the same trees,
// every tree weighted w.
func synthDart(t testing.TB, gbtree []byte, trees int, w string) []byte {
	t.Helper()
	doc := string(gbtree)
	const head, tail = `"gradient_booster":{"model":`, `]},"name":"gbtree"},"learner_model_param"`
	if strings.Count(doc, head) != 1 || strings.Count(doc, tail) != 1 {
		t.Fatal("synthModel's layout changed")
	}
	weights := strings.TrimSuffix(strings.Repeat(w+",", trees), ",")
	doc = strings.Replace(doc, head, `"gradient_booster":{"gbtree":{"model":`, 1)
	doc = strings.Replace(doc, tail, `]},"name":"gbtree"},"name":"dart","weight_drop":[`+weights+`]},"learner_model_param"`, 1)
	return []byte(doc)
}

// TestDartUnitWeightsAreGBTree: a dart model whose weights are all 1
// scores and attributes exactly as the gbtree model of the same trees;
// weights of 0.5 halve every tree (exactly: a power of two), so the margin
// (its base margin is 0) and every contribution halve.
func TestDartUnitWeightsAreGBTree(t *testing.T) {
	const trees, depth, features, rows = 40, 5, 12, 300
	raw := synthModel(trees, depth, features, 17)
	gb := mustParse(t, raw)
	one := mustParse(t, synthDart(t, raw, trees, "1"))
	half := mustParse(t, synthDart(t, raw, trees, "0.5"))
	// The multi-model server's budget counts dart's unscaled copies too
	// (which unit weights do not need).
	if half.HeapBytes() < gb.HeapBytes()*3/2 || one.HeapBytes() > gb.HeapBytes()*5/4 {
		t.Errorf("HeapBytes: dart weighted 0.5 %d, weighted 1 %d, gbtree of the same trees %d", half.HeapBytes(), one.HeapBytes(), gb.HeapBytes())
	}
	cols := randomCols(features, rows, 0.1, 5)
	var s Scratch
	mg, m1, mh := alloc(1, rows), alloc(1, rows), alloc(1, rows)
	for _, p := range []struct {
		m   *Model
		out [][]float64
	}{{gb, mg}, {one, m1}, {half, mh}} {
		if err := p.m.PredictMargins(cols, rows, p.out, &s); err != nil {
			t.Fatal(err)
		}
	}
	x := make([]float64, features)
	var cg, c1, ch []float64
	for i := range rows {
		if m1[0][i] != mg[0][i] {
			t.Fatalf("row %d: dart with unit weights %v, gbtree %v", i, m1[0][i], mg[0][i])
		}
		// base_score 0.5 is a margin of 0 for binary:logistic.
		if 2*mh[0][i] != mg[0][i] {
			t.Fatalf("row %d: dart with weights 0.5 %v, gbtree %v", i, mh[0][i], mg[0][i])
		}
		for j := range x {
			x[j] = cols[j][i]
		}
		var err error
		if cg, err = gb.Contributions(cg, x, 0, &s); err != nil {
			t.Fatal(err)
		}
		if c1, err = one.Contributions(c1, x, 0, &s); err != nil {
			t.Fatal(err)
		}
		if ch, err = half.Contributions(ch, x, 0, &s); err != nil {
			t.Fatal(err)
		}
		for j := range cg {
			if cg[j] != c1[j] || cg[j] != 2*ch[j] {
				t.Fatalf("row %d contribution %d: dart with weights 1 %v and 0.5 %v, gbtree %v", i, j, c1[j], ch[j], cg[j])
			}
		}
	}
}

// BenchmarkBoosters: scoring batches of 4,096 rows (30 features, 5%
// missing) with a gbtree model of 100 trees of depth 6, the dart model of
// the same trees, and a gblinear model of the same features. Dart costs
// what gbtree does: its weights are folded into the leaves at load.
func BenchmarkBoosters(b *testing.B) {
	const trees, depth, features, rows = 100, 6, 30, 4096
	raw := synthModel(trees, depth, features, 11)
	lin := `{"learner":{"attributes":{},"feature_names":[],"feature_types":[],"gradient_booster":{"model":{"weights":[` +
		strings.TrimSuffix(strings.Repeat("0.25,", features+1), ",") +
		`]},"name":"gblinear"},"learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"30","num_target":"1"},"objective":{"name":"binary:logistic"}},"version":[1,7,4]}`
	cols := randomCols(features, rows, 0.05, 9)
	for _, bm := range []struct {
		name string
		doc  []byte
	}{{"gbtree", raw}, {"dart", synthDart(b, raw, trees, "0.7")}, {"gblinear", []byte(lin)}} {
		b.Run(bm.name, func(b *testing.B) {
			m := mustParse(b, bm.doc)
			out := alloc(1, rows)
			var s Scratch
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Predict(cols, rows, out, &s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// TestBoosterMalformed: a damaged weight_drop or weights array is refused
// with an error naming the field, in either encoding's document.
func TestBoosterMalformed(t *testing.T) {
	dart := string(fixtureBytes(t, "dart_multi_softprob.json"))
	lin := string(fixtureBytes(t, "gblinear_binary_logistic.json"))
	wd := strings.Index(dart, `"weight_drop":[`) + len(`"weight_drop":[`)
	wt := strings.Index(lin, `"weights":[`) + len(`"weights":[`)
	if wd < len(`"weight_drop":[`) || wt < len(`"weights":[`) {
		t.Fatal("fixtures lack weight_drop or weights")
	}
	first := func(doc string, at int) int { return strings.IndexByte(doc[at:], ',') + at } // end of the first entry
	cases := []struct{ name, doc, want string }{
		{"weight_drop short", dart[:wd] + dart[first(dart, wd)+1:], "weight_drop has 14 entries for 15 trees"},
		{"weight_drop long", dart[:wd] + "1," + dart[wd:], "weight_drop has 16 entries for 15 trees"},
		{"weight_drop NaN", dart[:wd] + "NaN" + dart[first(dart, wd):], "weight_drop[0] is NaN"},
		{"weight_drop infinite", dart[:wd] + "Infinity" + dart[first(dart, wd):], "weight_drop[0] is +Inf"},
		{"weight_drop missing", strings.Replace(dart, `"weight_drop":[`, `"weight_dropped":[`, 1), "weight_drop has 0 entries"},
		{"dart without gbtree", strings.Replace(dart, `"gbtree":{"model":`, `"gbtree":{"modle":`, 1), "gradient_booster.gbtree.model is missing"},
		{"weights short", lin[:wt] + lin[first(lin, wt)+1:], "weights has 8 entries, want 9"},
		{"weights long", lin[:wt] + "0.5," + lin[wt:], "weights has 10 entries, want 9"},
		{"weights NaN", lin[:wt] + "NaN" + lin[first(lin, wt):], "weights[0] is NaN"},
		{"weights for 2 classes", strings.Replace(strings.Replace(lin, `"num_class":"0"`, `"num_class":"2"`, 1), `"binary:logistic"`, `"multi:softprob"`, 2), "weights has 9 entries, want 18"},
		{"gblinear without model", strings.Replace(lin, `"model":{`, `"modle":{`, 1), "gradient_booster.model is missing"},
	}
	for _, c := range cases {
		_, err := ParseModel([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want mention of %q", c.name, err, c.want)
		}
	}
}

// TestDartWeightOverflow: a weight that takes a leaf past float32 is
// refused, naming the node, rather than scored as infinity.
func TestDartWeightOverflow(t *testing.T) {
	tree := &xgbTree{LeftChildren: []int32{-1}, SplitConditions: []float32{10}}
	if _, err := weightedTree(tree, 3e38); err == nil || !strings.Contains(err.Error(), "node 0: leaf value 10 times weight_drop") {
		t.Fatalf("err %v", err)
	}
	wt, err := weightedTree(tree, 0.5)
	if err != nil || wt.SplitConditions[0] != 5 || tree.SplitConditions[0] != 10 {
		t.Fatalf("weighted %v (original %v), err %v", wt.SplitConditions, tree.SplitConditions, err)
	}
}
