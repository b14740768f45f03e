package windowing

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// colReader reads one field's column of the current batch. It and its
// accessors are the one place that knows how each Arrow type becomes the
// value the aggregates fold: every path of addRow goes through them, so a
// new column type or a new rule for what counts as missing is one change
// here.
type colReader struct {
	kind byte // 'f' float64, 'i' int64, 'b' bool, 't' timestamp, 's' string
	// validity bitmap (nil when the column has no nulls) and its offset
	valid []byte
	voff  int
	// num is the column as the numbers the aggregates fold (nil for a
	// string column): a float column's own values, the others converted
	// once per batch into own. One slice for every kind keeps number small
	// enough to be inlined into the fold, which a switch per row is not.
	num []float64
	// own is the conversion buffer, kept from batch to batch so the fold
	// allocates nothing once it has seen its largest batch. It is scratch
	// the size of one batch, not window state: StateBytes leaves it out.
	own []float64
	f64 []float64
	i64 []int64
	ts  []arrow.Timestamp
	b   *array.Boolean
	s   *array.String
}

// newColReader resolves a's accessors once per batch, converting its
// numbers into own (the previous batch's buffer, reused). It refuses a
// type the decoder never builds.
func newColReader(a arrow.Array, own []float64) (colReader, error) {
	c := colReader{own: own}
	if a.NullN() > 0 {
		c.valid, c.voff = a.NullBitmapBytes(), a.Data().Offset()
	}
	n := a.Len()
	switch arr := a.(type) {
	case *array.Float64:
		c.kind, c.f64 = 'f', arr.Float64Values()
		c.num = c.f64
	case *array.Int64:
		c.kind, c.i64 = 'i', arr.Int64Values()
		c.num = c.convert(n, func(i int) float64 { return float64(c.i64[i]) })
	case *array.Timestamp:
		c.kind, c.ts = 't', arr.TimestampValues()
		c.num = c.convert(n, func(i int) float64 { return float64(c.ts[i]) / 1e9 })
	case *array.Boolean:
		c.kind, c.b = 'b', arr
		c.num = c.convert(n, func(i int) float64 {
			if arr.Value(i) {
				return 1
			}
			return 0
		})
	case *array.String:
		c.kind, c.s = 's', arr
	default:
		return c, fmt.Errorf("has unsupported type %s", a.DataType())
	}
	return c, nil
}

// convert fills own with the n values of at (a null row's slot holds
// whatever at gives: number checks validity first).
func (c *colReader) convert(n int, at func(i int) float64) []float64 {
	if cap(c.own) < n {
		c.own = make([]float64, n)
	}
	c.own = c.own[:n]
	for i := range c.own {
		c.own[i] = at(i)
	}
	return c.own
}

func (c *colReader) isNull(i int) bool {
	if c.valid == nil {
		return false
	}
	i += c.voff
	return c.valid[i>>3]&(1<<(i&7)) == 0
}

// number is row i as the aggregates fold it: a float as is, an int as a
// float, a timestamp in seconds, a bool as 0 or 1. ok is false when the
// value is missing (null, or a NaN float) and for a string column, which
// has no number (its aggregates count values, compare them or hash them).
func (c *colReader) number(i int) (x float64, ok bool) {
	if c.num == nil || c.isNull(i) {
		return 0, false
	}
	x = c.num[i]
	return x, x == x // NaN counts as missing
}

// equals reports whether row i is present and equals eq (count_if): a
// string column compares eq.s, the others compare their number with eq.f.
func (c *colReader) equals(i int, eq *equalsValue) bool {
	if c.kind == 's' {
		return !c.isNull(i) && c.s.Value(i) == eq.s
	}
	x, ok := c.number(i)
	return ok && x == eq.f
}

// distinctKey is row i as the bytes distinct_count hashes, in buf for
// numbers (their exact bits: an int or timestamp is not rounded through a
// float), or the string's own bytes without copying. ok is false when the
// value is missing.
func (c *colReader) distinctKey(i int, buf *[8]byte) (key []byte, ok bool) {
	if c.isNull(i) {
		return nil, false
	}
	var bits uint64
	switch c.kind {
	case 's':
		s := c.s.Value(i)
		return unsafe.Slice(unsafe.StringData(s), len(s)), true
	case 'f':
		if c.f64[i] != c.f64[i] {
			return nil, false // NaN counts as missing
		}
		bits = math.Float64bits(c.f64[i])
	case 'i':
		bits = uint64(c.i64[i])
	case 't':
		bits = uint64(c.ts[i])
	case 'b':
		if c.b.Value(i) {
			bits = 1
		}
	}
	for j := range buf {
		buf[j] = byte(bits >> (8 * j))
	}
	return buf[:], true
}
