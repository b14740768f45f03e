package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/streamscore/streamscore/monitor/internal/mmjson"
)

// Kind is a feature's type as Model Monitor's inferred_type names it.
type Kind string

// The kinds. Unknown on a Column means "infer from the values" (CSV); in a
// statistics.json it is what a column with no present value infers to, as
// Deequ's DataType analyzer decides.
const (
	Integral   Kind = "Integral"
	Fractional Kind = "Fractional"
	String     Kind = "String"
	Boolean    Kind = "Boolean"
	Unknown    Kind = "Unknown"
)

// Numeric reports whether statistics of this kind are numerical_statistics.
func (k Kind) Numeric() bool { return k == Integral || k == Fractional }

func (k Kind) valid() bool {
	switch k {
	case Integral, Fractional, String, Boolean, Unknown:
		return true
	}
	return false
}

// Statistics is Model Monitor's statistics.json: the field names are those
// of the AWS "Schema for Statistics", so files written here are read by the
// tools that read Model Monitor's, and Model Monitor's are read here.
type Statistics struct {
	Version  float64   `json:"version"`
	Dataset  Dataset   `json:"dataset"`
	Features []Feature `json:"features"`
}

// Dataset is the dataset-level part of statistics.json.
type Dataset struct {
	ItemCount int64 `json:"item_count"`
}

// Feature is one column's statistics: numerical_statistics for Integral and
// Fractional features, string_statistics for the others.
type Feature struct {
	Name                string               `json:"name"`
	InferredType        Kind                 `json:"inferred_type"`
	NumericalStatistics *NumericalStatistics `json:"numerical_statistics,omitempty"`
	StringStatistics    *StringStatistics    `json:"string_statistics,omitempty"`
	// TypeCounts is streamscore's addition (Model Monitor readers ignore
	// unknown fields): how many present values looked Integral,
	// Fractional, Boolean or String, which data_type_check needs from the
	// current period and the Model Monitor schema has no place for. Absent
	// in Model Monitor's own files.
	TypeCounts *TypeCounts `json:"type_counts,omitempty"`
}

// TypeCounts counts present values by the type Deequ's DataType analyzer
// gives them.
type TypeCounts struct {
	Integral   int64 `json:"integral"`
	Fractional int64 `json:"fractional"`
	Boolean    int64 `json:"boolean"`
	String     int64 `json:"string"`
}

// Common holds the counts every feature has.
type Common struct {
	NumPresent int64 `json:"num_present"`
	NumMissing int64 `json:"num_missing"`
}

// NumericalStatistics is numerical_statistics. With num_present 0 the
// moments are written as 0 and the distribution is empty: JSON has no NaN,
// and readers must look at num_present first.
type NumericalStatistics struct {
	Common       Common                `json:"common"`
	Mean         float64               `json:"mean"`
	Sum          float64               `json:"sum"`
	StdDev       float64               `json:"std_dev"`
	Min          float64               `json:"min"`
	Max          float64               `json:"max"`
	Distribution NumericalDistribution `json:"distribution"`
}

// NumericalDistribution is numerical_statistics.distribution.
type NumericalDistribution struct {
	KLL *KLLDistribution `json:"kll,omitempty"`
}

// KLLDistribution is distribution.kll: equal-width buckets between min and
// max with counts from the sketch, and the sketch itself.
type KLLDistribution struct {
	Buckets []Bucket `json:"buckets"`
	Sketch  *Sketch  `json:"sketch,omitempty"`
}

// Bucket is one KLL bucket. Count is a number of values (a float in the
// schema; Model Monitor writes it as a JSON number).
type Bucket struct {
	LowerBound float64 `json:"lower_bound"`
	UpperBound float64 `json:"upper_bound"`
	Count      float64 `json:"count"`
}

// Sketch is the serialized KLL sketch: Data[h] holds the items of level h,
// each standing for 2^h values.
type Sketch struct {
	Parameters SketchParameters `json:"parameters"`
	Data       [][]float64      `json:"data"`
}

// SketchParameters are the sketch's shrinking factor c and size k.
type SketchParameters struct {
	C float64 `json:"c"`
	K float64 `json:"k"`
}

// StringStatistics is string_statistics.
type StringStatistics struct {
	Common        Common             `json:"common"`
	DistinctCount float64            `json:"distinct_count"`
	Distribution  StringDistribution `json:"distribution"`
}

// StringDistribution is string_statistics.distribution.
type StringDistribution struct {
	Categorical *CategoricalDistribution `json:"categorical,omitempty"`
}

// CategoricalDistribution holds one bucket per tracked value.
type CategoricalDistribution struct {
	Buckets []CategoricalBucket `json:"buckets"`
}

// CategoricalBucket is one value and how often it was seen.
type CategoricalBucket struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

// Limits on what ReadStatistics accepts, so a hostile or corrupt file
// cannot make the reader hold unbounded memory.
const (
	maxSketchLevels = 60      // weights up to 2^59 stay exact in float64 sums of counts
	maxSketchItems  = 1 << 22 // items over all levels of one sketch
	maxSketchK      = 1 << 16
	minSketchK      = 2
)

// ReadStatistics decodes and validates a statistics.json. name is the
// file's name, used in errors with the feature's index and name and the
// field at fault.
func ReadStatistics(r io.Reader, name string) (*Statistics, error) {
	dec := json.NewDecoder(r)
	var s Statistics
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: decode statistics: %w", name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: trailing data after the statistics object", name)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &s, nil
}

// Validate checks what a reader of the file relies on: known types, the
// statistics block that matches the type, counts that are not negative,
// finite numbers, min <= max, a sketch of sane size and parameters.
func (s *Statistics) Validate() error {
	if !finite(s.Version) {
		return errors.New("version: not a finite number")
	}
	if s.Dataset.ItemCount < 0 {
		return fmt.Errorf("dataset.item_count: %d is negative", s.Dataset.ItemCount)
	}
	seen := make(map[string]int, len(s.Features))
	for i := range s.Features {
		f := &s.Features[i]
		if err := f.validate(); err != nil {
			return fmt.Errorf("features[%d] %q: %w", i, f.Name, err)
		}
		if j, dup := seen[f.Name]; dup {
			return fmt.Errorf("features[%d] %q: name already used by features[%d]", i, f.Name, j)
		}
		seen[f.Name] = i
	}
	return nil
}

func (f *Feature) validate() error {
	if f.Name == "" {
		return errors.New("name: empty")
	}
	if !f.InferredType.valid() {
		return fmt.Errorf("inferred_type: %q is not Integral, Fractional, String, Boolean or Unknown", f.InferredType)
	}
	if tc := f.TypeCounts; tc != nil && (tc.Integral < 0 || tc.Fractional < 0 || tc.Boolean < 0 || tc.String < 0) {
		return errors.New("type_counts: negative count")
	}
	if f.InferredType.Numeric() {
		if f.StringStatistics != nil {
			return fmt.Errorf("string_statistics: present on a feature of type %s", f.InferredType)
		}
		if f.NumericalStatistics == nil {
			return fmt.Errorf("numerical_statistics: missing on a feature of type %s", f.InferredType)
		}
		return f.NumericalStatistics.validate()
	}
	if f.NumericalStatistics != nil {
		return fmt.Errorf("numerical_statistics: present on a feature of type %s", f.InferredType)
	}
	if f.StringStatistics == nil {
		return fmt.Errorf("string_statistics: missing on a feature of type %s", f.InferredType)
	}
	return f.StringStatistics.validate()
}

func (c Common) validate() error {
	if c.NumPresent < 0 {
		return fmt.Errorf("common.num_present: %d is negative", c.NumPresent)
	}
	if c.NumMissing < 0 {
		return fmt.Errorf("common.num_missing: %d is negative", c.NumMissing)
	}
	return nil
}

func (n *NumericalStatistics) validate() error {
	if err := n.Common.validate(); err != nil {
		return fmt.Errorf("numerical_statistics.%w", err)
	}
	for _, v := range []struct {
		name string
		v    float64
	}{{"mean", n.Mean}, {"sum", n.Sum}, {"std_dev", n.StdDev}, {"min", n.Min}, {"max", n.Max}} {
		if !finite(v.v) {
			return fmt.Errorf("numerical_statistics.%s: not a finite number", v.name)
		}
	}
	if n.StdDev < 0 {
		return fmt.Errorf("numerical_statistics.std_dev: %g is negative", n.StdDev)
	}
	if n.Common.NumPresent > 0 && n.Min > n.Max {
		return fmt.Errorf("numerical_statistics.min: %g is above max %g", n.Min, n.Max)
	}
	k := n.Distribution.KLL
	if k == nil {
		return nil
	}
	for i, b := range k.Buckets {
		if !finite(b.LowerBound) || !finite(b.UpperBound) || !finite(b.Count) {
			return fmt.Errorf("numerical_statistics.distribution.kll.buckets[%d]: not a finite number", i)
		}
		if b.LowerBound > b.UpperBound {
			return fmt.Errorf("numerical_statistics.distribution.kll.buckets[%d]: lower_bound %g above upper_bound %g", i, b.LowerBound, b.UpperBound)
		}
		if b.Count < 0 {
			return fmt.Errorf("numerical_statistics.distribution.kll.buckets[%d].count: %g is negative", i, b.Count)
		}
	}
	if k.Sketch != nil {
		if err := k.Sketch.validate(); err != nil {
			return fmt.Errorf("numerical_statistics.distribution.kll.sketch.%w", err)
		}
	}
	return nil
}

func (s *Sketch) validate() error {
	c, k := s.Parameters.C, s.Parameters.K
	if !(c > 0 && c <= 1) {
		return fmt.Errorf("parameters.c: %g is not in (0, 1]", c)
	}
	if !(k >= minSketchK && k <= maxSketchK) || k != math.Trunc(k) {
		return fmt.Errorf("parameters.k: %g is not an integer in [%d, %d]", k, minSketchK, maxSketchK)
	}
	if len(s.Data) > maxSketchLevels {
		return fmt.Errorf("data: %d levels, at most %d", len(s.Data), maxSketchLevels)
	}
	items := 0
	for h, level := range s.Data {
		items += len(level)
		if items > maxSketchItems {
			return fmt.Errorf("data: more than %d items", maxSketchItems)
		}
		for i, v := range level {
			if !finite(v) {
				return fmt.Errorf("data[%d][%d]: not a finite number", h, i)
			}
		}
	}
	return nil
}

func (s *StringStatistics) validate() error {
	if err := s.Common.validate(); err != nil {
		return fmt.Errorf("string_statistics.%w", err)
	}
	if !finite(s.DistinctCount) || s.DistinctCount < 0 {
		return fmt.Errorf("string_statistics.distinct_count: %g is not a finite count", s.DistinctCount)
	}
	c := s.Distribution.Categorical
	if c == nil {
		return nil
	}
	seen := make(map[string]int, len(c.Buckets))
	for i, b := range c.Buckets {
		if b.Count < 0 {
			return fmt.Errorf("string_statistics.distribution.categorical.buckets[%d].count: %d is negative", i, b.Count)
		}
		if j, dup := seen[b.Value]; dup {
			return fmt.Errorf("string_statistics.distribution.categorical.buckets[%d]: value %q already in buckets[%d]", i, b.Value, j)
		}
		seen[b.Value] = i
	}
	return nil
}

// WriteJSON writes the statistics as indented JSON (two spaces), fields in
// the schema's order, features in column order, so equal statistics give
// equal bytes. It refuses statistics that Validate refuses, which is also
// what keeps NaN and infinities (not JSON) out of the file.
func (s *Statistics) WriteJSON(w io.Writer) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("write statistics: %w", err)
	}
	return mmjson.Write(w, "statistics", s)
}

// UnmarshalJSON accepts the counts as JSON integers or as floats with no
// fractional part (10.0), which Spark-based writers produce.
func (c *Common) UnmarshalJSON(b []byte) error {
	var raw struct {
		NumPresent json.Number `json:"num_present"`
		NumMissing json.Number `json:"num_missing"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var err error
	if c.NumPresent, err = mmjson.WholeNumber(raw.NumPresent); err != nil {
		return fmt.Errorf("num_present: %w", err)
	}
	if c.NumMissing, err = mmjson.WholeNumber(raw.NumMissing); err != nil {
		return fmt.Errorf("num_missing: %w", err)
	}
	return nil
}

// UnmarshalJSON accepts item_count as an integer or a whole float.
func (d *Dataset) UnmarshalJSON(b []byte) error {
	var raw struct {
		ItemCount json.Number `json:"item_count"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	n, err := mmjson.WholeNumber(raw.ItemCount)
	if err != nil {
		return fmt.Errorf("item_count: %w", err)
	}
	d.ItemCount = n
	return nil
}

// UnmarshalJSON accepts count as an integer or a whole float.
func (c *CategoricalBucket) UnmarshalJSON(b []byte) error {
	var raw struct {
		Value *string     `json:"value"`
		Count json.Number `json:"count"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw.Value == nil {
		return errors.New("value: missing")
	}
	n, err := mmjson.WholeNumber(raw.Count)
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	c.Value, c.Count = *raw.Value, n
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
