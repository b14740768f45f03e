package main

import (
	"strings"
	"testing"
)

// `model inspect` tells the model families apart: XGBoost's booster and
// the version that wrote it, LightGBM's format version and its trees, and
// a legacy binary file (what SageMaker's XGBoost 1.x container saves).
func TestModelInspectEveryFamily(t *testing.T) {
	cases := []struct {
		file string
		want []string
	}{
		{"scorer/testdata/fidelity/dart_binary_logistic.json", []string{"kind:", "xgboost (json)", "booster:", "dart", "XGBoost 1.7.4", "trees:", "14 used of 17"}},
		{"scorer/testdata/fidelity/gblinear_binary_logistic.json", []string{"booster:", "gblinear", "features:", "8"}},
		{"scorer/testdata/binary/binary_logistic.tar.gz", []string{"xgboost (binary)", "booster:", "gbtree"}},
		{"scorer/testdata/lightgbm/boosters/multiclass/model.txt", []string{"lightgbm (lightgbm-text)", "format version:", "v4", "outputs:", "3", "30 used of 30"}},
	}
	for _, c := range cases {
		out, stderr, err := run(t, nil, "model", "inspect", c.file)
		if err != nil {
			t.Fatalf("model inspect %s: %v\n%s", c.file, err, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("model inspect %s: no %q in\n%s", c.file, w, out)
			}
		}
		if strings.Contains(out, "XGBoost v") {
			t.Errorf("model inspect %s: a LightGBM version printed as XGBoost's:\n%s", c.file, out)
		}
	}
}
