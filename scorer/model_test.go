package scorer

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fixtureBytes(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fidelity", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Unsupported models are refused with an error that says what and why.
func TestRefusals(t *testing.T) {
	base := string(fixtureBytes(t, "binary_logistic.json"))
	cases := []struct {
		name, doc, want string
	}{
		{"unknown objective", strings.Replace(base, `"binary:logistic"`, `"rank:pairwise"`, 1), `objective "rank:pairwise"`},
		{"vector leaf", strings.Replace(base, `"size_leaf_vector":"0"`, `"size_leaf_vector":"3"`, 1), "vector-leaf"},
		{"unknown booster", strings.Replace(base, `"name":"gbtree"`, `"name":"gbforest"`, 1), `booster "gbforest"`},
		{"multi-target", strings.Replace(base, `"num_target":"1"`, `"num_target":"2"`, 1), "multi-target"},
		{"garbage", "PK\x03\x04 not a model", "unrecognised model format"},
	}
	for _, c := range cases {
		_, err := ParseModel([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want mention of %q", c.name, err, c.want)
		}
		if c.name != "garbage" && !errors.Is(err, ErrUnsupportedModel) {
			t.Errorf("%s: %v is not ErrUnsupportedModel", c.name, err)
		}
	}
	// Structural damage is reported with the tree and node.
	bad := strings.Replace(base, `"left_children":[1,`, `"left_children":[0,`, 1)
	if _, err := ParseModel([]byte(bad)); err == nil || !strings.Contains(err.Error(), "tree 0: node 0") {
		t.Errorf("cyclic tree: %v", err)
	}
}

// best_iteration limits the trees used unless WithAllTrees is given.
func TestBestIteration(t *testing.T) {
	var manifest struct {
		Models []struct {
			Name          string `json:"name"`
			TreesUsed     int    `json:"trees_used"`
			BestIteration int    `json:"best_iteration"`
		} `json:"models"`
	}
	if err := json.Unmarshal(fixtureBytes(t, "manifest.json"), &manifest); err != nil {
		t.Fatal(err)
	}
	for _, fx := range manifest.Models {
		m := loadFixtureModel(t, fx.Name+".json")
		if m.Info().Trees != fx.TreesUsed || m.Info().BestIteration != fx.BestIteration {
			t.Errorf("%s: %d trees, best_iteration %d; XGBoost used %d, %d", fx.Name, m.Info().Trees, m.Info().BestIteration, fx.TreesUsed, fx.BestIteration)
		}
	}
	m := loadFixtureModel(t, "early_stopping.json")
	all := loadFixtureModel(t, "early_stopping.json", WithAllTrees())
	if all.Info().Trees != all.Info().TotalTrees || all.Info().Trees <= m.Info().Trees {
		t.Fatalf("trees %d (all %d of %d)", m.Info().Trees, all.Info().Trees, all.Info().TotalTrees)
	}
}

func TestLinearModel(t *testing.T) {
	doc := `{"streamscore_linear": 1, "link": "logistic", "intercept": -1,
	  "features": [{"name": "a", "weight": 2}, {"name": "b", "weight": -0.5, "missing": 4}]}`
	m := mustParse(t, []byte(doc))
	if m.Info().Objective != "linear:logistic" || len(m.Features()) != 2 {
		t.Fatalf("%+v", m.Info())
	}
	out := alloc(1, 2)
	var s Scratch
	if err := m.Predict([][]float64{{1, 0.25}, {2, nan()}}, 2, out, &s); err != nil {
		t.Fatal(err)
	}
	if out[0][0] != sigmoid(-1+2-1) || out[0][1] != sigmoid(-1+0.5-2) {
		t.Fatalf("scores %v", out[0])
	}
	for _, bad := range []string{
		`{"streamscore_linear": 1, "features": []}`,
		`{"streamscore_linear": 1, "link": "probit", "features": [{"name":"a","weight":1}]}`,
		`{"streamscore_linear": 1, "features": [{"name":"a"}]}`,
		`{"streamscore_linear": 2, "features": [{"name":"a","weight":1}]}`,
		`{"streamscore_linear": 1, "features": [{"name":"a","weight":1}], "extra": 1}`,
	} {
		if _, err := ParseModel([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestPredictCSV(t *testing.T) {
	m := loadFixtureModel(t, "multi_softprob.json")
	var out bytes.Buffer
	in := "cat_big,temp,vib,rpm,load,volt,hum,cat_small,ignored\n1,0.5,,1200,0,1,2,1,x\n,,,,,,,,\n"
	if err := PredictCSV(m, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[0] != "score_0,score_1,score_2" || strings.Count(lines[1], ",") != 2 {
		t.Fatalf("output %q", out.String())
	}
	err := PredictCSV(m, strings.NewReader("temp,vib\n1,2\n"), &out)
	var mf *MissingFeaturesError
	if !errors.As(err, &mf) || len(mf.Missing) != 6 {
		t.Fatalf("missing features: %v", err)
	}
	if err := PredictCSV(m, strings.NewReader(in+"1,2,3,4,5,6,7,oops,x\n"), &out); err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "cat_small") {
		t.Fatalf("bad cell: %v", err)
	}
}

// Rewriting the model file swaps the new version in; a version that does
// not pass Check, or does not parse, is refused and the old one kept.
func TestWatcherHotReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.json")
	os.WriteFile(path, fixtureBytes(t, "binary_logistic.json"), 0o644)
	w, err := WatchModel(t.Context(), path, WatchOptions{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	v1 := w.Current().Version()
	if changed, err := w.Poll(t.Context()); changed || err != nil {
		t.Fatalf("unchanged file: %v %v", changed, err)
	}
	os.WriteFile(path, fixtureBytes(t, "early_stopping.json"), 0o644)
	os.Chtimes(path, time.Now().Add(time.Second), time.Now().Add(time.Second))
	if changed, err := w.Poll(t.Context()); !changed || err != nil || w.Current().Version() == v1 {
		t.Fatalf("new file: %v %v", changed, err)
	}
	v2 := w.Current().Version()
	os.WriteFile(path, []byte("{broken"), 0o644)
	os.Chtimes(path, time.Now().Add(2*time.Second), time.Now().Add(2*time.Second))
	if changed, err := w.Poll(t.Context()); changed || err == nil || w.Current().Version() != v2 {
		t.Fatalf("broken file: %v %v", changed, err)
	}
	os.WriteFile(path, fixtureBytes(t, "multi_softprob.json"), 0o644)
	os.Chtimes(path, time.Now().Add(3*time.Second), time.Now().Add(3*time.Second))
	if changed, err := w.Poll(t.Context()); changed || err == nil || !strings.Contains(err.Error(), "outputs") {
		t.Fatalf("3-class model swapped for a binary one: %v %v", changed, err)
	}
}

// A configured format is checked against the file: a linear model loaded
// where an XGBoost one is promised is refused, naming both kinds.
func TestWithKindRefusesAnotherKind(t *testing.T) {
	lin := []byte(`{"streamscore_linear": 1, "intercept": 1, "features": [{"name": "a", "weight": 2}]}`)
	if _, err := ParseModel(lin, WithKind("linear")); err != nil {
		t.Fatalf("linear model with kind linear: %v", err)
	}
	_, err := ParseModel(lin, WithKind("xgboost"))
	if !errors.Is(err, ErrUnsupportedModel) || !strings.Contains(err.Error(), "linear model") || !strings.Contains(err.Error(), "configured format is xgboost") {
		t.Fatalf("linear model with kind xgboost: err = %v", err)
	}
}

// A SageMaker artifact holding a LightGBM model.txt beside other files (an
// inference script, say) loads from the archive and from the directory it
// is unpacked into, as xgboost-model does.
func TestArtifactWithLightGBMModelTxt(t *testing.T) {
	txt, err := os.ReadFile("testdata/lightgbm/boosters/multiclass/model.txt")
	if err != nil {
		t.Fatal(err)
	}
	other := []byte("print('not a model')\n")
	tgz := tarGz(t, map[string][]byte{"code/inference.py": other, "model.txt": txt}, []string{"code/inference.py", "model.txt"})
	m, err := ParseModel(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Kind != "lightgbm" || m.Info().Source != "!model.txt" {
		t.Fatalf("kind %q from %q, want lightgbm from !model.txt", m.Info().Kind, m.Info().Source)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"inference.py": other, "model.txt": txt} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err = LoadModel(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Kind != "lightgbm" || filepath.Base(m.Info().Source) != "model.txt" {
		t.Fatalf("kind %q from %q, want lightgbm from model.txt", m.Info().Kind, m.Info().Source)
	}
	// xgboost-model still wins over the others, in either order.
	xgb, err := os.ReadFile("testdata/fidelity/binary_logistic.json")
	if err != nil {
		t.Fatal(err)
	}
	tgz = tarGz(t, map[string][]byte{"model.txt": txt, "xgboost-model": xgb}, []string{"model.txt", "xgboost-model"})
	if m, err = ParseModel(tgz); err != nil || m.Info().Kind != "xgboost" {
		t.Fatalf("model.txt then xgboost-model: %v, %+v", err, m)
	}
}
