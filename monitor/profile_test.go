package monitor

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// profileCSV feeds a CSV with a header through the CSV path.
func profileCSV(t *testing.T, path string, o Options) *Profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	cols := make([]Column, len(rows[0]))
	for i, name := range rows[0] {
		cols[i] = Column{Name: name, Kind: Unknown}
	}
	p := NewProfile(cols, o)
	for _, row := range rows[1:] {
		for i, cell := range row {
			p.ObserveText(i, cell)
		}
	}
	p.AddRows(len(rows) - 1)
	return p
}

type expectedFeature struct {
	Name          string             `json:"name"`
	NumPresent    int64              `json:"num_present"`
	NumMissing    int64              `json:"num_missing"`
	InferredType  Kind               `json:"inferred_type"`
	Mean          float64            `json:"mean"`
	Sum           float64            `json:"sum"`
	StdDev        float64            `json:"std_dev"`
	Min           float64            `json:"min"`
	Max           float64            `json:"max"`
	Quantiles     map[string]float64 `json:"quantiles"`
	DistinctCount float64            `json:"distinct_count"`
	Categories    map[string]int64   `json:"categories"`
}

func closeTo(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-300)
}

// TestStatisticsMatchNumpy: the statistics of testdata/baseline.csv equal
// numpy's on the same data (testdata/gen_expected.py): counts and extremes
// exactly, mean, sum and the population std_dev to 1e-12 relative (both
// sides sum accurately; the "big" column, 1e9 with a spread of 0.5, is
// where a naive variance would lose every digit), the inferred types as
// Deequ decides them, categories exactly, and the sketch's quantiles
// within its error bound of numpy's.
func TestStatisticsMatchNumpy(t *testing.T) {
	raw, err := os.ReadFile("testdata/baseline_expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		ItemCount int64             `json:"item_count"`
		Features  []expectedFeature `json:"features"`
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	s := profileCSV(t, "testdata/baseline.csv", Options{}).Statistics()
	if s.Dataset.ItemCount != want.ItemCount || len(s.Features) != len(want.Features) {
		t.Fatalf("item_count %d features %d, want %d and %d", s.Dataset.ItemCount, len(s.Features), want.ItemCount, len(want.Features))
	}
	for i, w := range want.Features {
		f := s.Features[i]
		if f.Name != w.Name || f.InferredType != w.InferredType {
			t.Errorf("feature %d: %s %s, want %s %s", i, f.Name, f.InferredType, w.Name, w.InferredType)
			continue
		}
		if ns := f.NumericalStatistics; ns != nil {
			if ns.Common.NumPresent != w.NumPresent || ns.Common.NumMissing != w.NumMissing {
				t.Errorf("%s: present %d missing %d, want %d %d", w.Name, ns.Common.NumPresent, ns.Common.NumMissing, w.NumPresent, w.NumMissing)
			}
			if ns.Min != w.Min || ns.Max != w.Max {
				t.Errorf("%s: min %v max %v, want %v %v", w.Name, ns.Min, ns.Max, w.Min, w.Max)
			}
			for _, m := range []struct {
				name      string
				got, want float64
			}{{"mean", ns.Mean, w.Mean}, {"sum", ns.Sum, w.Sum}, {"std_dev", ns.StdDev, w.StdDev}} {
				if !closeTo(m.got, m.want, 1e-12) {
					t.Errorf("%s: %s %.17g, numpy %.17g", w.Name, m.name, m.got, m.want)
				}
			}
			k, err := KLLFromSketch(*ns.Distribution.KLL.Sketch)
			if err != nil {
				t.Fatal(err)
			}
			n := float64(w.NumPresent)
			for qs, exact := range w.Quantiles {
				q, _ := strconv.ParseFloat(qs, 64)
				// the sketch's q-quantile and numpy's are within the
				// sketch's rank error of each other
				if d := math.Abs(k.CDF(exact)-k.CDF(k.Quantile(q))) * n; d > max(k.ErrorBound()*n, 1)+1 {
					t.Errorf("%s: q=%s sketch %g numpy %g, %g values apart", w.Name, qs, k.Quantile(q), exact, d)
				}
			}
			var total float64
			for _, b := range ns.Distribution.KLL.Buckets {
				total += b.Count
			}
			if len(ns.Distribution.KLL.Buckets) != 10 || total != n {
				t.Errorf("%s: %d buckets counting %g, want 10 counting %g", w.Name, len(ns.Distribution.KLL.Buckets), total, n)
			}
			continue
		}
		ss := f.StringStatistics
		if ss.Common.NumPresent != w.NumPresent || ss.Common.NumMissing != w.NumMissing || ss.DistinctCount != w.DistinctCount {
			t.Errorf("%s: present %d missing %d distinct %g, want %d %d %g", w.Name, ss.Common.NumPresent, ss.Common.NumMissing, ss.DistinctCount, w.NumPresent, w.NumMissing, w.DistinctCount)
		}
		got := map[string]int64{}
		for _, b := range ss.Distribution.Categorical.Buckets {
			got[b.Value] = b.Count
		}
		if len(got) != len(w.Categories) {
			t.Errorf("%s: categories %v, want %v", w.Name, got, w.Categories)
		}
		for v, c := range w.Categories {
			if got[v] != c {
				t.Errorf("%s: category %q count %d, want %d", w.Name, v, got[v], c)
			}
		}
	}
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatalf("the statistics do not write: %v", err)
	}
}

func TestObserveTextClassifiesAsDeequ(t *testing.T) {
	cases := map[string]Kind{
		"0": Integral, "-12": Integral, "+7": Integral, "- 7": Integral, " 7": Integral, "007": Integral,
		"1.5": Fractional, "-0.25": Fractional, "1e5": Fractional, "1.5E-3": Fractional, "+ 2.0e+10": Fractional,
		"true": Boolean, "false": Boolean,
		"True": String, "1.": String, ".5": String, "1e": String, "--1": String, "1 ": String, "NaN": String,
		"Infinity": String, "0x10": String, "1,000": String, "abc": String, "  1": String, "1.5.2": String, "e5": String,
	}
	for text, want := range cases {
		p := NewProfile([]Column{{Name: "x", Kind: Unknown}}, Options{})
		p.ObserveText(0, text)
		if got := p.Statistics().Features[0].InferredType; got != want {
			t.Errorf("%q: inferred %s, want %s", text, got, want)
		}
	}
	// the number read is the one written, sign and space included
	p := NewProfile([]Column{{Name: "x", Kind: Fractional}}, Options{})
	p.ObserveText(0, "- 2.5")
	p.ObserveText(0, "+ 1e1")
	if ns := p.Statistics().Features[0].NumericalStatistics; ns.Min != -2.5 || ns.Max != 10 {
		t.Fatalf("min %g max %g, want -2.5 and 10", ns.Min, ns.Max)
	}
}

func TestInferKindIsDeequsRule(t *testing.T) {
	cases := []struct {
		tc   TypeCounts
		want Kind
	}{
		{TypeCounts{}, Unknown},
		{TypeCounts{Integral: 5}, Integral},
		{TypeCounts{Integral: 5, Fractional: 1}, Fractional},
		{TypeCounts{Boolean: 3}, Boolean},
		{TypeCounts{Boolean: 3, Integral: 1}, String},
		{TypeCounts{Integral: 100, String: 1}, String},
	}
	for _, c := range cases {
		if got := inferKind(c.tc); got != c.want {
			t.Errorf("%+v: %s, want %s", c.tc, got, c.want)
		}
	}
}

func TestTypedObservations(t *testing.T) {
	p := NewProfile([]Column{{"f", Fractional}, {"i", Integral}, {"b", Boolean}, {"s", String}}, Options{})
	for _, v := range []float64{1, 2.5, math.NaN(), math.Inf(1), math.Inf(-1), 4} {
		p.ObserveFloat(0, v)
	}
	p.ObserveMissing(0)
	for _, v := range []int64{-3, 9, 1 << 40} {
		p.ObserveInt(1, v)
	}
	for _, v := range []bool{true, true, false} {
		p.ObserveBool(2, v)
	}
	for _, v := range []string{"a", "b", "a", ""} {
		p.ObserveString(3, v)
	}
	p.ObserveBool(3, true)
	s := p.Statistics()
	f := s.Features[0].NumericalStatistics
	if f.Common != (Common{NumPresent: 3, NumMissing: 4}) || f.Sum != 7.5 || f.Min != 1 || f.Max != 4 || f.Mean != 2.5 {
		t.Errorf("float column %+v: NaN and ±Inf are missing", f)
	}
	if tc := *s.Features[0].TypeCounts; tc != (TypeCounts{Integral: 2, Fractional: 1}) {
		t.Errorf("float type counts %+v: whole numbers count as Integral", tc)
	}
	if i := s.Features[1].NumericalStatistics; i.Sum != 6+1<<40 || s.Features[1].InferredType != Integral {
		t.Errorf("int column %+v", i)
	}
	b := s.Features[2]
	if b.InferredType != Boolean || b.StringStatistics.DistinctCount != 2 ||
		!slices.Equal(b.StringStatistics.Distribution.Categorical.Buckets, []CategoricalBucket{{"true", 2}, {"false", 1}}) {
		t.Errorf("bool column %+v", b.StringStatistics)
	}
	str := s.Features[3].StringStatistics
	if str.Common.NumPresent != 5 || str.DistinctCount != 4 ||
		!slices.Equal(str.Distribution.Categorical.Buckets, []CategoricalBucket{{"a", 2}, {"", 1}, {"b", 1}, {"true", 1}}) {
		t.Errorf("string column %+v", str)
	}
	if tc := *s.Features[3].TypeCounts; tc != (TypeCounts{String: 4, Boolean: 1}) {
		t.Errorf("string type counts %+v", tc)
	}
}

// TestProfileMergeIsTheUnion: per-shard profiles merged equal the profile
// of all rows: counts, min, max and categories exactly, moments to
// rounding, sketches within their error bound.
func TestProfileMergeIsTheUnion(t *testing.T) {
	cols := []Column{{"x", Fractional}, {"c", String}, {"n", Integral}}
	whole := NewProfile(cols, Options{})
	merged := NewProfile(cols, Options{})
	vals := stream("lognormal", 400_000, 11)
	for shard := range 4 {
		part := NewProfile(cols, Options{})
		for i := shard; i < len(vals); i += 4 {
			for _, p := range []*Profile{part, whole} {
				p.ObserveFloat(0, vals[i]+float64(shard))
				p.ObserveString(1, strconv.Itoa(i%(7+shard)))
				if i%10 == 0 {
					p.ObserveMissing(2)
				} else {
					p.ObserveInt(2, int64(i%13))
				}
			}
		}
		part.AddRows(len(vals) / 4)
		whole.AddRows(len(vals) / 4)
		if err := merged.Merge(part); err != nil {
			t.Fatal(err)
		}
	}
	a, b := whole.Statistics(), merged.Statistics()
	if a.Dataset != b.Dataset {
		t.Fatalf("item_count %d merged, %d whole", b.Dataset.ItemCount, a.Dataset.ItemCount)
	}
	for _, i := range []int{0, 2} {
		x, y := a.Features[i].NumericalStatistics, b.Features[i].NumericalStatistics
		if x.Common != y.Common || x.Min != y.Min || x.Max != y.Max {
			t.Errorf("%s: counts or extremes differ: %+v vs %+v", cols[i].Name, x.Common, y.Common)
		}
		if !closeTo(y.Mean, x.Mean, 1e-12) || !closeTo(y.Sum, x.Sum, 1e-12) || !closeTo(y.StdDev, x.StdDev, 1e-9) {
			t.Errorf("%s: moments merged %g %g %g, whole %g %g %g", cols[i].Name, y.Mean, y.Sum, y.StdDev, x.Mean, x.Sum, x.StdDev)
		}
		kw, _ := KLLFromSketch(*x.Distribution.KLL.Sketch)
		km, _ := KLLFromSketch(*y.Distribution.KLL.Sketch)
		if km.Count() != kw.Count() {
			t.Errorf("%s: sketch counts %g vs %g", cols[i].Name, km.Count(), kw.Count())
		}
		bound := merged.st[i].kll.ErrorBound() + whole.st[i].kll.ErrorBound()
		for q := 0.05; q < 1; q += 0.05 {
			if d := math.Abs(kw.CDF(km.Quantile(q)) - kw.CDF(kw.Quantile(q))); d > bound+1e-9 {
				t.Errorf("%s q=%.2f: merged and whole quantiles %g apart in rank, bound %g", cols[i].Name, q, d, bound)
			}
		}
	}
	x, y := a.Features[1].StringStatistics, b.Features[1].StringStatistics
	if !slices.Equal(x.Distribution.Categorical.Buckets, y.Distribution.Categorical.Buckets) || x.DistinctCount != y.DistinctCount {
		t.Errorf("categories differ after merge")
	}
	if err := merged.Merge(NewProfile([]Column{{"x", Fractional}}, Options{})); err == nil {
		t.Error("merging a profile of other columns succeeded")
	}
}

func TestMergeOfDifferentKindsInfersAgain(t *testing.T) {
	a := NewProfile([]Column{{"x", Integral}}, Options{})
	b := NewProfile([]Column{{"x", Fractional}}, Options{})
	a.ObserveInt(0, 3)
	b.ObserveFloat(0, 0.5)
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	f := a.Statistics().Features[0]
	if f.InferredType != Fractional || f.NumericalStatistics.Sum != 3.5 {
		t.Fatalf("merged %s sum %g, want Fractional 3.5", f.InferredType, f.NumericalStatistics.Sum)
	}
}

func TestMaxCategoriesCountsTheOverflow(t *testing.T) {
	p := NewProfile([]Column{{"c", String}}, Options{MaxCategories: 100})
	for i := range 10_000 {
		p.ObserveString(0, strconv.Itoa(i%5000))
	}
	ss := p.Statistics().Features[0].StringStatistics
	var inBuckets int64
	for _, b := range ss.Distribution.Categorical.Buckets {
		inBuckets += b.Count
	}
	if len(ss.Distribution.Categorical.Buckets) != 100 || inBuckets != 200 || ss.Common.NumPresent != 10_000 {
		t.Fatalf("%d buckets holding %d of %d", len(ss.Distribution.Categorical.Buckets), inBuckets, ss.Common.NumPresent)
	}
	// the distinct count is estimated once the table is full (HyperLogLog,
	// about 1% error at this size)
	if math.Abs(ss.DistinctCount-5000) > 150 {
		t.Fatalf("distinct_count %g, want about 5000", ss.DistinctCount)
	}
	// below the bound it is exact
	q := NewProfile([]Column{{"c", String}}, Options{MaxCategories: 100})
	for i := range 1000 {
		q.ObserveString(0, strconv.Itoa(i%99))
	}
	if d := q.Statistics().Features[0].StringStatistics.DistinctCount; d != 99 {
		t.Fatalf("distinct_count %g, want 99", d)
	}
}

func TestAllMissingColumnsWriteValidJSON(t *testing.T) {
	p := NewProfile([]Column{{"f", Fractional}, {"u", Unknown}, {"s", String}}, Options{})
	for c := range 3 {
		p.ObserveMissing(c)
	}
	p.ObserveFloat(0, math.NaN())
	p.AddRows(2)
	s := p.Statistics()
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(buf.Bytes()) {
		t.Fatal("invalid JSON")
	}
	f := s.Features[0].NumericalStatistics
	if f.Common != (Common{0, 2}) || f.Mean != 0 || f.StdDev != 0 || f.Distribution.KLL != nil {
		t.Errorf("all-missing numeric feature %+v: moments 0, no distribution", f)
	}
	if s.Features[1].InferredType != Unknown || s.Features[1].StringStatistics.Common.NumMissing != 1 {
		t.Errorf("all-missing Unknown feature %+v", s.Features[1])
	}
	back, err := ReadStatistics(&buf, "all-missing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromStatistics(back, Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestFromStatisticsRoundTrip: a profile written, read and rebuilt renders
// the same statistics, and merges like the original.
func TestFromStatisticsRoundTrip(t *testing.T) {
	p := profileCSV(t, "testdata/baseline.csv", Options{})
	s := p.Statistics()
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadStatistics(bytes.NewReader(buf.Bytes()), "statistics.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := FromStatistics(back, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := r.Statistics().WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Fatalf("round trip changed the statistics:\n%s", firstDiff(buf.String(), again.String()))
	}
	// merged with itself: counts double, moments stay
	if err := r.Merge(r2(t, back)); err != nil {
		t.Fatal(err)
	}
	d := r.Statistics()
	for i, f := range d.Features {
		o := s.Features[i]
		if ns := f.NumericalStatistics; ns != nil {
			on := o.NumericalStatistics
			if ns.Common.NumPresent != 2*on.Common.NumPresent || !closeTo(ns.Mean, on.Mean, 1e-12) || !closeTo(ns.StdDev, on.StdDev, 1e-9) {
				t.Errorf("%s doubled: %+v from %+v", f.Name, ns.Common, on.Common)
			}
		}
	}
	if d.Dataset.ItemCount != 2*s.Dataset.ItemCount {
		t.Errorf("item_count %d, want %d", d.Dataset.ItemCount, 2*s.Dataset.ItemCount)
	}
}

func r2(t *testing.T, s *Statistics) *Profile {
	p, err := FromStatistics(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return "line " + strconv.Itoa(i+1) + ":\n  " + la[i] + "\n  " + lb[i]
		}
	}
	return "lengths differ"
}

// TestReadsModelMonitorExample reads testdata/modelmonitor_statistics.json,
// written by hand in the shape of the AWS "Schema for Statistics" page
// (Jackson's " : " spacing, whole numbers written as floats, a string
// feature, a sketch), and rebuilds a profile from it.
func TestReadsModelMonitorExample(t *testing.T) {
	f, err := os.Open("testdata/modelmonitor_statistics.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ReadStatistics(f, "modelmonitor_statistics.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Dataset.ItemCount != 10 || len(s.Features) != 3 {
		t.Fatalf("item_count %d, %d features", s.Dataset.ItemCount, len(s.Features))
	}
	x := s.Features[1].NumericalStatistics
	if x.Common.NumPresent != 8 || x.Distribution.KLL.Sketch.Parameters != (SketchParameters{C: 0.64, K: 2048}) {
		t.Fatalf("feature %+v", x)
	}
	p, err := FromStatistics(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if k := p.st[1].kll; k.Count() != 8 || k.Quantile(0.5) != 3 { // 6 items at level 0, one of weight 2
		t.Errorf("sketch count %g median %g", k.Count(), k.Quantile(0.5))
	}
	// a feature with buckets and no sketch gets a sketch from its buckets
	if k := p.st[0].kll; k == nil || k.Count() != 10 || k.CDF(0.5) != 0.6 {
		t.Errorf("bucket-only feature sketch %v", k)
	}
	if ss := p.Statistics().Features[2].StringStatistics; ss.Common.NumPresent != 10 || ss.DistinctCount != 3 {
		t.Errorf("string feature %+v", ss)
	}
}

// TestFromStatisticsWithoutDistribution: a numeric feature a file gives
// without any distribution keeps its moments and takes new values.
func TestFromStatisticsWithoutDistribution(t *testing.T) {
	in := `{"version":0,"dataset":{"item_count":2},"features":[{"name":"x","inferred_type":"Fractional",
"numerical_statistics":{"common":{"num_present":2,"num_missing":0},"mean":2,"sum":4,"std_dev":1,"min":1,"max":3,"distribution":{}}}]}`
	s, err := ReadStatistics(strings.NewReader(in), "nodist.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := FromStatistics(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.ObserveFloat(0, 5)
	ns := p.Statistics().Features[0].NumericalStatistics
	// values 1, 3 (from the file's moments) and 5
	if ns.Common.NumPresent != 3 || ns.Mean != 3 || ns.Sum != 9 || ns.Max != 5 || !closeTo(ns.StdDev, math.Sqrt(8.0/3), 1e-12) {
		t.Fatalf("after one more value: %+v", ns)
	}
}

func TestProfileResetForgetsAndKeepsBuffers(t *testing.T) {
	p := NewProfile([]Column{{"x", Fractional}, {"c", String}}, Options{})
	fill := func() {
		for i := range 100_000 {
			p.ObserveFloat(0, float64(i))
			p.ObserveString(1, strconv.Itoa(i%10))
		}
		p.AddRows(100_000)
	}
	fill()
	first := p.Statistics()
	p.Reset()
	empty := p.Statistics()
	if empty.Dataset.ItemCount != 0 || empty.Features[0].NumericalStatistics.Common.NumPresent != 0 ||
		len(empty.Features[1].StringStatistics.Distribution.Categorical.Buckets) != 0 {
		t.Fatalf("Reset left counts: %+v", empty)
	}
	fill()
	var a, b bytes.Buffer
	_ = first.WriteJSON(&a)
	_ = p.Statistics().WriteJSON(&b)
	if a.String() != b.String() {
		t.Fatalf("after Reset the same data gives other statistics:\n%s", firstDiff(a.String(), b.String()))
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	p := NewProfile([]Column{{"x", Fractional}, {"c", String}, {"u", Unknown}}, Options{})
	for i := range 50_000 {
		p.ObserveFloat(0, float64(i%977))
		p.ObserveString(1, strconv.Itoa(i%50))
		p.ObserveText(2, strconv.Itoa(i%50))
	}
	texts := []string{"3", "17", "-2.5"}
	i := 0
	allocs := testing.AllocsPerRun(10_000, func() {
		p.ObserveFloat(0, float64(i%977))
		p.ObserveString(1, "7")
		p.ObserveText(2, texts[i%2]) // seen values: no new category
		p.ObserveMissing(0)
		i++
	})
	if allocs != 0 {
		t.Fatalf("%g allocations per row", allocs)
	}
}

func TestMemoryBytesGrowsWithWhatIsHeld(t *testing.T) {
	p := NewProfile([]Column{{"x", Fractional}, {"c", String}}, Options{})
	empty := p.MemoryBytes()
	for i := range 1_000_000 {
		p.ObserveFloat(0, float64(i))
	}
	numeric := p.MemoryBytes()
	for i := range 1000 {
		p.ObserveString(1, strings.Repeat("v", 20)+strconv.Itoa(i))
	}
	withCats := p.MemoryBytes()
	k := p.st[0].kll
	if numeric-empty < 8*len(k.items) || numeric-empty > 200_000 {
		t.Errorf("a numeric column after a million values holds %d bytes, sketch items %d", numeric-empty, len(k.items))
	}
	if withCats-numeric < 1000*(23+16) {
		t.Errorf("1000 categories of 23 bytes counted as %d bytes", withCats-numeric)
	}
	t.Logf("empty %d B, numeric column at 1e6 values %d B, 1000 categories %d B", empty, numeric-empty, withCats-numeric)
}

func TestValidateColumns(t *testing.T) {
	for _, cols := range [][]Column{{{"", Integral}}, {{"a", Integral}, {"a", String}}, {{"a", "Float"}}} {
		if err := ValidateColumns(cols); err == nil {
			t.Errorf("%v accepted", cols)
		}
	}
	if err := ValidateColumns([]Column{{"a", Unknown}, {"b", Boolean}}); err != nil {
		t.Error(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{K: 1}, {C: 2}, {Buckets: -1}, {MaxCategories: -5}, {C: -0.5}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}
