package scorer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// lgbCase is one LightGBM model with inputs and the predictions LightGBM
// itself made for them (testdata/lightgbm/README.md says where each comes
// from).
type lgbCase struct {
	name      string
	model     string      // under testdata/lightgbm; .gz is gunzipped
	rows      [][]float64 // inputs, row-major, model feature order
	pred      [][]float64 // LightGBM's predictions, row-major (nil: none)
	raw       [][]float64 // LightGBM's raw scores (nil: none)
	objective string      // the model's objective line
	outputs   int         // scores per row
	version   string      // the model's format version
}

func lgbPath(name string) string { return filepath.Join("testdata", "lightgbm", name) }

func readLGBModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(lgbPath(name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// readLGBTable reads rows of numbers separated by tabs (numpy.savetxt).
func readLGBTable(t testing.TB, name string) [][]float64 {
	t.Helper()
	f, err := os.Open(lgbPath(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row []float64
		for _, s := range strings.Fields(sc.Text()) {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s line %d: %v", name, len(rows)+1, err)
			}
			row = append(row, v)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// readLGBLibSVM reads "label index:value ..." rows (0-based indices, an
// absent index is 0, as LightGBM reads sparse rows).
func readLGBLibSVM(t testing.TB, name string, features int) [][]float64 {
	t.Helper()
	var rows [][]float64
	for _, line := range strings.Split(strings.TrimSpace(string(readLGBModel(t, name))), "\n") {
		row := make([]float64, features)
		for _, p := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(p, ":")
			j, err := strconv.Atoi(k)
			if err != nil || j < 0 || j >= features {
				t.Fatalf("%s: bad index %q", name, p)
			}
			if row[j], err = strconv.ParseFloat(v, 64); err != nil {
				t.Fatal(err)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// readLGBJSON decodes a JSON fixture; null numbers become NaN.
func readLGBJSON(t testing.TB, name string, v any) {
	t.Helper()
	b := bytes.ReplaceAll(readLGBModel(t, name), []byte("null"), []byte(`"NaN"`))
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// lgbNum is a JSON number, or the string "NaN" for a missing one.
type lgbNum float64

func (n *lgbNum) UnmarshalJSON(b []byte) error {
	if string(b) == `"NaN"` {
		*n = lgbNum(math.NaN())
		return nil
	}
	var f float64
	err := json.Unmarshal(b, &f)
	*n = lgbNum(f)
	return err
}

func lgbRows(in [][]lgbNum) [][]float64 {
	out := make([][]float64, len(in))
	for i, r := range in {
		out[i] = make([]float64, len(r))
		for j, v := range r {
			out[i][j] = float64(v)
		}
	}
	return out
}

// column turns one prediction per row into rows of one.
func column(v []lgbNum) [][]float64 {
	out := make([][]float64, len(v))
	for i, x := range v {
		out[i] = []float64{float64(x)}
	}
	return out
}

// boostersCase reads a test case of the boosters repository: input.json
// ({"data": rows}), expected.json ({"raw": ..., "proba": ...}).
func boostersCase(t testing.TB, dir string, multi bool) (rows, raw, proba [][]float64) {
	var in struct{ Data [][]lgbNum }
	readLGBJSON(t, "boosters/"+dir+"/input.json", &in)
	rows = lgbRows(in.Data)
	if multi {
		var ex struct{ Raw, Proba [][]lgbNum }
		readLGBJSON(t, "boosters/"+dir+"/expected.json", &ex)
		return rows, lgbRows(ex.Raw), lgbRows(ex.Proba)
	}
	var ex struct{ Raw, Proba []lgbNum }
	readLGBJSON(t, "boosters/"+dir+"/expected.json", &ex)
	raw = column(ex.Raw)
	if ex.Proba != nil {
		proba = column(ex.Proba)
	}
	return rows, raw, proba
}

func lgbCases(t testing.TB) []lgbCase {
	var cs []lgbCase

	cs = append(cs, lgbCase{
		name: "dart-binary", model: "leaves/lg_dart_breast_cancer.model",
		rows:      readLGBTable(t, "leaves/breast_cancer_test.tsv"),
		pred:      readLGBTable(t, "leaves/lg_dart_breast_cancer_true_predictions.txt"),
		objective: "binary sigmoid:1", outputs: 1, version: "v2",
	})
	// Made by a LightGBM before 2.2.3, which returned an average_output
	// model's averaged score unconverted: the fixture's predictions are
	// the averaged raw scores. LightGBM since applies the objective
	// (sigmoid) after averaging, as this scorer does
	// (TestLightGBMRandomForestConverts).
	cs = append(cs, lgbCase{
		name: "rf-average-output", model: "leaves/lg_rf_iris.model",
		rows:      readLGBLibSVM(t, "leaves/iris_test.libsvm", 4),
		raw:       readLGBTable(t, "leaves/lg_rf_iris_true_predictions.txt"),
		objective: "binary sigmoid:1", outputs: 1, version: "v2",
	})
	cs = append(cs, lgbCase{
		name: "categorical-multiclass-raw", model: "leaves/lg_kddcup99.stripped.model.gz",
		rows:      readLGBTable(t, "leaves/kddcup99_test.tsv"),
		raw:       readLGBTable(t, "leaves/lg_kddcup99_true_predictions.txt"),
		objective: "multiclass num_class:13", outputs: 13, version: "v2",
	})
	cs = append(cs, lgbCase{
		name: "categorical-poisson", model: "leaves/genlin_fmtp_poisson_Frequency.stripped.model.gz",
		rows:      readLGBTable(t, "leaves/genlin_fmtp_poisson_Frequency_features.tsv"),
		pred:      readLGBTable(t, "leaves/genlin_fmtp_poisson_Frequency_true_predictions.txt"),
		objective: "poisson", outputs: 1, version: "v3",
	})
	for _, d := range []string{"regression", "regression_missing", "linear_tree"} {
		rows, raw, _ := boostersCase(t, d, false)
		cs = append(cs, lgbCase{
			name: d, model: "boosters/" + d + "/model.txt", rows: rows, raw: raw, pred: raw,
			objective: "regression", outputs: 1, version: "v4",
		})
	}
	rows, raw, proba := boostersCase(t, "multiclass", true)
	cs = append(cs, lgbCase{
		name: "multiclass", model: "boosters/multiclass/model.txt", rows: rows, raw: raw, pred: proba,
		objective: "multiclass num_class:3", outputs: 3, version: "v4",
	})
	var rank struct {
		Inputs      [][]lgbNum
		Predictions []lgbNum
	}
	readLGBJSON(t, "go-lgbm/v4/ranking.json", &rank)
	cs = append(cs, lgbCase{
		name: "lambdarank", model: "go-lgbm/v4/ranking.txt",
		rows: lgbRows(rank.Inputs), pred: column(rank.Predictions), raw: column(rank.Predictions),
		objective: "lambdarank", outputs: 1, version: "v4",
	})
	return cs
}

// lgbClose is the parity bar: within 1e-6 absolute or 1e-5 relative.
func lgbClose(got, want float64) bool {
	d := math.Abs(got - want)
	return d <= 1e-6 || d <= 1e-5*math.Abs(want)
}

func lgbCols(rows [][]float64, nf int) [][]float64 {
	cols := make([][]float64, nf)
	for j := range cols {
		cols[j] = make([]float64, len(rows))
		for i, r := range rows {
			cols[j][i] = r[j]
		}
	}
	return cols
}

// TestLightGBMParity checks every prediction and raw score of every
// fixture against LightGBM's own, on every row: binary (a dart model),
// random forest (average_output), multi-class (softmax, and raw scores
// with categorical splits over multi-word bitsets), poisson with
// categorical splits, regression with and without missing values, linear
// trees and lambdarank; format versions v2, v3 and v4. Rows are scored in
// one batch (four at a time through each tree, the rest one at a time)
// and one at a time, which take different code paths, and once more with
// every tree walked in LightGBM's own shape (the branching layout).
func TestLightGBMParity(t *testing.T) {
	for _, c := range lgbCases(t) {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseModel(readLGBModel(t, c.model))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, m)
			// Every tree walked in LightGBM's own shape scores the same.
			c.check(t, lgbRelayout(t, readLGBModel(t, c.model), lgbBranching))
		})
	}
}

// check compares m's predictions and raw scores with LightGBM's, in a
// batch and one row at a time.
func (c lgbCase) check(t *testing.T, m *Model) {
	t.Helper()
	info := m.Info()
	if info.Kind != "lightgbm" || info.Encoding != "lightgbm-text" || info.Objective != c.objective ||
		info.Outputs != c.outputs || info.FormatVersion != c.version {
		t.Fatalf("info = %+v", info)
	}
	nf := len(m.Features())
	for i, r := range c.rows {
		if len(r) != nf {
			t.Fatalf("row %d has %d values, the model %d features", i, len(r), nf)
		}
	}
	n := len(c.rows)
	cols := lgbCols(c.rows, nf)
	var s Scratch
	check := func(what string, want [][]float64, margins bool) {
		if want == nil {
			return
		}
		if len(want) != n {
			t.Fatalf("%s: %d expected rows for %d inputs", what, len(want), n)
		}
		out := alloc(c.outputs, n)
		predict := m.Predict
		if margins {
			predict = m.PredictMargins
		}
		if err := predict(cols, n, out, &s); err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range n {
			for k := range c.outputs {
				if !lgbClose(out[k][i], want[i][k]) {
					t.Fatalf("%s row %d output %d: got %v, LightGBM %v", what, i, k, out[k][i], want[i][k])
				}
				worst = max(worst, math.Abs(out[k][i]-want[i][k]))
			}
		}
		// One row at a time.
		one := make([][]float64, nf)
		o1 := alloc(c.outputs, 1)
		for i := range n {
			for j := range one {
				one[j] = cols[j][i : i+1]
			}
			if err := predict(one, 1, o1, &s); err != nil {
				t.Fatal(err)
			}
			for k := range c.outputs {
				if o1[k][0] != out[k][i] {
					t.Fatalf("%s row %d output %d: %v alone, %v in a batch", what, i, k, o1[k][0], out[k][i])
				}
			}
		}
		t.Logf("%s: %d rows x %d outputs, largest difference from LightGBM %.3g", what, n, c.outputs, worst)
	}
	check("predictions", c.pred, false)
	check("raw scores", c.raw, true)
}

// Contributions of every fixture row add up to its raw score, for every
// output.
func TestLightGBMContributionsSumToRawScore(t *testing.T) {
	for _, c := range lgbCases(t) {
		t.Run(c.name, func(t *testing.T) {
			m := mustParse(t, readLGBModel(t, c.model))
			if err := m.CheckContributions(); err != nil {
				t.Fatal(err)
			}
			nf := len(m.Features())
			n := len(c.rows)
			raw := alloc(c.outputs, n)
			var s Scratch
			if err := m.PredictMargins(lgbCols(c.rows, nf), n, raw, &s); err != nil {
				t.Fatal(err)
			}
			var dst []float64
			for i, r := range c.rows {
				for k := range c.outputs {
					var err error
					if dst, err = m.Contributions(dst, r, k, &s); err != nil {
						t.Fatal(err)
					}
					sum := 0.0
					for _, v := range dst {
						sum += v
					}
					if math.Abs(sum-raw[k][i]) > 1e-9*max(1, math.Abs(raw[k][i])) {
						t.Fatalf("row %d output %d: contributions add up to %v, raw score %v", i, k, sum, raw[k][i])
					}
				}
			}
		})
	}
}
