package monitor

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
)

// profileStats observes n rows, row(r, p, i) observing every column of
// row i, and returns the profile's statistics.
func profileStats(cols []Column, n int, seed uint64, row func(r *rand.Rand, p *Profile, i int)) *Statistics {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := NewProfile(cols, Options{})
	for i := range n {
		row(r, p, i)
	}
	p.AddRows(n)
	return p.Statistics()
}

// normalStats is one Fractional column "x" of n draws of N(mean, 1).
func normalStats(n int, seed uint64, mean float64) *Statistics {
	return profileStats([]Column{{Name: "x", Kind: Fractional}}, n, seed, func(r *rand.Rand, p *Profile, _ int) {
		p.ObserveFloat(0, mean+r.NormFloat64())
	})
}

// categoricalStats is one String column "c" of n draws from the values
// with the given probabilities.
func categoricalStats(n int, seed uint64, values []string, probs []float64) *Statistics {
	return profileStats([]Column{{Name: "c", Kind: String}}, n, seed, func(r *rand.Rand, p *Profile, _ int) {
		p.ObserveString(0, draw(r, values, probs))
	})
}

func draw(r *rand.Rand, values []string, probs []float64) string {
	u := r.Float64()
	for i, pr := range probs {
		if u < pr {
			return values[i]
		}
		u -= pr
	}
	return values[len(values)-1]
}

func feature(t *testing.T, rep *Report, name string) FeatureReport {
	t.Helper()
	for _, f := range rep.Features {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no feature report for %q in %+v", name, rep.Features)
	return FeatureReport{}
}

func checkTypes(rep *Report) []string {
	var out []string
	for _, v := range rep.Violations {
		out = append(out, v.FeatureName+"/"+v.ConstraintCheckType)
	}
	return out
}

// The acceptance test: a feature shifted by half a standard
// deviation drifts at the default threshold and method; a re-sample of the
// unchanged distribution does not. Five seeds, so one lucky draw cannot
// carry it.
func TestDriftNumericalHalfSigma(t *testing.T) {
	// The KS distance of N(0,1) and N(0.5,1) is 2*Phi(0.25) - 1.
	ksShift := math.Erf(0.25 / math.Sqrt2)
	for seed := uint64(1); seed <= 5; seed++ {
		base := normalStats(20000, seed, 0)
		shifted := Compare(base, nil, normalStats(5000, seed+100, 0.5))
		if got := checkTypes(shifted); len(got) != 1 || got[0] != "x/"+BaselineDriftCheck {
			t.Errorf("seed %d: shifted: violations %v, want one x/baseline_drift_check", seed, got)
		}
		f := feature(t, shifted, "x")
		if !f.Drifted || f.Method != "Robust" || f.Threshold != 0.1 {
			t.Errorf("seed %d: shifted: %+v, want drifted by Robust at 0.1", seed, f)
		}
		near(t, "shifted KS", f.KS, ksShift, 0.03)
		near(t, "shifted Wasserstein", f.Wasserstein, 0.5, 0.05)
		if f.PSI < 0.1 || f.JensenShannon < 0.1 {
			t.Errorf("seed %d: shifted PSI %g, JS %g: want both above 0.1", seed, f.PSI, f.JensenShannon)
		}

		same := Compare(base, nil, normalStats(5000, seed+200, 0))
		if len(same.Violations) != 0 {
			t.Errorf("seed %d: re-sample: violations %v, want none", seed, checkTypes(same))
		}
		f = feature(t, same, "x")
		if f.Drifted || f.Distance != 0 || f.KS > 0.04 || f.Wasserstein > 0.05 || f.PSI > 0.01 || f.JensenShannon > 0.05 {
			t.Errorf("seed %d: re-sample: %+v, want no drift and small distances", seed, f)
		}
	}
}

func TestDriftCategorical(t *testing.T) {
	values := []string{"a", "b", "c"}
	for seed := uint64(1); seed <= 5; seed++ {
		base := categoricalStats(20000, seed, values, []float64{0.5, 0.3, 0.2})
		shifted := Compare(base, nil, categoricalStats(5000, seed+100, values, []float64{0.35, 0.35, 0.3}))
		if got := checkTypes(shifted); len(got) != 1 || got[0] != "c/"+BaselineDriftCheck {
			t.Errorf("seed %d: shifted: violations %v, want one c/baseline_drift_check", seed, got)
		}
		f := feature(t, shifted, "c")
		near(t, "shifted L-infinity", f.KS, 0.15, 0.03)
		if !f.Drifted || f.Wasserstein != 0 {
			t.Errorf("seed %d: shifted: %+v", seed, f)
		}
		same := Compare(base, nil, categoricalStats(5000, seed+200, values, []float64{0.5, 0.3, 0.2}))
		if len(same.Violations) != 0 {
			t.Errorf("seed %d: re-sample: violations %v, want none", seed, checkTypes(same))
		}
	}
}

// Robust exists so that a short period does not alarm on sampling noise:
// 30 values from the baseline's own distribution are typically ~0.16 away
// in L-infinity, above 0.1, which Simple flags and Robust (whose KS
// critical value for n = 30 is ~0.33) does not. Both flag a real shift.
func TestRobustAgainstSimpleOnSmallPeriods(t *testing.T) {
	base := normalStats(20000, 1, 0)
	simple, robust := Suggest(base), Suggest(base)
	simple.MonitoringConfig.DistributionConstraints.ComparisonMethod = Simple
	robust.MonitoringConfig.DistributionConstraints.ComparisonMethod = Robust
	var simpleFlags, robustFlags int
	const periods = 20
	for seed := uint64(10); seed < 10+periods; seed++ {
		cur := normalStats(30, seed, 0)
		s, r := Compare(base, simple, cur), Compare(base, robust, cur)
		fs, fr := feature(t, s, "x"), feature(t, r, "x")
		if fs.Distance != fs.KS || fr.KS != fs.KS {
			t.Fatalf("Simple's distance must be the KS statistic: simple %+v robust %+v", fs, fr)
		}
		if fs.Drifted {
			simpleFlags++
		}
		if fr.Drifted {
			robustFlags++
		}
	}
	if simpleFlags < periods*3/4 || robustFlags != 0 {
		t.Errorf("unchanged 30-value periods: Simple flagged %d, Robust %d of %d; want Simple most, Robust none",
			simpleFlags, robustFlags, periods)
	}
	shifted := normalStats(5000, 99, 0.5)
	if !feature(t, Compare(base, simple, shifted), "x").Drifted || !feature(t, Compare(base, robust, shifted), "x").Drifted {
		t.Error("a half-sigma shift over 5000 values must drift by both methods")
	}
}

func TestEachCheckHasItsViolation(t *testing.T) {
	numericRows := func(missingEvery int, shift float64) func(*rand.Rand, *Profile, int) {
		return func(r *rand.Rand, p *Profile, i int) {
			if missingEvery > 0 && i%missingEvery == 0 {
				p.ObserveMissing(0)
				return
			}
			p.ObserveFloat(0, shift+r.NormFloat64())
		}
	}
	x := []Column{{Name: "x", Kind: Fractional}}
	xy := []Column{{Name: "x", Kind: Fractional}, {Name: "y", Kind: Fractional}}
	xz := []Column{{Name: "x", Kind: Fractional}, {Name: "z", Kind: Fractional}}
	texts := func(cells ...string) func(*rand.Rand, *Profile, int) {
		return func(_ *rand.Rand, p *Profile, i int) { p.ObserveText(0, cells[i%len(cells)]) }
	}
	both := func(r *rand.Rand, p *Profile, _ int) {
		p.ObserveFloat(0, r.NormFloat64())
		p.ObserveFloat(1, r.NormFloat64())
	}
	cats := func(extra float64) func(*rand.Rand, *Profile, int) {
		return func(r *rand.Rand, p *Profile, _ int) {
			if r.Float64() < extra {
				p.ObserveString(0, "d")
				return
			}
			p.ObserveString(0, draw(r, []string{"a", "b", "c"}, []float64{0.5, 0.3, 0.2}))
		}
	}
	cases := []struct {
		check, feature string
		base, cur      *Statistics
		description    string // exact, or a prefix ending in "..."
	}{{
		DataTypeCheck, "n",
		profileStats([]Column{{Name: "n", Kind: Unknown}}, 1000, 1, texts("1", "2", "3", "4", "5", "6", "7", "8", "9")),
		profileStats([]Column{{Name: "n", Kind: Unknown}}, 1000, 2, texts("5", "abc")),
		"Data type match requirement is not met. Expected data type: Integral, Expected match: 100.0%. Observed: Only 50.0% of data is Integral.",
	}, {
		CompletenessCheck, "x",
		profileStats(x, 20000, 1, numericRows(0, 0)),
		profileStats(x, 5000, 2, numericRows(20, 0)),
		"Data completeness requirement is not met. Expected completeness: 100.0%. Observed: Only 95.0% of data is complete.",
	}, {
		MissingColumnCheck, "y",
		profileStats(xy, 20000, 1, both),
		profileStats(x, 5000, 2, numericRows(0, 0)),
		"There are missing columns in current dataset. Number of columns in current dataset: 1, Number of columns in baseline constraints: 2",
	}, {
		ExtraColumnCheck, "z",
		profileStats(x, 20000, 1, numericRows(0, 0)),
		profileStats(xz, 5000, 2, both),
		"There are extra columns in current dataset. Number of columns in current dataset: 2, Number of columns in baseline constraints: 1",
	}, {
		CategoricalValuesCheck, "c",
		profileStats([]Column{{Name: "c", Kind: String}}, 20000, 1, cats(0)),
		profileStats([]Column{{Name: "c", Kind: String}}, 5000, 2, cats(0.02)),
		"Categorical values requirement is not met. Expected: 100.0% of values in the baseline domain. Observed: Only 9...",
	}, {
		BaselineDriftCheck, "x",
		profileStats(x, 20000, 1, numericRows(0, 0)),
		profileStats(x, 5000, 2, numericRows(0, 0.5)),
		"Numerical distance: 0.1...",
	}}
	for _, tc := range cases {
		t.Run(tc.check, func(t *testing.T) {
			rep := Compare(tc.base, nil, tc.cur)
			if len(rep.Violations) != 1 {
				t.Fatalf("violations %v, want one %s/%s", checkTypes(rep), tc.feature, tc.check)
			}
			v := rep.Violations[0]
			if v.FeatureName != tc.feature || v.ConstraintCheckType != tc.check {
				t.Errorf("violation %+v, want %s/%s", v, tc.feature, tc.check)
			}
			if prefix, ok := strings.CutSuffix(tc.description, "..."); ok {
				if !strings.HasPrefix(v.Description, prefix) {
					t.Errorf("description %q, want it to start %q", v.Description, prefix)
				}
			} else if v.Description != tc.description {
				t.Errorf("description\n %q, want\n %q", v.Description, tc.description)
			}
		})
	}
}

func TestDriftDescriptionNamesDistanceAndThreshold(t *testing.T) {
	rep := Compare(normalStats(20000, 1, 0), nil, normalStats(5000, 2, 0.5))
	f := feature(t, rep, "x")
	want := fmt.Sprintf("Numerical distance: %s exceeds numerical threshold: 0.1", mmjson.JavaDouble(f.Distance))
	if len(rep.Violations) != 1 || rep.Violations[0].Description != want {
		t.Errorf("violations %+v, want one %q", rep.Violations, want)
	}
}

// Clean data, every kind of column at once: no violation, nothing drifted.
func TestNoViolationsOnCleanData(t *testing.T) {
	cols := []Column{{Name: "temp", Kind: Fractional}, {Name: "count", Kind: Unknown}, {Name: "site", Kind: String}, {Name: "ok", Kind: Boolean}}
	row := func(r *rand.Rand, p *Profile, i int) {
		p.ObserveFloat(0, 20+3*r.NormFloat64())
		p.ObserveText(1, fmt.Sprint(r.IntN(50)))
		p.ObserveString(2, draw(r, []string{"north", "south", "east", "west"}, []float64{0.4, 0.3, 0.2, 0.1}))
		if i%7 == 0 {
			p.ObserveMissing(3) // 1/7 missing in baseline and period alike
		} else {
			p.ObserveBool(3, r.Float64() < 0.9)
		}
	}
	base := profileStats(cols, 20000, 1, row)
	c := Suggest(base)
	for seed := uint64(2); seed < 7; seed++ {
		// 7000 rows: a multiple of 7, so the period's completeness of "ok"
		// is exactly the baseline's.
		rep := Compare(base, c, profileStats(cols, 7000, seed, row))
		if len(rep.Violations) != 0 {
			t.Errorf("seed %d: violations on clean data: %+v", seed, rep.Violations)
		}
		if len(rep.Features) != len(cols) {
			t.Fatalf("seed %d: %d feature reports, want %d", seed, len(rep.Features), len(cols))
		}
		for _, f := range rep.Features {
			if f.Drifted {
				t.Errorf("seed %d: %s drifted on clean data: %+v", seed, f.Name, f)
			}
		}
	}
}

func TestMonitoringConfigSteersTheChecks(t *testing.T) {
	base := normalStats(20000, 1, 0)
	shifted := normalStats(5000, 2, 0.5)

	c := Suggest(base)
	c.MonitoringConfig.DistributionConstraints.PerformComparison = Disabled
	rep := Compare(base, c, shifted)
	if f := feature(t, rep, "x"); len(rep.Violations) != 0 || f.Drifted || f.KS < 0.1 {
		t.Errorf("perform_comparison Disabled: violations %v, feature %+v; want none, distances still computed", checkTypes(rep), f)
	}

	c = Suggest(base)
	c.MonitoringConfig.EvaluateConstraints = Disabled
	rep = Compare(base, c, profileStats([]Column{{Name: "other", Kind: Fractional}}, 10, 3, func(r *rand.Rand, p *Profile, _ int) {
		p.ObserveFloat(0, 1)
	}))
	if len(rep.Violations) != 0 {
		t.Errorf("evaluate_constraints Disabled: violations %v, want none", checkTypes(rep))
	}

	c = Suggest(base)
	c.MonitoringConfig.EmitMetrics = Disabled
	if f := feature(t, Compare(base, c, shifted), "x"); f.EmitMetrics {
		t.Error("emit_metrics Disabled must reach the feature report")
	}
	if f := feature(t, Compare(base, nil, shifted), "x"); !f.EmitMetrics {
		t.Error("emit_metrics is Enabled by default")
	}

	c = Suggest(base)
	threshold := 0.5
	c.Features[0].MonitoringConfigOverrides = &MonitoringConfigOverrides{
		DistributionConstraints: &DistributionConstraintsOverrides{ComparisonThreshold: &threshold},
	}
	rep = Compare(base, c, shifted)
	if f := feature(t, rep, "x"); len(rep.Violations) != 0 || f.Threshold != 0.5 || f.Drifted {
		t.Errorf("override comparison_threshold 0.5: violations %v, feature %+v", checkTypes(rep), f)
	}
}

func TestChiSquaredCategoricalDrift(t *testing.T) {
	values := []string{"a", "b", "c"}
	base := categoricalStats(20000, 1, values, []float64{0.5, 0.3, 0.2})
	c := Suggest(base)
	c.MonitoringConfig.DistributionConstraints.CategoricalDriftMethod = ChiSquared
	rep := Compare(base, c, categoricalStats(5000, 2, values, []float64{0.35, 0.35, 0.3}))
	f := feature(t, rep, "c")
	if f.Method != "ChiSquared" || !f.Drifted || f.Distance > 1e-6 {
		t.Errorf("ChiSquared on a shifted category mix: %+v, want drifted with a tiny p-value", f)
	}
	if len(rep.Violations) != 1 || !strings.HasPrefix(rep.Violations[0].Description, "Categorical p-value: ") ||
		!strings.HasSuffix(rep.Violations[0].Description, " is below categorical threshold: 0.1") {
		t.Errorf("violations %+v", rep.Violations)
	}
}

// A baseline from a tool that wrote only buckets: the comparison falls back
// to the buckets' CDF, says so, and still separates shift from noise.
func TestBaselineWithOnlyBuckets(t *testing.T) {
	base := normalStats(20000, 1, 0)
	base.Features[0].NumericalStatistics.Distribution.KLL.Sketch = nil
	rep := Compare(base, nil, normalStats(5000, 2, 0.5))
	if f := feature(t, rep, "x"); !f.BaselineFromBuckets || !f.Drifted {
		t.Errorf("shifted against buckets: %+v, want drifted, from buckets", f)
	}
	rep = Compare(base, nil, normalStats(5000, 3, 0))
	if f := feature(t, rep, "x"); !f.BaselineFromBuckets || f.Drifted || len(rep.Violations) != 0 {
		t.Errorf("re-sample against buckets: %+v, violations %v", f, checkTypes(rep))
	}
}

func TestTypeMatch(t *testing.T) {
	tc := &TypeCounts{Integral: 6, Fractional: 2, Boolean: 1, String: 1}
	for _, c := range []struct {
		want  Kind
		share float64
	}{{Integral, 0.6}, {Fractional, 0.8}, {Boolean, 0.1}, {String, 1}} {
		got, ok := typeMatch(c.want, &Feature{TypeCounts: tc})
		if !ok || math.Abs(got-c.share) > 1e-12 {
			t.Errorf("typeMatch(%s) = %g, %v; want %g", c.want, got, ok, c.share)
		}
	}
	if _, ok := typeMatch(Unknown, &Feature{TypeCounts: tc}); ok {
		t.Error("an Unknown baseline type has nothing to match")
	}
	// Without type counts: the period's inferred type, all or nothing.
	withType := func(k Kind) *Feature {
		return &Feature{InferredType: k, NumericalStatistics: &NumericalStatistics{Common: Common{NumPresent: 3}}}
	}
	if s, ok := typeMatch(Fractional, withType(Integral)); !ok || s != 1 {
		t.Errorf("Integral values match a Fractional baseline: got %g, %v", s, ok)
	}
	if s, ok := typeMatch(Integral, withType(Fractional)); !ok || s != 0 {
		t.Errorf("Fractional values do not match an Integral baseline: got %g, %v", s, ok)
	}
}

var updateGolden = flag.Bool("update-violations", false, "rewrite testdata/compare/constraint_violations.json")

// Every check at once, written as constraint_violations.json and compared
// with the committed file (go test -run Golden -update-violations rewrites
// it). Sizes stay below the sketch's first compaction, so the distances are
// the exact empirical ones whatever the sketch's internals.
func TestViolationsFileGolden(t *testing.T) {
	baseCols := []Column{{Name: "x", Kind: Fractional}, {Name: "y", Kind: Fractional}, {Name: "n", Kind: Unknown}, {Name: "c", Kind: String}}
	base := profileStats(baseCols, 1500, 1, func(r *rand.Rand, p *Profile, i int) {
		p.ObserveFloat(0, r.NormFloat64())
		p.ObserveFloat(1, r.NormFloat64())
		p.ObserveText(2, fmt.Sprint(r.IntN(10)))
		p.ObserveString(3, draw(r, []string{"a", "b", "c"}, []float64{0.5, 0.3, 0.2}))
	})
	curCols := []Column{{Name: "x", Kind: Fractional}, {Name: "n", Kind: Unknown}, {Name: "c", Kind: String}, {Name: "z", Kind: Fractional}}
	cur := profileStats(curCols, 600, 2, func(r *rand.Rand, p *Profile, i int) {
		p.ObserveFloat(0, 1+r.NormFloat64())
		if i%4 == 0 {
			p.ObserveText(1, "n/a")
		} else {
			p.ObserveText(1, fmt.Sprint(r.IntN(10)))
		}
		switch {
		case i%20 == 0:
			p.ObserveMissing(2)
		case i%25 == 1:
			p.ObserveString(2, "d")
		default:
			p.ObserveString(2, draw(r, []string{"a", "b", "c"}, []float64{0.5, 0.3, 0.2}))
		}
		p.ObserveFloat(3, r.Float64())
	})
	rep := Compare(base, nil, cur)
	var buf bytes.Buffer
	if err := rep.WriteViolations(&buf); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/compare/constraint_violations.json"
	if *updateGolden {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("constraint_violations.json differs from %s:\n%s", golden, buf.String())
	}
	seen := map[string]bool{}
	for _, v := range rep.Violations {
		seen[v.ConstraintCheckType] = true
	}
	for _, check := range []string{DataTypeCheck, CompletenessCheck, BaselineDriftCheck, MissingColumnCheck, ExtraColumnCheck, CategoricalValuesCheck} {
		if !seen[check] {
			t.Errorf("no %s among %v", check, checkTypes(rep))
		}
	}
	back, err := ReadViolations(bytes.NewReader(buf.Bytes()), golden)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Violations, rep.Violations) {
		t.Errorf("read back %+v, wrote %+v", back.Violations, rep.Violations)
	}
}

func TestWriteViolationsEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := (&Report{}).WriteViolations(&buf); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "{\n  \"violations\": []\n}\n" {
		t.Errorf("no violations written as %q", got)
	}
}

func TestReadViolations(t *testing.T) {
	// Model Monitor's own layout (from the SageMaker Python SDK's test data).
	mm := `{
  "violations" : [ {
    "feature_name" : "store_and_fwd_flag",
    "constraint_check_type" : "categorical_values_check",
    "description" : "Value: 0.009009009009009009 does not meet the constraint requirement! "
  } ]
}`
	v, err := ReadViolations(strings.NewReader(mm), "constraint_violations.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []Violation{{"store_and_fwd_flag", CategoricalValuesCheck, "Value: 0.009009009009009009 does not meet the constraint requirement! "}}
	if !reflect.DeepEqual(v.Violations, want) {
		t.Errorf("got %+v", v.Violations)
	}
	for _, tc := range []struct{ in, want string }{
		{`{}`, "v.json: violations: missing"},
		{`{"violations": [{"constraint_check_type": "x"}]}`, "violations[0]: feature_name: missing"},
		{`{"violations": [{"feature_name": "f"}]}`, `violations[0] "f": constraint_check_type: missing`},
		{"{\n\"violations\": [,]}", "v.json:2:16"},
	} {
		if _, err := ReadViolations(strings.NewReader(tc.in), "v.json"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}
