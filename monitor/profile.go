package monitor

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/axiomhq/hyperloglog"
)

// Defaults of Options; each lives here only.
const (
	DefaultBuckets       = 10   // Model Monitor materializes 10 KLL buckets
	DefaultMaxCategories = 1000 // distinct values tracked per string column
)

// Column is one monitored column. Kind Unknown means "infer from the
// values", as Model Monitor does for CSV: see ObserveText.
type Column struct {
	Name string
	Kind Kind
}

// Options sizes a Profile. Zero fields take the defaults: K 2048, C 0.64
// (Model Monitor's sketch), Buckets 10, MaxCategories 1000.
type Options struct {
	K             int     // KLL sketch size
	C             float64 // KLL shrinking factor
	Buckets       int     // KLL buckets written in statistics.json
	MaxCategories int     // distinct values counted exactly per string column
}

func (o Options) withDefaults() Options {
	if o.K == 0 {
		o.K = DefaultK
	}
	if o.C == 0 {
		o.C = DefaultC
	}
	if o.Buckets == 0 {
		o.Buckets = DefaultBuckets
	}
	if o.MaxCategories == 0 {
		o.MaxCategories = DefaultMaxCategories
	}
	return o
}

// Validate reports options NewProfile would refuse (zero fields are
// defaults and valid).
func (o Options) Validate() error {
	o = o.withDefaults()
	if err := checkParams(float64(o.K), o.C); err != nil {
		return err
	}
	if o.Buckets < 1 || o.Buckets > 1000 {
		return fmt.Errorf("buckets: %d is not in [1, 1000]", o.Buckets)
	}
	if o.MaxCategories < 1 {
		return fmt.Errorf("max categories: %d is below 1", o.MaxCategories)
	}
	return nil
}

// Profile accumulates one dataset's statistics, column by column, in
// mergeable form: counts, moments (Welford, merged with Chan's formula),
// exact min and max, a KLL sketch per numeric column, bounded categorical
// counts per string column and per-value type counts. It is not safe for
// concurrent use; keep one per goroutine and Merge.
type Profile struct {
	cols  []Column
	opt   Options
	items int64
	st    []colState
}

// colState is one column's state. Every part is allocated on first use, so
// a column holds what its values need; the declared kind decides which
// parts the Observe methods feed.
type colState struct {
	present, missing int64
	types            TypeCounts

	// moments over the values that are numbers, Welford's on v − shift
	// (the first value), so a large offset costs no digits of the spread
	n             int64
	shift         float64
	mean, m2      float64
	sum, sumComp  float64 // Neumaier-compensated sum
	minV, maxV    float64
	kll           *KLL
	nTrue, nFalse int64
	cat           *categories
	feedsNumbers  bool // Integral, Fractional, Unknown
	feedsBools    bool // Boolean, Unknown
	feedsStrings  bool // String, Unknown: every value is a category
}

// NewProfile returns an empty profile of these columns. It panics on
// columns ValidateColumns refuses or options Validate refuses, a
// programming error: columns and options from users (a CSV header, a
// config) are validated first.
func NewProfile(cols []Column, o Options) *Profile {
	if err := ValidateColumns(cols); err != nil {
		panic("monitor.NewProfile: " + err.Error())
	}
	if err := o.Validate(); err != nil {
		panic("monitor.NewProfile: " + err.Error())
	}
	p := &Profile{cols: slices.Clone(cols), opt: o.withDefaults(), st: make([]colState, len(cols))}
	for i := range p.st {
		p.st[i].setKind(cols[i].Kind)
	}
	return p
}

// ValidateColumns reports columns a profile cannot render as a valid
// statistics.json: an empty or repeated name, an unknown kind.
func ValidateColumns(cols []Column) error {
	seen := make(map[string]int, len(cols))
	for i, c := range cols {
		if c.Name == "" {
			return fmt.Errorf("column %d: empty name", i)
		}
		if j, dup := seen[c.Name]; dup {
			return fmt.Errorf("column %d %q: name already used by column %d", i, c.Name, j)
		}
		seen[c.Name] = i
		if !c.Kind.valid() {
			return fmt.Errorf("column %d %q: kind %q is not Integral, Fractional, String, Boolean or Unknown", i, c.Name, c.Kind)
		}
	}
	return nil
}

func (c *colState) setKind(k Kind) {
	c.feedsNumbers = k == Integral || k == Fractional || k == Unknown
	c.feedsBools = k == Boolean || k == Unknown
	c.feedsStrings = k == String || k == Unknown
}

// Columns returns the profile's columns in order.
func (p *Profile) Columns() []Column { return slices.Clone(p.cols) }

// Options returns the options in force (defaults filled in).
func (p *Profile) Options() Options { return p.opt }

// AddRows counts n rows of the dataset (statistics.json's
// dataset.item_count), independent of any column's counts.
func (p *Profile) AddRows(n int) { p.items += int64(n) }

// ObserveMissing counts a missing value.
func (p *Profile) ObserveMissing(col int) { p.st[col].missing++ }

// ObserveFloat counts a number. NaN and ±Inf are missing: they have no
// place in a sketch or in JSON. A whole number counts as Integral in the
// type counts, any other as Fractional, so a float column carrying whole
// numbers agrees with an Integral baseline.
func (p *Profile) ObserveFloat(col int, v float64) {
	c := &p.st[col]
	if v-v != 0 { // NaN or ±Inf
		c.missing++
		return
	}
	c.present++
	if v == math.Trunc(v) {
		c.types.Integral++
	} else {
		c.types.Fractional++
	}
	if c.feedsNumbers {
		p.addNumber(c, v)
	}
}

// ObserveInt counts an integer (exact in the moments up to 2^53).
func (p *Profile) ObserveInt(col int, v int64) {
	c := &p.st[col]
	c.present++
	c.types.Integral++
	if c.feedsNumbers {
		p.addNumber(c, float64(v))
	}
}

// ObserveBool counts a boolean. A String column counts it as the category
// "true" or "false".
func (p *Profile) ObserveBool(col int, v bool) {
	c := &p.st[col]
	c.present++
	c.types.Boolean++
	switch {
	case c.feedsBools:
		if v {
			c.nTrue++
		} else {
			c.nFalse++
		}
	case c.feedsStrings:
		p.addCategory(c, strconv.FormatBool(v), 1)
	}
}

// ObserveString counts a typed string value (an empty string is a present
// value here; ObserveText is the CSV path where "" is missing). It counts
// as a String in the type counts without looking at its text.
func (p *Profile) ObserveString(col int, s string) {
	c := &p.st[col]
	c.present++
	c.types.String++
	if c.feedsStrings {
		p.addCategory(c, s, 1)
	}
}

// ObserveText counts a CSV cell. "" is missing. Otherwise the cell is
// classified as Deequ's DataType analyzer does, by the same patterns:
// Fractional ^[-+]? ?\d+(\.\d+|(\.\d+)?[Ee][-+]?\d+)$, Integral
// ^[-+]? ?\d+$, Boolean exactly "true" or "false", else String. Numbers go
// to the moments and the sketch of a numeric or Unknown column, booleans to
// a Boolean or Unknown column's counts, and every cell of a String or
// Unknown column to its categories (an Unknown column that infers to
// String reports every cell as Model Monitor does).
func (p *Profile) ObserveText(col int, s string) {
	c := &p.st[col]
	if s == "" {
		c.missing++
		return
	}
	c.present++
	class, neg, digits := classifyText(s)
	switch class {
	case Integral, Fractional:
		if class == Integral {
			c.types.Integral++
		} else {
			c.types.Fractional++
		}
		if c.feedsNumbers {
			// a range error still gives the nearest float; ±Inf is left out
			if v, err := strconv.ParseFloat(digits, 64); (err == nil || errors.Is(err, strconv.ErrRange)) && finite(v) {
				if neg {
					v = -v
				}
				p.addNumber(c, v)
			}
		}
	case Boolean:
		c.types.Boolean++
		if c.feedsBools {
			if s == "true" {
				c.nTrue++
			} else {
				c.nFalse++
			}
			return
		}
	default:
		c.types.String++
	}
	if c.feedsStrings {
		p.addCategory(c, s, 1)
	}
}

// classifyText applies Deequ's DataType patterns. For numbers it returns
// the sign and the text after the sign and optional space, which
// strconv.ParseFloat reads.
func classifyText(s string) (k Kind, neg bool, digits string) {
	if s == "true" || s == "false" {
		return Boolean, false, ""
	}
	i := 0
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		i++
	}
	if i < len(s) && s[i] == ' ' {
		i++
	}
	start := i
	i = skipDigits(s, i)
	if i == start {
		return String, false, ""
	}
	if i == len(s) {
		return Integral, neg, s[start:]
	}
	if s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return String, false, ""
		}
		i = j
		if i == len(s) {
			return Fractional, neg, s[start:]
		}
	}
	if s[i] != 'e' && s[i] != 'E' {
		return String, false, ""
	}
	i++
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	j := skipDigits(s, i)
	if j == i || j != len(s) {
		return String, false, ""
	}
	return Fractional, neg, s[start:]
}

func skipDigits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// addNumber folds a finite number into the moments, extremes and sketch.
func (p *Profile) addNumber(c *colState, v float64) {
	if c.n == 0 {
		c.minV, c.maxV, c.shift = v, v, v
	}
	if c.kll == nil { // first number, or a file's feature that had no distribution
		c.kll = NewKLL(p.opt.K, p.opt.C)
	}
	c.n++
	x := v - c.shift
	d := x - c.mean
	c.mean += d / float64(c.n)
	c.m2 += d * (x - c.mean)
	t := c.sum + v
	if math.Abs(c.sum) >= math.Abs(v) {
		c.sumComp += (c.sum - t) + v
	} else {
		c.sumComp += (v - t) + c.sum
	}
	c.sum = t
	if v < c.minV {
		c.minV = v
	}
	if v > c.maxV {
		c.maxV = v
	}
	c.kll.Update(v)
}

// categories counts distinct values exactly up to MaxCategories. A value
// first seen when the table is full is counted in overflow, not in any
// bucket (statistics.json then shows num_present − Σ bucket counts = the
// overflow), and from that moment a HyperLogLog (precision 14, about 0.8%
// standard error, 16 KiB) estimates the distinct count.
type categories struct {
	index         map[string]int32
	values        []string
	counts        []int64
	strBytes      int
	overflow      int64
	hll           *hyperloglog.Sketch
	distinctFloor float64 // a distinct_count read from a file that buckets do not explain
}

func (p *Profile) addCategory(c *colState, s string, n int64) {
	t := c.cat
	if t == nil {
		t = &categories{index: make(map[string]int32)}
		c.cat = t
	}
	if i, ok := t.index[s]; ok {
		t.counts[i] += n
		return
	}
	if len(t.values) < p.opt.MaxCategories {
		s = strings.Clone(s) // s may point into an Arrow buffer
		t.index[s] = int32(len(t.values))
		t.values = append(t.values, s)
		t.counts = append(t.counts, n)
		t.strBytes += len(s)
		return
	}
	if t.hll == nil {
		t.hll = hyperloglog.NewNoSparse()
		for _, v := range t.values {
			t.hll.Insert(bytesOf(v))
		}
	}
	t.hll.Insert(bytesOf(s))
	t.overflow += n
}

// bytesOf views s as bytes for hashing, without copying.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// distinct is the number of distinct values the table saw: exact until it
// overflowed, then the HyperLogLog's estimate.
func (t *categories) distinct() float64 {
	d := float64(len(t.values))
	if t.hll != nil {
		d = max(d, float64(t.hll.Estimate()))
	}
	return d
}

// Merge adds o's counts to p, as if p had seen o's values too. Columns
// must have the same names in the same order. A column whose kinds differ
// (parts of an Unknown column inferred differently by two workers) becomes
// Unknown and is inferred again from the merged type counts.
func (p *Profile) Merge(o *Profile) error {
	if len(o.cols) != len(p.cols) {
		return fmt.Errorf("merge profiles: %d columns into %d", len(o.cols), len(p.cols))
	}
	for i := range p.cols {
		if p.cols[i].Name != o.cols[i].Name {
			return fmt.Errorf("merge profiles: column %d is %q here and %q in the other", i, p.cols[i].Name, o.cols[i].Name)
		}
	}
	p.items += o.items
	for i := range p.st {
		if p.cols[i].Kind != o.cols[i].Kind {
			p.cols[i].Kind = Unknown
			p.st[i].setKind(Unknown)
		}
		p.mergeCol(&p.st[i], &o.st[i])
	}
	return nil
}

func (p *Profile) mergeCol(c, o *colState) {
	c.present += o.present
	c.missing += o.missing
	c.types.Integral += o.types.Integral
	c.types.Fractional += o.types.Fractional
	c.types.Boolean += o.types.Boolean
	c.types.String += o.types.String
	c.nTrue += o.nTrue
	c.nFalse += o.nFalse
	if o.n > 0 {
		if c.n == 0 {
			c.minV, c.maxV, c.shift = o.minV, o.maxV, o.shift
		}
		n := c.n + o.n
		d := (o.shift - c.shift) + (o.mean - c.mean) // difference of the means
		c.mean += d * float64(o.n) / float64(n)
		c.m2 += o.m2 + d*d*float64(c.n)*float64(o.n)/float64(n)
		c.n = n
		t := c.sum + o.sum
		if math.Abs(c.sum) >= math.Abs(o.sum) {
			c.sumComp += (c.sum - t) + o.sum
		} else {
			c.sumComp += (o.sum - t) + c.sum
		}
		c.sum = t
		c.sumComp += o.sumComp
		c.minV = min(c.minV, o.minV)
		c.maxV = max(c.maxV, o.maxV)
	}
	if o.kll != nil && o.kll.Count() > 0 {
		if c.kll == nil {
			c.kll = NewKLL(p.opt.K, p.opt.C)
		}
		c.kll.Merge(o.kll)
	}
	if t := o.cat; t != nil {
		for i, v := range t.values {
			p.addCategory(c, v, t.counts[i])
		}
		if c.cat == nil {
			c.cat = &categories{index: make(map[string]int32)}
		}
		c.cat.overflow += t.overflow
		c.cat.distinctFloor = max(c.cat.distinctFloor, t.distinctFloor)
		if t.hll != nil {
			if c.cat.hll == nil {
				c.cat.hll = hyperloglog.NewNoSparse()
				for _, v := range c.cat.values {
					c.cat.hll.Insert(bytesOf(v))
				}
			}
			if err := c.cat.hll.Merge(t.hll); err != nil {
				// both are precision-14 dense sketches made here
				panic("monitor: merge distinct-count sketches: " + err.Error())
			}
		}
	}
}

// Reset empties the profile for the next period and keeps its buffers.
func (p *Profile) Reset() {
	p.items = 0
	for i := range p.st {
		c := &p.st[i]
		kll, cat := c.kll, c.cat
		*c = colState{}
		c.setKind(p.cols[i].Kind)
		if kll != nil {
			kll.Reset()
			c.kll = kll
		}
		if cat != nil {
			clear(cat.index)
			*cat = categories{index: cat.index, values: cat.values[:0], counts: cat.counts[:0]}
			c.cat = cat
		}
	}
}

// MemoryBytes is what the profile holds: each sketch's buffers at their
// capacity, each category table's strings, slices and map slots (Go's
// maps keep about 8/7 slots per entry plus a control byte each), and the
// distinct-count sketch once a table overflows.
func (p *Profile) MemoryBytes() int {
	n := 64 + 16*cap(p.cols) + int(unsafe.Sizeof(colState{}))*cap(p.st)
	for i := range p.st {
		c := &p.st[i]
		n += len(p.cols[i].Name)
		if c.kll != nil {
			n += c.kll.MemoryBytes()
		}
		if t := c.cat; t != nil {
			slots := len(t.index) * 8 / 7
			n += 96 + t.strBytes + 16*cap(t.values) + 8*cap(t.counts) + slots*(16+4+1)
			if t.hll != nil {
				n += 1<<14 + 64
			}
		}
	}
	return n
}
