package monitor

import (
	"fmt"
	"math"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
)

// Report is what Compare finds: the violations, as constraint_violations.json
// lists them, and per feature the distances behind them.
type Report struct {
	Violations []Violation
	Features   []FeatureReport
}

// FeatureReport is one feature's comparison with its baseline. The
// distances' formulas are in distances.go.
type FeatureReport struct {
	Name string
	// Kind is the baseline's type (the constraints' inferred_type).
	Kind Kind
	// Distance is baseline_drift_check's number, what Model Monitor
	// publishes as feature_baseline_drift_<feature>: the L-infinity
	// distance of the CDFs (numerical) or of the category frequencies
	// (categorical), after the Robust correction when Method is Robust; the
	// chi-squared p-value when Method is ChiSquared.
	Distance float64
	// Threshold is what Distance was held against: comparison_threshold,
	// or categorical_comparison_threshold for a categorical feature.
	Threshold float64
	// Method is Simple or Robust (L-infinity), or ChiSquared.
	Method string
	// Drifted: baseline_drift_check failed (Distance above Threshold; for
	// ChiSquared, below it). False when perform_comparison is Disabled or
	// no distance could be computed (no present value on a side, or the
	// feature changed between numerical and categorical).
	Drifted bool
	// PSI and JensenShannon over the baseline's decile bins (numerical) or
	// the categories; Wasserstein-1 in the feature's units (0 for a
	// categorical feature); KS the L-infinity before any Robust correction.
	PSI, JensenShannon, Wasserstein, KS float64
	// Completeness and BaselineCompleteness are the shares of rows with a
	// value in the period and in the baseline (0 with no rows).
	Completeness, BaselineCompleteness float64
	// Present is the period's num_present.
	Present int64
	// EmitMetrics is the feature's emit_metrics (monitoring_config with its
	// overrides): false asks the metric publishers to leave it out.
	EmitMetrics bool
	// BaselineFromBuckets: the baseline had no KLL sketch data (only
	// buckets), so its CDF was taken from the buckets with each bucket's
	// count spread uniformly over it; the distances are then approximate
	// within a bucket's width.
	BaselineFromBuckets bool
}

// Compare runs Model Monitor's data quality checks of a period (current)
// against a baseline, under the constraints c (nil: Suggest(baseline)).
// The reference column set is c's features, or the baseline's when c lists
// none. The checks and the wording of their descriptions:
//
//   - missing_column_check, per reference feature absent from the period
//     (Model Monitor compares column counts; names are compared here, so a
//     renamed column is one missing and one extra even when the counts
//     agree):
//     "There are missing columns in current dataset. Number of columns in
//     current dataset: 3, Number of columns in baseline constraints: 4";
//   - extra_column_check, per period feature absent from the reference:
//     "There are extra columns in current dataset. Number of columns in
//     current dataset: 5, Number of columns in baseline constraints: 4";
//   - data_type_check, when the share of the period's present values that
//     have the baseline's type is below datatype_check_threshold:
//     "Data type match requirement is not met. Expected data type:
//     Integral, Expected match: 100.0%. Observed: Only 50.0% of data is
//     Integral.";
//   - completeness_check, when the period's completeness is below the
//     feature's completeness: "Data completeness requirement is not met.
//     Expected completeness: 100.0%. Observed: Only 95.0% of data is
//     complete.";
//   - baseline_drift_check, when perform_comparison is Enabled and the
//     distance is above the threshold: "Numerical distance: 0.27 exceeds
//     numerical threshold: 0.1", "Categorical distance: 0.3 exceeds
//     categorical threshold: 0.1", or for ChiSquared "Categorical p-value:
//     0.001 is below categorical threshold: 0.1";
//   - categorical_values_check, for a feature with a domain, when the share
//     of the period's present values in the domain is below
//     domain_content_threshold: "Categorical values requirement is not met.
//     Expected: 100.0% of values in the baseline domain. Observed: Only
//     99.0% of values are in the domain."
//
// The data_type_check and numerical baseline_drift_check wordings are the
// ones Model Monitor's container writes (seen in its published outputs),
// and "Number of columns in current dataset: N" too; the others are ours
// in the same style (older containers wrote Deequ's "Value: 0.0 does not
// meet the constraint requirement! " for every check). Numbers are
// formatted as Java formats doubles, as the container does.
//
// Type matching: a present value has the baseline's type when Deequ's
// DataType analyzer classifies it so, except that an Integral value also
// matches Fractional (a whole number is a valid value of a Fractional
// feature; Deequ's own hasDataType counts only Fractional-looking values)
// and every value matches String. Without the period's type_counts (a
// statistics.json from elsewhere), the period's inferred_type is matched
// instead: all or nothing.
//
// With evaluate_constraints Disabled (globally or in a feature's
// overrides) no violation is written; distances are reported regardless.
// is_non_negative is not checked: Model Monitor has no check type for it.
func Compare(baseline *Statistics, c *Constraints, current *Statistics) *Report {
	if baseline == nil {
		baseline = &Statistics{}
	}
	if c == nil {
		c = Suggest(baseline)
	}
	ref := c.Features
	if len(ref) == 0 {
		ref = Suggest(baseline).Features
	}
	base := indexFeatures(baseline)
	cur := indexFeatures(current)
	refNames := make(map[string]bool, len(ref))
	for _, f := range ref {
		refNames[f.Name] = true
	}
	nCur := 0
	if current != nil {
		nCur = len(current.Features)
	}
	rep := &Report{Violations: []Violation{}}
	columns := fmt.Sprintf("Number of columns in current dataset: %d, Number of columns in baseline constraints: %d", nCur, len(ref))
	for _, f := range ref {
		if cur[f.Name] == nil && c.MonitoringConfig.Apply(f.MonitoringConfigOverrides).EvaluateConstraints == Enabled {
			rep.add(f.Name, MissingColumnCheck, "There are missing columns in current dataset. "+columns)
		}
	}
	if current != nil && c.MonitoringConfig.EvaluateConstraints == Enabled {
		for _, f := range current.Features {
			if !refNames[f.Name] {
				rep.add(f.Name, ExtraColumnCheck, "There are extra columns in current dataset. "+columns)
			}
		}
	}
	for i := range ref {
		cf := &ref[i]
		if cur[cf.Name] == nil {
			continue
		}
		rep.compareFeature(cf, c.MonitoringConfig.Apply(cf.MonitoringConfigOverrides), base[cf.Name], cur[cf.Name])
	}
	return rep
}

func indexFeatures(s *Statistics) map[string]*Feature {
	if s == nil {
		return nil
	}
	m := make(map[string]*Feature, len(s.Features))
	for i := range s.Features {
		m[s.Features[i].Name] = &s.Features[i]
	}
	return m
}

func (r *Report) add(feature, check, description string) {
	r.Violations = append(r.Violations, Violation{FeatureName: feature, ConstraintCheckType: check, Description: description})
}

// compareFeature runs the per-feature checks; b may be nil (a constraints
// file naming a feature the baseline statistics lack).
func (r *Report) compareFeature(cf *ConstraintFeature, cfg MonitoringConfig, b, f *Feature) {
	evaluate := cfg.EvaluateConstraints == Enabled
	common := featureCommon(f)
	fr := FeatureReport{Name: cf.Name, Kind: cf.InferredType, Present: common.NumPresent, Completeness: completeness(common),
		EmitMetrics: cfg.EmitMetrics == Enabled}
	if b != nil {
		fr.BaselineCompleteness = completeness(featureCommon(b))
	}

	if share, ok := typeMatch(cf.InferredType, f); ok && evaluate && share < cfg.DatatypeCheckThreshold {
		r.add(cf.Name, DataTypeCheck, fmt.Sprintf(
			"Data type match requirement is not met. Expected data type: %s, Expected match: %s%%. Observed: Only %s%% of data is %s.",
			cf.InferredType, mmjson.JavaDouble(100*cfg.DatatypeCheckThreshold), mmjson.JavaDouble(100*share), cf.InferredType))
	}

	if want := cf.Completeness; want != nil && evaluate && common.NumPresent+common.NumMissing > 0 && fr.Completeness < *want {
		r.add(cf.Name, CompletenessCheck, fmt.Sprintf(
			"Data completeness requirement is not met. Expected completeness: %s%%. Observed: Only %s%% of data is complete.",
			mmjson.JavaDouble(100**want), mmjson.JavaDouble(100*fr.Completeness)))
	}

	if b != nil {
		r.drift(&fr, cfg, b, f, evaluate)
	}

	if sc := cf.StringConstraints; sc != nil && len(sc.Domains) > 0 && evaluate {
		if share, ok := domainShare(sc.Domains, f); ok && share < cfg.DomainContentThreshold {
			r.add(cf.Name, CategoricalValuesCheck, fmt.Sprintf(
				"Categorical values requirement is not met. Expected: %s%% of values in the baseline domain. Observed: Only %s%% of values are in the domain.",
				mmjson.JavaDouble(100*cfg.DomainContentThreshold), mmjson.JavaDouble(100*share)))
		}
	}
	r.Features = append(r.Features, fr)
}

// drift fills the distances and runs baseline_drift_check.
func (r *Report) drift(fr *FeatureReport, cfg MonitoringConfig, b, f *Feature, evaluate bool) {
	dc := cfg.DistributionConstraints
	fr.Method = string(dc.ComparisonMethod)
	var kind, numberWord string
	switch {
	case b.InferredType.Numeric() && f.InferredType.Numeric():
		bc, fromBuckets, ok1 := numericCDF(b)
		cc, _, ok2 := numericCDF(f)
		fr.Threshold = dc.ComparisonThreshold
		if !ok1 || !ok2 {
			return
		}
		fr.BaselineFromBuckets = fromBuckets
		d := numericalDistances(bc, cc)
		fr.KS, fr.PSI, fr.JensenShannon, fr.Wasserstein = d.linfSimple, d.psi, d.js, d.wasserstein
		fr.Distance = d.linfSimple
		if dc.ComparisonMethod == Robust {
			fr.Distance = robust(d.linfSimple, bc.total, cc.total)
		}
		kind, numberWord = "Numerical", "numerical"
	case !b.InferredType.Numeric() && !f.InferredType.Numeric():
		bm, cm := categoryCounts(b), categoryCounts(f)
		fr.Threshold = dc.CategoricalComparisonThreshold
		d, n, m := categoricalDistances(bm, cm)
		if !(n > 0) || !(m > 0) {
			return
		}
		fr.KS, fr.PSI, fr.JensenShannon = d.linfSimple, d.psi, d.js
		if dc.CategoricalDriftMethod == ChiSquared {
			fr.Method = string(ChiSquared)
			fr.Distance = chiSquaredPValue(bm, cm)
			fr.Drifted = dc.PerformComparison == Enabled && fr.Distance < fr.Threshold
			if fr.Drifted && evaluate {
				r.add(fr.Name, BaselineDriftCheck, fmt.Sprintf("Categorical p-value: %s is below categorical threshold: %s",
					mmjson.JavaDouble(fr.Distance), mmjson.JavaDouble(fr.Threshold)))
			}
			return
		}
		fr.Distance = d.linfSimple
		if dc.ComparisonMethod == Robust {
			fr.Distance = robust(d.linfSimple, n, m)
		}
		kind, numberWord = "Categorical", "categorical"
	default:
		return // numerical on one side, categorical on the other: data_type_check's case
	}
	fr.Drifted = dc.PerformComparison == Enabled && fr.Distance > fr.Threshold
	if fr.Drifted && evaluate {
		r.add(fr.Name, BaselineDriftCheck, fmt.Sprintf("%s distance: %s exceeds %s threshold: %s",
			kind, mmjson.JavaDouble(fr.Distance), numberWord, mmjson.JavaDouble(fr.Threshold)))
	}
}

func completeness(c Common) float64 {
	if total := c.NumPresent + c.NumMissing; total > 0 {
		return float64(c.NumPresent) / float64(total)
	}
	return 0
}

// numericCDF is the feature's CDF from its KLL sketch, or from its buckets
// when the sketch is absent or empty (fromBuckets). ok is false when the
// feature has no present value or no distribution at all.
func numericCDF(f *Feature) (c cdf, fromBuckets, ok bool) {
	n := f.NumericalStatistics
	if n == nil || n.Common.NumPresent == 0 || n.Distribution.KLL == nil {
		return cdf{}, false, false
	}
	kd := n.Distribution.KLL
	if kd.Sketch != nil {
		if k, err := KLLFromSketch(*kd.Sketch); err == nil && k.Count() > 0 {
			var vs, ws []float64
			k.ForEach(func(v, w float64) {
				vs = append(vs, v)
				ws = append(ws, w)
			})
			if c = stepCDF(vs, ws); len(c.pts) > 0 {
				return c, false, true
			}
		}
	}
	lo := make([]float64, len(kd.Buckets))
	hi := make([]float64, len(kd.Buckets))
	cnt := make([]float64, len(kd.Buckets))
	for i, b := range kd.Buckets {
		lo[i], hi[i], cnt[i] = b.LowerBound, b.UpperBound, b.Count
	}
	c = bucketCDF(lo, hi, cnt)
	return c, true, len(c.pts) > 0
}

// categoryCounts is the feature's categorical buckets as a map.
func categoryCounts(f *Feature) map[string]float64 {
	s := f.StringStatistics
	if s == nil || s.Distribution.Categorical == nil {
		return nil
	}
	m := make(map[string]float64, len(s.Distribution.Categorical.Buckets))
	for _, b := range s.Distribution.Categorical.Buckets {
		if b.Count > 0 {
			m[b.Value] += float64(b.Count)
		}
	}
	return m
}

// typeMatch is the share of the period's present values that have the type
// want (see Compare). ok is false when there is nothing to judge: want is
// Unknown, or the period has no present value.
func typeMatch(want Kind, f *Feature) (share float64, ok bool) {
	if want == Unknown || !want.valid() {
		return 0, false
	}
	if tc := f.TypeCounts; tc != nil {
		total := tc.Integral + tc.Fractional + tc.Boolean + tc.String
		if total == 0 {
			return 0, false
		}
		var match int64
		switch want {
		case Integral:
			match = tc.Integral
		case Fractional:
			match = tc.Integral + tc.Fractional
		case Boolean:
			match = tc.Boolean
		case String:
			match = total
		}
		return float64(match) / float64(total), true
	}
	if featureCommon(f).NumPresent == 0 || f.InferredType == Unknown {
		return 0, false
	}
	got := f.InferredType
	if got == want || want == String || (want == Fractional && got == Integral) {
		return 1, true
	}
	return 0, true
}

// domainShare is the share of the period's counted values that are in the
// domain. ok is false without categorical buckets or with none counted.
func domainShare(domain []string, f *Feature) (share float64, ok bool) {
	counts := categoryCounts(f)
	if len(counts) == 0 {
		return 0, false
	}
	in := make(map[string]bool, len(domain))
	for _, d := range domain {
		in[d] = true
	}
	var known, total float64
	for v, n := range counts {
		total += n
		if in[v] {
			known += n
		}
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return 0, false
	}
	return known / total, true
}
