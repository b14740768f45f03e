package monitor

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Statistics renders the profile as Model Monitor's statistics.json:
// version 0, the rows counted by AddRows, one feature per column in column
// order. A column's inferred_type is its declared kind, or for Unknown the
// type Deequ's DataType analyzer decides from the type counts: Unknown if
// nothing was present; String if any value was a string or booleans mix
// with numbers; else Boolean if any boolean; else Fractional if any
// fractional; else Integral. Numeric kinds get numerical_statistics (KLL
// buckets equal-width between the exact min and max, counts from the
// sketch); the others string_statistics, with categorical buckets sorted by
// count, then value.
func (p *Profile) Statistics() *Statistics {
	s := &Statistics{Version: 0, Dataset: Dataset{ItemCount: p.items}, Features: make([]Feature, len(p.cols))}
	for i := range p.cols {
		c := &p.st[i]
		kind := p.cols[i].Kind
		if kind == Unknown {
			kind = inferKind(c.types)
		}
		tc := c.types
		f := Feature{Name: p.cols[i].Name, InferredType: kind, TypeCounts: &tc}
		common := Common{NumPresent: c.present, NumMissing: c.missing}
		if kind.Numeric() {
			f.NumericalStatistics = p.numerical(c, common)
		} else {
			f.StringStatistics = c.stringStats(common)
		}
		s.Features[i] = f
	}
	return s
}

// inferKind is Deequ's DataTypeHistogram.determineType.
func inferKind(t TypeCounts) Kind {
	numbers := t.Integral + t.Fractional
	switch {
	case numbers+t.Boolean+t.String == 0:
		return Unknown
	case t.String > 0 || (t.Boolean > 0 && numbers > 0):
		return String
	case t.Boolean > 0:
		return Boolean
	case t.Fractional > 0:
		return Fractional
	}
	return Integral
}

func (p *Profile) numerical(c *colState, common Common) *NumericalStatistics {
	ns := &NumericalStatistics{Common: common}
	if c.n == 0 {
		return ns
	}
	ns.Mean = clampFinite(c.shift + c.mean)
	ns.Sum = clampFinite(c.sum + c.sumComp)
	ns.StdDev = clampFinite(math.Sqrt(max(c.m2, 0) / float64(c.n)))
	ns.Min, ns.Max = c.minV, c.maxV
	if c.kll != nil && c.kll.Count() > 0 {
		sk := c.kll.Sketch()
		ns.Distribution.KLL = &KLLDistribution{
			Buckets: c.kll.Buckets(c.minV, c.maxV, p.opt.Buckets),
			Sketch:  &sk,
		}
		c.kll.dropView() // a profile between periods holds its sketch only
	}
	return ns
}

// clampFinite keeps a moment of values near float64's limits writable: a sum
// or a squared deviation of values beyond about 1e154 overflows, and
// statistics.json has no infinity. An overflow is written as the largest
// float64 of its sign, an undefined one (both signs overflowed) as 0, so
// one absurd reading costs the column its moments, never the whole
// period's file.
func clampFinite(v float64) float64 {
	switch {
	case math.IsNaN(v):
		return 0
	case math.IsInf(v, 1):
		return math.MaxFloat64
	case math.IsInf(v, -1):
		return -math.MaxFloat64
	}
	return v
}

func (c *colState) stringStats(common Common) *StringStatistics {
	ss := &StringStatistics{Common: common}
	var buckets []CategoricalBucket
	distinct, floor := 0.0, 0.0
	if t := c.cat; t != nil {
		buckets = make([]CategoricalBucket, 0, len(t.values)+2)
		for i, v := range t.values {
			buckets = append(buckets, CategoricalBucket{Value: v, Count: t.counts[i]})
		}
		distinct, floor = t.distinct(), t.distinctFloor
	}
	for _, b := range []CategoricalBucket{{"true", c.nTrue}, {"false", c.nFalse}} {
		if b.Count == 0 {
			continue
		}
		if j := slices.IndexFunc(buckets, func(x CategoricalBucket) bool { return x.Value == b.Value }); j >= 0 {
			buckets[j].Count += b.Count
			continue
		}
		buckets = append(buckets, b)
		distinct++
	}
	slices.SortFunc(buckets, func(a, b CategoricalBucket) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Value, b.Value)
	})
	if buckets == nil {
		buckets = []CategoricalBucket{}
	}
	ss.DistinctCount = max(distinct, floor)
	ss.Distribution.Categorical = &CategoricalDistribution{Buckets: buckets}
	return ss
}

// FromStatistics rebuilds a mergeable profile from a statistics.json,
// ours (with sketches and type counts) or Model Monitor's, so periods and
// workers' parts merge. Columns take the features' inferred types. What a
// file cannot give back is approximated, never invented:
//   - moments: n = num_present, M2 = std_dev²·n;
//   - a numeric feature with buckets but no sketch gets a sketch with each
//     bucket's count at the bucket's midpoint;
//   - categorical buckets beyond MaxCategories, and num_present not
//     covered by buckets, count as overflow; distinct_count is kept as a
//     floor for the merged estimate;
//   - without type_counts, every present value counts as the inferred type.
func FromStatistics(s *Statistics, o Options) (*Profile, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("profile from statistics: %w", err)
	}
	cols := make([]Column, len(s.Features))
	for i, f := range s.Features {
		cols[i] = Column{Name: f.Name, Kind: f.InferredType}
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("profile from statistics: options: %w", err)
	}
	p := NewProfile(cols, o)
	p.items = s.Dataset.ItemCount
	for i := range s.Features {
		if err := p.loadFeature(&p.st[i], &s.Features[i]); err != nil {
			return nil, fmt.Errorf("profile from statistics: features[%d] %q: %w", i, s.Features[i].Name, err)
		}
	}
	return p, nil
}

func (p *Profile) loadFeature(c *colState, f *Feature) error {
	var common Common
	if ns := f.NumericalStatistics; ns != nil {
		common = ns.Common
		if err := p.loadNumbers(c, ns); err != nil {
			return err
		}
	} else {
		common = f.StringStatistics.Common
		p.loadStrings(c, f)
	}
	c.present, c.missing = common.NumPresent, common.NumMissing
	if f.TypeCounts != nil {
		c.types = *f.TypeCounts
		return nil
	}
	switch f.InferredType {
	case Integral:
		c.types.Integral = c.present
	case Fractional:
		c.types.Fractional = c.present
	case Boolean:
		c.types.Boolean = c.present
	case String:
		c.types.String = c.present
	}
	return nil
}

func (p *Profile) loadNumbers(c *colState, ns *NumericalStatistics) error {
	n := ns.Common.NumPresent
	if n == 0 {
		return nil
	}
	c.n, c.shift, c.mean, c.m2 = n, ns.Mean, 0, ns.StdDev*ns.StdDev*float64(n)
	c.sum, c.minV, c.maxV = ns.Sum, ns.Min, ns.Max
	d := ns.Distribution.KLL
	switch {
	case d != nil && d.Sketch != nil:
		k, err := KLLFromSketch(*d.Sketch)
		if err != nil {
			return fmt.Errorf("numerical_statistics.distribution.kll.sketch: %w", err)
		}
		c.kll = k
	case d != nil:
		c.kll = NewKLL(p.opt.K, p.opt.C)
		for _, b := range d.Buckets {
			c.kll.addWeighted((b.LowerBound+b.UpperBound)/2, b.Count)
		}
	}
	return nil
}

func (p *Profile) loadStrings(c *colState, f *Feature) {
	ss := f.StringStatistics
	covered := int64(0)
	if cd := ss.Distribution.Categorical; cd != nil {
		for _, b := range cd.Buckets {
			if b.Count == 0 {
				continue
			}
			covered += b.Count
			if c.feedsBools && (b.Value == "true" || b.Value == "false") {
				if b.Value == "true" {
					c.nTrue += b.Count
				} else {
					c.nFalse += b.Count
				}
				continue
			}
			p.addCategory(c, b.Value, b.Count)
		}
	}
	if c.cat == nil && (ss.DistinctCount > 0 || ss.Common.NumPresent > covered) {
		c.cat = &categories{index: make(map[string]int32)}
	}
	if c.cat != nil {
		c.cat.overflow += max(ss.Common.NumPresent-covered, 0)
		c.cat.distinctFloor = ss.DistinctCount
	}
}
