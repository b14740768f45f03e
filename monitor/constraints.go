package monitor

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
)

// Constraints is Model Monitor's constraints.json, with the field names of
// the AWS "Schema for Constraints (constraints.json file)":
//
//	{"version": 0,
//	 "features": [{"name", "inferred_type", "completeness",
//	               "num_constraints": {"is_non_negative"},
//	               "string_constraints": {"domains": [...]},
//	               "monitoringConfigOverrides": {...}}],
//	 "monitoring_config": {"evaluate_constraints", "emit_metrics",
//	     "datatype_check_threshold", "domain_content_threshold",
//	     "distribution_constraints": {"perform_comparison",
//	         "comparison_threshold", "comparison_method",
//	         "categorical_comparison_threshold", "categorical_drift_method"}}}
//
// A field missing from a file read by ReadConstraints takes its default
// (DefaultMonitoringConfig); unknown fields are ignored, as Model Monitor's
// own readers do with the fields its older containers wrote.
type Constraints struct {
	Version          float64             `json:"version"`
	Features         []ConstraintFeature `json:"features"`
	MonitoringConfig MonitoringConfig    `json:"monitoring_config"`
}

// ConstraintFeature is one feature's constraints.
type ConstraintFeature struct {
	Name         string `json:"name"`
	InferredType Kind   `json:"inferred_type"`
	// Completeness is the share of rows, in [0, 1], that must have a value;
	// completeness_check flags a period below it. Absent: not checked.
	Completeness *float64 `json:"completeness,omitempty"`
	// NumConstraints is written for numerical features. Model Monitor's
	// violation file has no check type for is_non_negative, so it is
	// carried for compatibility and checked by nothing here.
	NumConstraints *NumConstraints `json:"num_constraints,omitempty"`
	// StringConstraints holds the domain categorical_values_check uses.
	StringConstraints *StringConstraints `json:"string_constraints,omitempty"`
	// MonitoringConfigOverrides replaces, for this feature only, the fields
	// of monitoring_config it sets.
	MonitoringConfigOverrides *MonitoringConfigOverrides `json:"monitoringConfigOverrides,omitempty"`
}

// NumConstraints is num_constraints.
type NumConstraints struct {
	IsNonNegative bool `json:"is_non_negative"`
}

// StringConstraints is string_constraints: the values seen in the baseline
// of a feature of small cardinality.
type StringConstraints struct {
	Domains []string `json:"domains"`
}

// Toggle is Model Monitor's "Enabled" or "Disabled".
type Toggle string

// The toggle values.
const (
	Enabled  Toggle = "Enabled"
	Disabled Toggle = "Disabled"
)

// ComparisonMethod is distribution_constraints.comparison_method.
type ComparisonMethod string

// The comparison methods, as the AWS table describes them: "linf_simple is
// based on the maximum absolute difference between the cumulative
// distribution functions of two distributions. Calculating linf_robust is
// based on linf_simple, but is used when there are not enough samples. The
// linf_robust formula is based on the Two-sample Kolmogorov-Smirnov test."
// The formulas are in distances.go.
const (
	Simple ComparisonMethod = "Simple"
	Robust ComparisonMethod = "Robust"
)

// CategoricalDriftMethod is distribution_constraints.categorical_drift_method.
type CategoricalDriftMethod string

// The categorical drift methods. The AWS table: "If you don't set this
// parameter, the K-S (LInfinity) test is used."
const (
	LInfinity  CategoricalDriftMethod = "LInfinity"
	ChiSquared CategoricalDriftMethod = "ChiSquared"
)

// MonitoringConfig is monitoring_config, every field resolved.
type MonitoringConfig struct {
	// EvaluateConstraints Disabled: Compare writes no violation (the
	// distances are still computed and reported).
	EvaluateConstraints Toggle `json:"evaluate_constraints"`
	// EmitMetrics Disabled: the metric publishers leave the features out.
	EmitMetrics Toggle `json:"emit_metrics"`
	// DatatypeCheckThreshold is the share of a period's present values, in
	// [0, 1], that must have the baseline's type; below it data_type_check
	// flags the feature.
	DatatypeCheckThreshold float64 `json:"datatype_check_threshold"`
	// DomainContentThreshold is the share of a period's present values, in
	// [0, 1], that must be in the baseline's domain; below it
	// categorical_values_check flags the feature.
	DomainContentThreshold  float64                 `json:"domain_content_threshold"`
	DistributionConstraints DistributionConstraints `json:"distribution_constraints"`
}

// DistributionConstraints is monitoring_config.distribution_constraints.
type DistributionConstraints struct {
	// PerformComparison Disabled: no baseline_drift_check.
	PerformComparison Toggle `json:"perform_comparison"`
	// ComparisonThreshold: a numerical feature drifted when its distance is
	// above it.
	ComparisonThreshold float64          `json:"comparison_threshold"`
	ComparisonMethod    ComparisonMethod `json:"comparison_method"`
	// CategoricalComparisonThreshold: a categorical feature drifted when its
	// L-infinity distance is above it, or its ChiSquared p-value below it.
	// Read from a file that omits it, it is comparison_threshold (the AWS
	// table: "Default: The value assigned to the comparison_threshold
	// parameter").
	CategoricalComparisonThreshold float64                `json:"categorical_comparison_threshold"`
	CategoricalDriftMethod         CategoricalDriftMethod `json:"categorical_drift_method"`
}

// DefaultMonitoringConfig is the monitoring_config Model Monitor's
// baselining job writes, and what fields missing from a constraints.json
// read as.
//
// The sources disagree on two thresholds. The AWS table lists 0.1 for
// datatype_check_threshold and domain_content_threshold; the older version
// of the same page, the analyzer container's own defaults
// (DataQualityMonitoringConfig: 1.0 and 1.0) and the violations the
// container writes ("Expected match: 100.0%" under the default
// constraints) say 1.0. Both thresholds are the share of values that must
// conform, so 1.0 (every value must have the baseline's type and be in its
// domain) is what a suggested baseline enforces; 0.1 would let 90% of a
// period be the wrong type unflagged. comparison_method: the table gives no
// default; the container's is Robust. The other defaults are the table's:
// Enabled, Enabled, Enabled, 0.1, 0.1 (= comparison_threshold), LInfinity.
func DefaultMonitoringConfig() MonitoringConfig {
	return MonitoringConfig{
		EvaluateConstraints:    Enabled,
		EmitMetrics:            Enabled,
		DatatypeCheckThreshold: 1.0,
		DomainContentThreshold: 1.0,
		DistributionConstraints: DistributionConstraints{
			PerformComparison:              Enabled,
			ComparisonThreshold:            0.1,
			ComparisonMethod:               Robust,
			CategoricalComparisonThreshold: 0.1,
			CategoricalDriftMethod:         LInfinity,
		},
	}
}

// MonitoringConfigOverrides is monitoring_config with every field optional:
// a feature's monitoringConfigOverrides, and the shape monitoring_config is
// read in before defaults fill what a file omits.
type MonitoringConfigOverrides struct {
	EvaluateConstraints     *Toggle                           `json:"evaluate_constraints,omitempty"`
	EmitMetrics             *Toggle                           `json:"emit_metrics,omitempty"`
	DatatypeCheckThreshold  *float64                          `json:"datatype_check_threshold,omitempty"`
	DomainContentThreshold  *float64                          `json:"domain_content_threshold,omitempty"`
	DistributionConstraints *DistributionConstraintsOverrides `json:"distribution_constraints,omitempty"`
}

// DistributionConstraintsOverrides is distribution_constraints with every
// field optional.
type DistributionConstraintsOverrides struct {
	PerformComparison              *Toggle                 `json:"perform_comparison,omitempty"`
	ComparisonThreshold            *float64                `json:"comparison_threshold,omitempty"`
	ComparisonMethod               *ComparisonMethod       `json:"comparison_method,omitempty"`
	CategoricalComparisonThreshold *float64                `json:"categorical_comparison_threshold,omitempty"`
	CategoricalDriftMethod         *CategoricalDriftMethod `json:"categorical_drift_method,omitempty"`
}

// Apply returns c with the fields o sets replaced. A comparison_threshold
// set without a categorical_comparison_threshold sets both, as in a file.
func (c MonitoringConfig) Apply(o *MonitoringConfigOverrides) MonitoringConfig {
	if o == nil {
		return c
	}
	set(&c.EvaluateConstraints, o.EvaluateConstraints)
	set(&c.EmitMetrics, o.EmitMetrics)
	set(&c.DatatypeCheckThreshold, o.DatatypeCheckThreshold)
	set(&c.DomainContentThreshold, o.DomainContentThreshold)
	if d := o.DistributionConstraints; d != nil {
		dc := &c.DistributionConstraints
		set(&dc.PerformComparison, d.PerformComparison)
		set(&dc.ComparisonThreshold, d.ComparisonThreshold)
		set(&dc.ComparisonMethod, d.ComparisonMethod)
		set(&dc.CategoricalComparisonThreshold, d.ComparisonThreshold)
		set(&dc.CategoricalComparisonThreshold, d.CategoricalComparisonThreshold)
		set(&dc.CategoricalDriftMethod, d.CategoricalDriftMethod)
	}
	return c
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// maxConstraintsBytes bounds what ReadConstraints reads: a constraints.json
// of ten thousand features with domains of 120 values is a few MiB.
const maxConstraintsBytes = 64 << 20

// ReadConstraints decodes and validates a constraints.json. name is the
// file's name; errors name it with the line and column of a syntax or type
// error, or with the feature's index and name and the field at fault.
func ReadConstraints(r io.Reader, name string) (*Constraints, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConstraintsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read constraints: %w", name, err)
	}
	if len(data) > maxConstraintsBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxConstraintsBytes)
	}
	var raw struct {
		Version          *float64                   `json:"version"`
		Features         []ConstraintFeature        `json:"features"`
		MonitoringConfig *MonitoringConfigOverrides `json:"monitoring_config"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s%s: decode constraints: %w", name, mmjson.Position(data, err), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s%s: trailing data after the constraints object", name, mmjson.LineCol(data, dec.InputOffset()))
	}
	c := &Constraints{Features: raw.Features, MonitoringConfig: DefaultMonitoringConfig().Apply(raw.MonitoringConfig)}
	if raw.Version != nil {
		c.Version = *raw.Version
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// Validate checks what Compare relies on: unique non-empty feature names,
// known types and toggles and methods, completeness and the share
// thresholds in [0, 1], finite non-negative comparison thresholds, and
// overrides that obey the same rules.
func (c *Constraints) Validate() error {
	if !finite(c.Version) {
		return errors.New("version: not a finite number")
	}
	if err := c.MonitoringConfig.validate("monitoring_config"); err != nil {
		return err
	}
	seen := make(map[string]int, len(c.Features))
	for i := range c.Features {
		f := &c.Features[i]
		at := fmt.Sprintf("features[%d] %q", i, f.Name)
		if f.Name == "" {
			return fmt.Errorf("%s: name: empty", at)
		}
		if j, dup := seen[f.Name]; dup {
			return fmt.Errorf("%s: name already used by features[%d]", at, j)
		}
		seen[f.Name] = i
		if !f.InferredType.valid() {
			return fmt.Errorf("%s: inferred_type: %q is not Integral, Fractional, String, Boolean or Unknown", at, f.InferredType)
		}
		if p := f.Completeness; p != nil && !(*p >= 0 && *p <= 1) {
			return fmt.Errorf("%s: completeness: %v is not in [0, 1]", at, *p)
		}
		if err := validateOverrides(at+": monitoringConfigOverrides", f.MonitoringConfigOverrides); err != nil {
			return err
		}
	}
	return nil
}

// validateOverrides checks the values an override sets. Each field is
// valid or not on its own, so a valid override of a valid monitoring_config
// resolves to a valid one.
func validateOverrides(at string, o *MonitoringConfigOverrides) error {
	if o == nil {
		return nil
	}
	return DefaultMonitoringConfig().Apply(o).validate(at)
}

func (c MonitoringConfig) validate(at string) error {
	d := c.DistributionConstraints
	for _, t := range []struct {
		field string
		v     Toggle
	}{
		{"evaluate_constraints", c.EvaluateConstraints},
		{"emit_metrics", c.EmitMetrics},
		{"distribution_constraints.perform_comparison", d.PerformComparison},
	} {
		if t.v != Enabled && t.v != Disabled {
			return fmt.Errorf("%s.%s: %q is not Enabled or Disabled", at, t.field, t.v)
		}
	}
	for _, s := range []struct {
		field string
		v     float64
	}{
		{"datatype_check_threshold", c.DatatypeCheckThreshold},
		{"domain_content_threshold", c.DomainContentThreshold},
	} {
		if !(s.v >= 0 && s.v <= 1) {
			return fmt.Errorf("%s.%s: %v is not a share in [0, 1]", at, s.field, s.v)
		}
	}
	for _, s := range []struct {
		field string
		v     float64
	}{
		{"distribution_constraints.comparison_threshold", d.ComparisonThreshold},
		{"distribution_constraints.categorical_comparison_threshold", d.CategoricalComparisonThreshold},
	} {
		if !(s.v >= 0) || math.IsInf(s.v, 1) {
			return fmt.Errorf("%s.%s: %v is not a finite number >= 0", at, s.field, s.v)
		}
	}
	if d.ComparisonMethod != Simple && d.ComparisonMethod != Robust {
		return fmt.Errorf("%s.distribution_constraints.comparison_method: %q is not Simple or Robust", at, d.ComparisonMethod)
	}
	if d.CategoricalDriftMethod != LInfinity && d.CategoricalDriftMethod != ChiSquared {
		return fmt.Errorf("%s.distribution_constraints.categorical_drift_method: %q is not LInfinity or ChiSquared", at, d.CategoricalDriftMethod)
	}
	return nil
}

// WriteJSON writes the constraints as indented JSON (two spaces), features
// in order, so equal constraints give equal bytes. It refuses constraints
// Validate refuses.
func (c *Constraints) WriteJSON(w io.Writer) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write constraints: %w", err)
	}
	out := *c
	if out.Features == nil {
		out.Features = []ConstraintFeature{}
	}
	return mmjson.Write(w, "constraints", &out)
}

// The domain rule Suggest applies, Deequ's CategoricalRangeRule (what
// Model Monitor's schema calls "observed values for small cardinality"):
// Deequ's profiler keeps a value histogram only for columns of at most
// DEFAULT_CARDINALITY_THRESHOLD = 120 distinct values, and the rule applies
// when at most 10% of those distinct values occur exactly once (a column of
// mostly one-off values is an identifier, not a category).
const (
	suggestDomainMaxDistinct  = 120
	suggestDomainMaxSingleton = 0.1
)

// Suggest returns the constraints Model Monitor's baselining job suggests
// for a baseline:
//   - inferred_type: the baseline's;
//   - completeness: the observed share of present values,
//     num_present / (num_present + num_missing) (the schema: "denotes
//     observed non-null value percentage"); absent for a feature with no
//     rows;
//   - num_constraints.is_non_negative for numerical features with a present
//     value: min >= 0 (Deequ's NonNegativeNumbersRule);
//   - string_constraints.domains for String features whose categorical
//     buckets hold every value seen (their counts add up to num_present), at
//     most suggestDomainMaxDistinct of them, at most
//     suggestDomainMaxSingleton of them seen once: the values by count,
//     most frequent first, ties by value;
//   - monitoring_config: DefaultMonitoringConfig.
func Suggest(s *Statistics) *Constraints {
	c := &Constraints{Features: make([]ConstraintFeature, 0, len(s.Features)), MonitoringConfig: DefaultMonitoringConfig()}
	for _, f := range s.Features {
		cf := ConstraintFeature{Name: f.Name, InferredType: f.InferredType}
		common := featureCommon(&f)
		if total := common.NumPresent + common.NumMissing; total > 0 {
			p := float64(common.NumPresent) / float64(total)
			cf.Completeness = &p
		}
		if n := f.NumericalStatistics; n != nil && f.InferredType.Numeric() && n.Common.NumPresent > 0 {
			cf.NumConstraints = &NumConstraints{IsNonNegative: n.Min >= 0}
		}
		if f.InferredType == String {
			if d := suggestDomain(f.StringStatistics); d != nil {
				cf.StringConstraints = &StringConstraints{Domains: d}
			}
		}
		c.Features = append(c.Features, cf)
	}
	return c
}

func suggestDomain(s *StringStatistics) []string {
	if s == nil || s.Distribution.Categorical == nil {
		return nil
	}
	buckets := s.Distribution.Categorical.Buckets
	var sum, singletons int64
	for _, b := range buckets {
		sum += b.Count
		if b.Count == 1 {
			singletons++
		}
	}
	if len(buckets) == 0 || len(buckets) > suggestDomainMaxDistinct || sum != s.Common.NumPresent ||
		float64(singletons) > suggestDomainMaxSingleton*float64(len(buckets)) {
		return nil
	}
	sorted := slices.Clone(buckets)
	slices.SortFunc(sorted, func(a, b CategoricalBucket) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	out := make([]string, 0, len(sorted))
	for _, b := range sorted {
		if b.Count > 0 {
			out = append(out, b.Value)
		}
	}
	return out
}

// featureCommon is the feature's counts from whichever statistics block it
// has.
func featureCommon(f *Feature) Common {
	switch {
	case f.NumericalStatistics != nil:
		return f.NumericalStatistics.Common
	case f.StringStatistics != nil:
		return f.StringStatistics.Common
	}
	return Common{}
}

// DisableComparison turns baseline_drift_check off for the named features,
// as a per-feature monitoringConfigOverrides (perform_comparison
// Disabled): for features whose distribution legitimately moves (a
// reading count that is low while a stream starts). Their completeness and
// type are still checked. A name the constraints do not hold is an error.
func (c *Constraints) DisableComparison(names ...string) error {
	for _, n := range names {
		i := slices.IndexFunc(c.Features, func(f ConstraintFeature) bool { return f.Name == n })
		if i < 0 {
			return fmt.Errorf("no feature %q in the constraints", n)
		}
		f := &c.Features[i]
		if f.MonitoringConfigOverrides == nil {
			f.MonitoringConfigOverrides = &MonitoringConfigOverrides{}
		}
		o := f.MonitoringConfigOverrides
		if o.DistributionConstraints == nil {
			o.DistributionConstraints = &DistributionConstraintsOverrides{}
		}
		off := Disabled
		o.DistributionConstraints.PerformComparison = &off
	}
	return nil
}
