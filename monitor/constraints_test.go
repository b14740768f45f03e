package monitor

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// testdata/compare/constraints_modelmonitor.json is laid out as Model
// Monitor's container writes constraints.json (Jackson's " : " and the
// field order of its suggested baselines), with a feature override.
func TestReadConstraintsModelMonitorLayout(t *testing.T) {
	f, err := os.Open("testdata/compare/constraints_modelmonitor.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ReadConstraints(f, "constraints.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.MonitoringConfig != DefaultMonitoringConfig() {
		t.Errorf("monitoring_config %+v, want the defaults %+v", c.MonitoringConfig, DefaultMonitoringConfig())
	}
	if len(c.Features) != 3 {
		t.Fatalf("%d features, want 3", len(c.Features))
	}
	pc := c.Features[1]
	if pc.Name != "passenger_count" || pc.InferredType != Integral || *pc.Completeness != 0.9975 || !pc.NumConstraints.IsNonNegative {
		t.Errorf("passenger_count: %+v", pc)
	}
	eff := c.MonitoringConfig.Apply(pc.MonitoringConfigOverrides).DistributionConstraints
	if eff.ComparisonThreshold != 0.2 || eff.CategoricalComparisonThreshold != 0.2 || eff.ComparisonMethod != Robust {
		t.Errorf("passenger_count's effective distribution_constraints %+v, want thresholds 0.2, Robust", eff)
	}
	if d := c.Features[2].StringConstraints; d == nil || !slices.Equal(d.Domains, []string{"N", "Y"}) {
		t.Errorf("store_and_fwd_flag domains %+v", d)
	}
}

func TestReadConstraintsFillsDefaults(t *testing.T) {
	c, err := ReadConstraints(strings.NewReader(`{"features": [{"name": "a", "inferred_type": "Integral"}]}`), "c.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.MonitoringConfig != DefaultMonitoringConfig() {
		t.Errorf("monitoring_config %+v, want the defaults", c.MonitoringConfig)
	}
	if c.Features[0].Completeness != nil {
		t.Error("an absent completeness must stay absent (not checked), not read as 0")
	}
	// categorical_comparison_threshold defaults to comparison_threshold.
	c, err = ReadConstraints(strings.NewReader(`{"monitoring_config": {"datatype_check_threshold": 0.9,
		"distribution_constraints": {"comparison_threshold": 0.3, "comparison_method": "Simple"}}}`), "c.json")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultMonitoringConfig()
	want.DatatypeCheckThreshold = 0.9
	want.DistributionConstraints.ComparisonThreshold = 0.3
	want.DistributionConstraints.CategoricalComparisonThreshold = 0.3
	want.DistributionConstraints.ComparisonMethod = Simple
	if c.MonitoringConfig != want {
		t.Errorf("monitoring_config %+v, want %+v", c.MonitoringConfig, want)
	}
}

func TestReadConstraintsErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // substrings of the error
	}{
		{`{"features": [`, []string{"c.json:1:15", "decode constraints"}},
		{"{\n  \"features\": 7\n}", []string{"c.json:2:", "features"}},
		{`{} {}`, []string{"c.json:1:4", "trailing data"}},
		{`{"features": [{"inferred_type": "String"}]}`, []string{"c.json", "features[0]", "name: empty"}},
		{`{"features": [{"name": "a", "inferred_type": "String"}, {"name": "a", "inferred_type": "String"}]}`,
			[]string{"features[1] \"a\"", "already used by features[0]"}},
		{`{"features": [{"name": "a", "inferred_type": "Text"}]}`, []string{"features[0] \"a\"", "inferred_type", "Text"}},
		{`{"features": [{"name": "a", "inferred_type": "String", "completeness": 1.5}]}`, []string{"features[0] \"a\"", "completeness", "1.5"}},
		{`{"features": [{"name": "a", "inferred_type": "String", "monitoringConfigOverrides": {"distribution_constraints": {"comparison_method": "Fancy"}}}]}`,
			[]string{"features[0] \"a\": monitoringConfigOverrides.distribution_constraints.comparison_method", "Fancy"}},
		{`{"monitoring_config": {"evaluate_constraints": "On"}}`, []string{"monitoring_config.evaluate_constraints", "On"}},
		{`{"monitoring_config": {"domain_content_threshold": -0.1}}`, []string{"monitoring_config.domain_content_threshold"}},
		{`{"monitoring_config": {"distribution_constraints": {"comparison_threshold": -1}}}`, []string{"comparison_threshold"}},
		{`{"monitoring_config": {"distribution_constraints": {"categorical_drift_method": "KL"}}}`, []string{"categorical_drift_method", "KL"}},
		{`{"version": "zero"}`, []string{"c.json:1:", "version"}},
	} {
		_, err := ReadConstraints(strings.NewReader(tc.in), "c.json")
		if err == nil {
			t.Errorf("%s: accepted", tc.in)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.in, err, w)
			}
		}
	}
}

// suggestStats has one column of each situation Suggest distinguishes.
func suggestStats() *Statistics {
	cols := []Column{
		{Name: "amount", Kind: Fractional}, // never negative
		{Name: "delta", Kind: Fractional},  // negative values
		{Name: "site", Kind: String},       // few values: a domain
		{Name: "id", Kind: String},         // one-off values: no domain
		{Name: "many", Kind: String},       // 200 values, each 10 times: too many for a domain
		{Name: "sparse", Kind: Integral},   // a quarter missing
		{Name: "flag", Kind: Boolean},      // typed: no domain
	}
	return profileStats(cols, 2000, 1, func(r *rand.Rand, p *Profile, i int) {
		p.ObserveFloat(0, r.ExpFloat64())
		p.ObserveFloat(1, r.NormFloat64())
		p.ObserveString(2, draw(r, []string{"north", "south", "east"}, []float64{0.6, 0.3, 0.1}))
		p.ObserveString(3, fmt.Sprintf("id-%d", i))
		p.ObserveString(4, fmt.Sprintf("v%d", i%200))
		if i%4 == 0 {
			p.ObserveMissing(5)
		} else {
			p.ObserveInt(5, int64(r.IntN(10)))
		}
		p.ObserveBool(6, i%2 == 0)
	})
}

func TestSuggest(t *testing.T) {
	c := Suggest(suggestStats())
	if c.MonitoringConfig != DefaultMonitoringConfig() {
		t.Errorf("monitoring_config %+v", c.MonitoringConfig)
	}
	byName := map[string]ConstraintFeature{}
	for _, f := range c.Features {
		byName[f.Name] = f
	}
	if f := byName["amount"]; f.NumConstraints == nil || !f.NumConstraints.IsNonNegative || *f.Completeness != 1 || f.InferredType != Fractional {
		t.Errorf("amount: %+v", f)
	}
	if f := byName["delta"]; f.NumConstraints == nil || f.NumConstraints.IsNonNegative {
		t.Errorf("delta: %+v, want is_non_negative false", f)
	}
	if f := byName["site"]; f.StringConstraints == nil || !slices.Equal(f.StringConstraints.Domains, []string{"north", "south", "east"}) {
		t.Errorf("site: %+v, want the domain by frequency", f.StringConstraints)
	}
	for _, name := range []string{"id", "many", "flag"} {
		if f := byName[name]; f.StringConstraints != nil || f.NumConstraints != nil {
			t.Errorf("%s: %+v, want no domain", name, f)
		}
	}
	if f := byName["sparse"]; *f.Completeness != 0.75 || !f.NumConstraints.IsNonNegative {
		t.Errorf("sparse: completeness %v, %+v", *f.Completeness, f.NumConstraints)
	}
}

func TestSuggestNoDomainFromTruncatedBuckets(t *testing.T) {
	// Buckets that do not cover num_present (values beyond the tracked
	// categories) cannot be the whole domain.
	s := &Statistics{Features: []Feature{{Name: "c", InferredType: String, StringStatistics: &StringStatistics{
		Common:        Common{NumPresent: 100},
		DistinctCount: 3,
		Distribution: StringDistribution{Categorical: &CategoricalDistribution{Buckets: []CategoricalBucket{
			{Value: "a", Count: 60}, {Value: "b", Count: 30},
		}}},
	}}}}
	if d := Suggest(s).Features[0].StringConstraints; d != nil {
		t.Errorf("domains %v from buckets covering 90 of 100 values", d.Domains)
	}
}

func TestConstraintsRoundTrip(t *testing.T) {
	c := Suggest(suggestStats())
	threshold, method := 0.25, ChiSquared
	c.Features[2].MonitoringConfigOverrides = &MonitoringConfigOverrides{
		DistributionConstraints: &DistributionConstraintsOverrides{
			CategoricalComparisonThreshold: &threshold,
			CategoricalDriftMethod:         &method,
		},
	}
	var buf bytes.Buffer
	if err := c.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadConstraints(bytes.NewReader(buf.Bytes()), "constraints.json")
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip changed the constraints:\n got %+v\nwant %+v", got, c)
	}
	for _, field := range []string{`"monitoringConfigOverrides"`, `"is_non_negative": true`, `"domains": [`, `"comparison_method": "Robust"`} {
		if !bytes.Contains(buf.Bytes(), []byte(field)) {
			t.Errorf("written constraints lack %s:\n%s", field, buf.String())
		}
	}
}

func TestWriteJSONRefusesInvalidConstraints(t *testing.T) {
	c := Suggest(suggestStats())
	c.MonitoringConfig.DistributionConstraints.ComparisonMethod = "Fancy"
	if err := c.WriteJSON(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "comparison_method") {
		t.Errorf("WriteJSON of an invalid method: %v", err)
	}
}

// A feature whose comparison is disabled never drifts, while the others
// still do; an unknown name is refused.
func TestDisableComparison(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cols := []Column{{Name: "a", Kind: Fractional}, {Name: "b", Kind: Fractional}}
	base, cur := NewProfile(cols, Options{}), NewProfile(cols, Options{})
	for range 5000 {
		base.ObserveFloat(0, r.NormFloat64())
		base.ObserveFloat(1, r.NormFloat64())
		cur.ObserveFloat(0, r.NormFloat64()+2)
		cur.ObserveFloat(1, r.NormFloat64()+2)
	}
	base.AddRows(5000)
	cur.AddRows(5000)
	bs := base.Statistics()
	c := Suggest(bs)
	if err := c.DisableComparison("a"); err != nil {
		t.Fatal(err)
	}
	if err := c.DisableComparison("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown feature: %v, want an error naming it", err)
	}
	var drifted []string
	for _, v := range Compare(bs, c, cur.Statistics()).Violations {
		if v.ConstraintCheckType == BaselineDriftCheck {
			drifted = append(drifted, v.FeatureName)
		}
	}
	if len(drifted) != 1 || drifted[0] != "b" {
		t.Errorf("drift violations for %v, want b only", drifted)
	}
}
