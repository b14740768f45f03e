package scorer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// binaryFixture is one model testdata/gen_binary.py trained with XGBoost
// 1.7 and saved in its legacy binary format.
type binaryFixture struct {
	Name          string `json:"name"`
	Objective     string `json:"objective"`
	Booster       string `json:"booster"`
	TreesUsed     int    `json:"trees_used"`
	TotalTrees    int    `json:"total_trees"`
	BestIteration int    `json:"best_iteration"`
}

func (fx binaryFixture) probability() bool {
	return fx.Objective == "binary:logistic" || fx.Objective == "multi:softprob"
}

func binaryPath(name string) string { return filepath.Join("testdata", "binary", name) }

func binaryFixtures(t testing.TB) []binaryFixture {
	t.Helper()
	b, err := os.ReadFile(binaryPath("manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		XGBoost string          `json:"xgboost"`
		Models  []binaryFixture `json:"models"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Models) < 6 || !strings.HasPrefix(m.XGBoost, "1.") {
		t.Fatalf("manifest: %d models from XGBoost %s (run testdata/gen_binary.py)", len(m.Models), m.XGBoost)
	}
	return m.Models
}

func binaryBytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(binaryPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadBinaryFixture loads a fixture file, checking it is the booster the
// fixture's manifest says.
func loadBinaryFixture(t *testing.T, fx binaryFixture, file string) *Model {
	t.Helper()
	m, err := LoadModel(t.Context(), binaryPath(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := m.Info().Booster; b != fx.Booster {
		t.Fatalf("%s: booster %q, the manifest says %q", file, b, fx.Booster)
	}
	return m
}

// checkParity compares every prediction and margin of m on in with
// XGBoost's (want): probabilities within 1e-6 absolute, everything else
// within 1e-5 relative.
func checkParity(t *testing.T, m *Model, in, want *FeatureTable, prob bool) {
	t.Helper()
	cols, err := in.Select(m.Features())
	if err != nil {
		t.Fatal(err)
	}
	var s Scratch
	preds := alloc(m.Outputs(), in.Rows)
	if err := m.Predict(cols, in.Rows, preds, &s); err != nil {
		t.Fatal(err)
	}
	margins := alloc(m.impl.marginOutputs(), in.Rows)
	if err := m.PredictMargins(cols, in.Rows, margins, &s); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for j, name := range want.Names {
		got, p := expectedColumn(t, name, preds, margins, prob)
		for i := range in.Rows {
			if !within(got[i], want.Cols[j][i], p) {
				t.Errorf("row %d %s: got %.9g, XGBoost %.9g", i+2, name, got[i], want.Cols[j][i])
			}
			checked++
		}
	}
	if checked < 2*in.Rows {
		t.Fatalf("checked %d values for %d rows", checked, in.Rows)
	}
}

// TestBinaryFidelity: every binary fixture, read from its file and from a
// SageMaker model.tar.gz (member xgboost-model), predicts what XGBoost 1.7
// predicts after loading the same file, on every row (rows with missing
// values and values at split thresholds among them), and uses the trees
// best_iteration selects.
func TestBinaryFidelity(t *testing.T) {
	for _, fx := range binaryFixtures(t) {
		in := readTable(t, binaryPath(fx.Name+".input.csv"))
		want := readTable(t, binaryPath(fx.Name+".expected.csv"))
		if !slices.ContainsFunc(in.Cols, func(c []float64) bool { return slices.ContainsFunc(c, math.IsNaN) }) {
			t.Fatalf("%s: fixture has no missing values", fx.Name)
		}
		files := []string{fx.Name + ".model", fx.Name + ".tar.gz"}
		if fx.Name == "early_stopping" {
			// The same model recording best_ntree_limit alone.
			files = append(files, fx.Name+".ntree_limit.tar.gz")
		}
		for _, file := range files {
			t.Run(file, func(t *testing.T) {
				m := loadBinaryFixture(t, fx, file)
				info := m.Info()
				if info.Encoding != "binary" || info.Objective != fx.Objective {
					t.Fatalf("encoding %q objective %q", info.Encoding, info.Objective)
				}
				if strings.HasSuffix(file, ".tar.gz") && !strings.HasSuffix(info.Source, "!xgboost-model") {
					t.Fatalf("source %q, want the xgboost-model member", info.Source)
				}
				trees := info.Trees != fx.TreesUsed || info.TotalTrees != fx.TotalTrees || info.BestIteration != fx.BestIteration
				if fx.Booster != "gblinear" && trees {
					t.Fatalf("trees %d of %d, best_iteration %d; XGBoost used %d of %d, best_iteration %d",
						info.Trees, info.TotalTrees, info.BestIteration, fx.TreesUsed, fx.TotalTrees, fx.BestIteration)
				}
				checkParity(t, m, in, want, fx.probability())
			})
		}
	}
}

// decodeJSONFixture reads NAME.json.tar.gz, the fixture's model as XGBoost
// saved it in JSON.
func decodeJSONFixture(t *testing.T, name string) *xgbDoc {
	t.Helper()
	_, raw, err := extractModelFromTarGz(binaryBytes(t, name+".json.tar.gz"), ModelLimits{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	var doc xgbDoc
	if err := decodeXGBoost(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

// normalise removes what differs between a JSON and a binary decode of the
// same model without being a difference in the model: the patch version
// (the binary format records major.minor), base_score's spelling, and
// JSON's all-numerical split_type.
func normalise(t *testing.T, doc *xgbDoc) {
	t.Helper()
	doc.Version = doc.Version[:min(len(doc.Version), 2)]
	mp := &doc.Learner.LearnerModelParam
	b, err := parseBaseScore(mp.BaseScore)
	if err != nil {
		t.Fatal(err)
	}
	mp.BaseScore = strconv.FormatFloat(float64(b[0]), 'g', -1, 32)
	if body := doc.Learner.GradientBooster.Model; body != nil {
		for i := range body.Trees {
			tr := &body.Trees[i]
			if !slices.ContainsFunc(tr.SplitType, func(v int32) bool { return v != 0 }) {
				tr.SplitType = nil
			}
		}
	}
}

// TestBinaryMatchesJSON: the binary file decodes to the very model XGBoost
// writes as JSON (every tree, node, threshold, default direction, cover,
// tree_info, attribute; dart's weight_drop, gblinear's weights), and the
// two score bit-identically: predictions, margins and contributions.
func TestBinaryMatchesJSON(t *testing.T) {
	for _, fx := range binaryFixtures(t) {
		t.Run(fx.Name, func(t *testing.T) {
			want := decodeJSONFixture(t, fx.Name)
			var got xgbDoc
			if err := decodeXGBoostBinary(binaryBytes(t, fx.Name+".model"), &got); err != nil {
				t.Fatal(err)
			}
			normalise(t, want)
			normalise(t, &got)
			if !reflect.DeepEqual(&got, want) {
				gj, _ := json.Marshal(&got)
				wj, _ := json.Marshal(want)
				t.Fatalf("binary decodes to\n%.2000s\nJSON to\n%.2000s", gj, wj)
			}

			mj := loadBinaryFixture(t, fx, fx.Name+".json.tar.gz")
			mb := loadBinaryFixture(t, fx, fx.Name+".model")
			in := readTable(t, binaryPath(fx.Name+".input.csv"))
			cols, err := in.Select(mb.Features())
			if err != nil {
				t.Fatal(err)
			}
			var s Scratch
			for _, margins := range []bool{false, true} {
				k := mb.Outputs()
				if margins {
					k = mb.impl.marginOutputs()
				}
				pb, pj := alloc(k, in.Rows), alloc(k, in.Rows)
				predict := (*Model).Predict
				if margins {
					predict = (*Model).PredictMargins
				}
				if err := predict(mb, cols, in.Rows, pb, &s); err != nil {
					t.Fatal(err)
				}
				if err := predict(mj, cols, in.Rows, pj, &s); err != nil {
					t.Fatal(err)
				}
				for g := range pb {
					for i := range pb[g] {
						if math.Float64bits(pb[g][i]) != math.Float64bits(pj[g][i]) {
							t.Fatalf("margins %v output %d row %d: binary %v, JSON %v", margins, g, i+2, pb[g][i], pj[g][i])
						}
					}
				}
			}
			if mb.CheckContributions() != nil {
				return
			}
			x := make([]float64, len(cols))
			var cb, cj []float64
			for i := range in.Rows {
				for j := range x {
					x[j] = cols[j][i]
				}
				for k := range mb.Outputs() {
					if cb, err = mb.Contributions(cb, x, k, &s); err != nil {
						t.Fatal(err)
					}
					if cj, err = mj.Contributions(cj, x, k, &s); err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(cb, cj) {
						t.Fatalf("row %d output %d: contributions %v from binary, %v from JSON", i+2, k, cb, cj)
					}
				}
			}
		})
	}
}

// TestBinaryContributions: contributions from a binary model (its node
// covers come from the RTreeNodeStat records) match XGBoost's
// approx_contribs for the same file, and the missing-value fixture sends
// missing values both ways.
func TestBinaryContributions(t *testing.T) {
	n := 0
	for _, fx := range binaryFixtures(t) {
		path := binaryPath(fx.Name + ".contribs.csv")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		n++
		t.Run(fx.Name, func(t *testing.T) {
			m := loadBinaryFixture(t, fx, fx.Name+".model")
			if err := m.CheckContributions(); err != nil {
				t.Fatal(err)
			}
			in := readTable(t, binaryPath(fx.Name+".input.csv"))
			want := readTable(t, path)
			nf := len(m.Features())
			if len(want.Names) != m.Outputs()*(nf+1) {
				t.Fatalf("fixture has %d columns, want %d outputs x (%d features + bias)", len(want.Names), m.Outputs(), nf)
			}
			cols, err := in.Select(m.Features())
			if err != nil {
				t.Fatal(err)
			}
			var s Scratch
			var c []float64
			x := make([]float64, nf)
			nonzero := 0
			for i := range want.Rows {
				for j := range x {
					x[j] = cols[j][i]
				}
				for k := range m.Outputs() {
					if c, err = m.Contributions(c, x, k, &s); err != nil {
						t.Fatal(err)
					}
					scale := 0.0
					for j := range nf + 1 {
						scale = max(scale, math.Abs(want.Cols[k*(nf+1)+j][i]))
					}
					for j := range nf + 1 {
						w := want.Cols[k*(nf+1)+j][i]
						if !float32Close(c[j], w, scale*1e-3) {
							t.Errorf("row %d %s: got %.9g, XGBoost %.9g", i+2, want.Names[k*(nf+1)+j], c[j], w)
						}
						if w != 0 && j < nf {
							nonzero++
						}
					}
				}
			}
			if nonzero < want.Rows {
				t.Fatalf("fixture too weak: %d non-zero contributions in %d rows", nonzero, want.Rows)
			}
		})
	}
	if n < 3 {
		t.Fatalf("%d contribution fixtures, want 3 (run testdata/gen_binary.py)", n)
	}

	// The missing-value fixture's reachable splits send missing values
	// left and right, so its parity covers both directions.
	var doc xgbDoc
	if err := decodeXGBoostBinary(binaryBytes(t, "missing.model"), &doc); err != nil {
		t.Fatal(err)
	}
	dir := map[bool]int{}
	for _, tr := range doc.Learner.GradientBooster.Model.Trees {
		for i, l := range tr.LeftChildren {
			if l != -1 && tr.SplitIndices[i] < 4 { // the features with 30% missing
				dir[tr.DefaultLeft[i]]++
			}
		}
	}
	if dir[true] == 0 || dir[false] == 0 {
		t.Fatalf("missing.model: default directions %v, want both", dir)
	}
}

// pre10 rewrites a 1.x binary model as XGBoost before 1.0 wrote it: no
// "binf" header, no version, base_score stored as a margin, and
// reg:squarederror under its old name reg:linear.
func pre10(t *testing.T, b []byte, toMargin func(float32) float32) []byte {
	t.Helper()
	if string(b[:4]) != "binf" {
		t.Fatal("fixture has no binf header")
	}
	b = slices.Clone(b[4:])
	base := math.Float32frombits(binary.LittleEndian.Uint32(b))
	binary.LittleEndian.PutUint32(b, math.Float32bits(toMargin(base)))
	binary.LittleEndian.PutUint32(b[binLearnerMajorVersion:], 0)
	binary.LittleEndian.PutUint32(b[binLearnerMinorVersion:], 0)
	binary.LittleEndian.PutUint32(b[binLearnerNumTarget:], 0)
	n := binary.LittleEndian.Uint64(b[binLearnerParamBytes:])
	obj := string(b[binLearnerParamBytes+8 : binLearnerParamBytes+8+int(n)])
	if obj == "reg:squarederror" {
		rest := b[binLearnerParamBytes+8+int(n):]
		b = binary.LittleEndian.AppendUint64(b[:binLearnerParamBytes:binLearnerParamBytes], uint64(len("reg:linear")))
		b = append(append(b, "reg:linear"...), rest...)
	}
	return b
}

// TestBinaryBeforeXGBoost1: files in the layout XGBoost 0.x wrote (base
// score as a margin, no header or version) score as XGBoost 1.7 reads
// them: the base score goes back through the objective's transform.
func TestBinaryBeforeXGBoost1(t *testing.T) {
	logit := func(p float32) float32 { return float32(math.Log(float64(p) / (1 - float64(p)))) }
	cases := []struct {
		name     string
		toMargin func(float32) float32
		prob     bool
	}{
		{"early_stopping", logit, true}, // base_score 0.35
		{"count_poisson", func(p float32) float32 { return float32(math.Log(float64(p))) }, false},
		{"reg_squarederror", func(p float32) float32 { return p }, false}, // and reg:linear
		{"multi_softprob", func(p float32) float32 { return p }, true},    // a margin already
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := pre10(t, binaryBytes(t, c.name+".model"), c.toMargin)
			m, err := ParseModel(b)
			if err != nil {
				t.Fatal(err)
			}
			if m.Info().FormatVersion != "" || m.Info().Encoding != "binary" {
				t.Fatalf("format version %q, encoding %q", m.Info().FormatVersion, m.Info().Encoding)
			}
			in := readTable(t, binaryPath(c.name+".input.csv"))
			want := readTable(t, binaryPath(c.name+".expected.csv"))
			checkParity(t, m, in, want, c.prob)
		})
	}
}

// layout is where the parts of a gbtree binary fixture start, found by
// walking it as the format lays it out.
type layout struct {
	learner, objective, booster, gbtree, treeInfo, attrs int
	trees                                                []int
}

// bodyOffset is where the booster's model starts in a fixture file: after
// "binf", the learner parameters and the two names.
func bodyOffset(b []byte) int {
	p := 4 + binLearnerParamBytes
	p += 8 + int(binary.LittleEndian.Uint64(b[p:]))
	return p + 8 + int(binary.LittleEndian.Uint64(b[p:]))
}

func walkLayout(t *testing.T, b []byte) layout {
	t.Helper()
	var l layout
	l.learner = 4
	l.objective = l.learner + binLearnerParamBytes
	l.booster = l.objective + 8 + int(binary.LittleEndian.Uint64(b[l.objective:]))
	l.gbtree = bodyOffset(b)
	p := l.gbtree + binGBTreeParamBytes
	nt := int(binary.LittleEndian.Uint32(b[l.gbtree:]))
	for range nt {
		l.trees = append(l.trees, p)
		nn := int(binary.LittleEndian.Uint32(b[p+binTreeNumNodes:]))
		p += binTreeParamBytes + nn*(binNodeBytes+binNodeStatBytes)
	}
	l.treeInfo = p
	l.attrs = p + 4*nt
	return l
}

// TestBinaryDamaged: truncated files, lengths past the end, absurd counts
// and inconsistent fields are refused with an error naming the field (and
// the tree or node), never a panic, and without allocating for the claimed
// counts.
func TestBinaryDamaged(t *testing.T) {
	orig := binaryBytes(t, "binary_logistic.model")
	l := walkLayout(t, orig)
	if len(l.trees) != 8 || l.attrs >= len(orig) {
		t.Fatalf("layout %+v of a %d-byte file", l, len(orig))
	}
	put32 := func(off int, v uint32) []byte {
		b := slices.Clone(orig)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	put64 := func(off int, v uint64) []byte {
		b := slices.Clone(orig)
		binary.LittleEndian.PutUint64(b[off:], v)
		return b
	}
	node := func(tree, i, field int) int { return l.trees[tree] + binTreeParamBytes + i*binNodeBytes + field }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"cut in learner param", orig[:l.learner+100], "learner_model_param: 136 bytes needed at offset 4, 100 left"},
		{"cut in objective length", orig[:l.objective+3], "objective name length"},
		{"cut in objective", orig[:l.objective+10], "objective name: length 15 at offset 140 is more than the 2 bytes left hold (is the file truncated?)"},
		{"objective length past the end", put64(l.objective, 1<<62), "objective name: length 4611686018427387904 at offset 140 is more than the"},
		{"objective length over its bound", put64(l.objective, 300), "objective name: length 300 at offset 140 is over 256"},
		{"cut in booster name", orig[:l.booster+9], "booster name"},
		{"unknown booster", append(append(slices.Clone(orig[:l.booster]), 6, 0, 0, 0, 0, 0, 0, 0), "gbxxxx"...), `booster "gbxxxx"`},
		{"cut in gbtree param", orig[:l.gbtree+20], "gbtree_model_param"},
		{"num_trees past the end", put32(l.gbtree, 50_000), "num_trees is 50000 but"},
		{"num_trees over max_trees", put32(l.gbtree, 1<<30), "max_trees"},
		{"negative num_trees", put32(l.gbtree, math.MaxUint32), "num_trees is -1"},
		{"cut in tree 3 param", orig[:l.trees[3]+10], "tree 3: tree_param"},
		{"cut in tree 3 nodes", orig[:l.trees[3]+binTreeParamBytes+30], "tree 3: tree_param: num_nodes is"},
		{"num_nodes past the end", put32(l.trees[5]+binTreeNumNodes, 1<<20), "tree 5: tree_param: num_nodes is 1048576, which needs"},
		{"num_nodes over max_nodes", put32(l.trees[5]+binTreeNumNodes, 1<<30), "tree 5: over a model limit: the number of nodes"},
		{"zero num_nodes", put32(l.trees[0]+binTreeNumNodes, 0), "tree 0: tree_param: num_nodes is 0"},
		{"negative num_nodes", put32(l.trees[0]+binTreeNumNodes, math.MaxUint32), "tree 0: tree_param: num_nodes is -1"},
		{"num_deleted wrong", put32(l.trees[2]+binTreeNumDeleted, 3), "tree 2: tree_param: num_deleted is 3 but 0 nodes are marked deleted"},
		{"cut in tree_info", orig[:l.treeInfo+6], "tree_info: 32 bytes needed"},
		{"cut in attributes", orig[:l.attrs+5], "attributes length"},
		{"attribute count absurd", put64(l.attrs, 1<<40), "attributes: length 1099511627776 at offset"},
		{"attribute name past the end", put64(l.attrs+8, 1<<20), "attribute 0 name: length 1048576 at offset"},
		{"cut in last attribute", orig[:len(orig)-3], `attribute 2 ("objective") value`},
		{"trailing data", append(slices.Clone(orig), 1, 2, 3), "3 bytes of unknown data after the model"},
		// Past the reader, the compiler names the tree and node.
		{"child out of range", put32(node(1, 0, 4), 900), "tree 1: node 0: child 900 out of range"},
		{"split feature out of range", put32(node(4, 0, 12), 1<<31|77), "tree 4: node 0: split index 77 out of range"},
		{"tree_info group out of range", put32(l.treeInfo+4*6, 3), "tree 6: tree_info group 3 out of range"},
		{"num_class wrong", put32(l.learner+binLearnerNumClass, 2), "num_class is 2 but objective binary:logistic"},
		{"best_iteration damaged", []byte(strings.Replace(string(orig), "best_iteration\x01\x00\x00\x00\x00\x00\x00\x007", "best_iteration\x01\x00\x00\x00\x00\x00\x00\x00x", 1)), `best_iteration is "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The file's own trees and nodes are allocated, never the
			// claimed counts (the least of three runs discounts other
			// goroutines' allocations).
			least := uint64(math.MaxUint64)
			for range 3 {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				_, err := ParseModel(c.data)
				runtime.ReadMemStats(&after)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err %v, want mention of %q", err, c.want)
				}
				least = min(least, after.TotalAlloc-before.TotalAlloc)
			}
			if least > 1<<20 {
				t.Fatalf("allocated %d bytes refusing a %d-byte file", least, len(c.data))
			}
		})
	}

	// Every cut of a model, anywhere, is an error naming what was cut.
	for n := range len(orig) {
		var doc xgbDoc
		err := decodeXGBoostBinary(orig[:n], &doc)
		if err == nil {
			t.Fatalf("a model cut to %d of %d bytes decoded", n, len(orig))
		}
		if !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut to %d bytes: %v does not say the file is truncated", n, err)
		}
	}
	// dart's weight_drop and gblinear's weights.
	dart := binaryBytes(t, "dart.model")
	dl := walkLayout(t, dart)
	wd := dl.attrs // dart's weight_drop follows tree_info
	gbl := binaryBytes(t, "gblinear.model")
	gw := bodyOffset(gbl) + binLinearParamBytes
	with64 := func(b []byte, off int, v uint64) []byte {
		b = slices.Clone(b)
		binary.LittleEndian.PutUint64(b[off:], v)
		return b
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"weight_drop short", with64(dart, wd, uint64(len(dl.trees)-1)), "dart weight_drop has 5 entries for 6 trees"},
		{"weight_drop long", with64(dart, wd, uint64(len(dl.trees)+1)), "dart weight_drop: length 7 at offset"},
		{"weight_drop absurd", with64(dart, wd, 1<<61), "dart weight_drop: length 2305843009213693952 at offset"},
		{"cut in weight_drop", dart[:wd+12], "dart weight_drop: length 6 at offset"},
		{"cut in gblinear param", gbl[:gw-10], "gblinear model param: 136 bytes needed"},
		{"gblinear weights absurd", with64(gbl, gw, 1<<62), "gblinear weights: length 4611686018427387904 at offset"},
		{"cut in gblinear weights", gbl[:gw+20], "gblinear weights: length 27 at offset"},
	} {
		var doc xgbDoc
		if err := decodeXGBoostBinary(c.data, &doc); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want mention of %q", c.name, err, c.want)
		}
	}

	// XGBoost stopped reading base64 files; so do we, saying so.
	var doc xgbDoc
	if err := decodeXGBoostBinary(append([]byte("bs64"), orig[4:]...), &doc); !errors.Is(err, ErrUnsupportedModel) || !strings.Contains(err.Error(), "base64") {
		t.Fatalf("bs64: %v", err)
	}
	// A configured limit applies to binary models as to JSON ones.
	_, err := ParseModel(orig, WithLimits(ModelLimits{MaxTrees: 3}))
	if !errors.Is(err, ErrModelLimit) {
		t.Fatalf("max_trees 3: %v", err)
	}
}

// BenchmarkDecodeBinaryVsJSON decodes the same model from the binary file
// and from XGBoost's JSON, side by side (bytes/s are of each file).
func BenchmarkDecodeBinaryVsJSON(b *testing.B) {
	bin := binaryBytes(b, "early_stopping.model")
	_, js, err := extractModelFromTarGz(binaryBytes(b, "early_stopping.json.tar.gz"), ModelLimits{}.withDefaults())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("binary", func(b *testing.B) {
		b.SetBytes(int64(len(bin)))
		b.ReportAllocs()
		for b.Loop() {
			var doc xgbDoc
			if err := decodeXGBoostBinary(bin, &doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		b.ReportAllocs()
		for b.Loop() {
			var doc xgbDoc
			if err := decodeXGBoost(js, &doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A pre-1.3 file has no "binf" header, so its first byte is base_score's
// lowest: one that happens to be '{' (0x7b) looks like UBJSON at first.
// It must still load, as binary, rather than be refused as broken UBJSON.
func TestBinaryWhoseFirstByteLooksLikeUBJSON(t *testing.T) {
	b := pre10(t, binaryBytes(t, "reg_squarederror.model"), func(p float32) float32 {
		return math.Float32frombits(math.Float32bits(p)&^0xff | '{')
	})
	if b[0] != '{' {
		t.Fatalf("first byte %q, want '{'", b[0])
	}
	m, err := ParseModel(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Encoding != "binary" {
		t.Fatalf("encoding %q, want binary", m.Info().Encoding)
	}
	// The same bytes behind a "binf" header take the plain binary path:
	// both must be the same model.
	ref, err := ParseModel(append([]byte("binf"), b...))
	if err != nil {
		t.Fatal(err)
	}
	in := readTable(t, binaryPath("reg_squarederror.input.csv"))
	cols, err := in.Select(m.Features())
	if err != nil {
		t.Fatal(err)
	}
	got, exp := make([]float64, in.Rows), make([]float64, in.Rows)
	var s Scratch
	if err := m.Predict(cols, in.Rows, [][]float64{got}, &s); err != nil {
		t.Fatal(err)
	}
	if err := ref.Predict(cols, in.Rows, [][]float64{exp}, &s); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != exp[i] {
			t.Fatalf("row %d: %v, the same model behind binf %v", i, got[i], exp[i])
		}
	}
}
