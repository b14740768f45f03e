package monitor

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// ObserveArrow counts a column of a batch: every row, except those for
// which skip (if not nil) returns true; nulls are missing. Floats (64, 32)
// go through ObserveFloat, signed and unsigned integers through ObserveInt
// (a uint64 above 2^63−1 through ObserveFloat), booleans through
// ObserveBool, strings (and large strings) through ObserveString. The type
// switch happens once per call and the per-row loop reads the typed values
// in place, allocating nothing. A column of any other type counts its
// non-null rows as present String values, which is what they would be to
// a reader of the data as text, so data_type_check sees them.
func (p *Profile) ObserveArrow(col int, arr arrow.Array, skip func(row int) bool) {
	var valid []byte
	off := arr.Data().Offset()
	if arr.NullN() > 0 {
		valid = arr.NullBitmapBytes()
	}
	switch a := arr.(type) {
	case *array.Float64:
		observeFloats(p, col, a.Float64Values(), valid, off, skip)
	case *array.Float32:
		observeFloats(p, col, a.Float32Values(), valid, off, skip)
	case *array.Int64:
		observeInts(p, col, a.Int64Values(), valid, off, skip)
	case *array.Int32:
		observeInts(p, col, a.Int32Values(), valid, off, skip)
	case *array.Int16:
		observeInts(p, col, a.Int16Values(), valid, off, skip)
	case *array.Int8:
		observeInts(p, col, a.Int8Values(), valid, off, skip)
	case *array.Uint32:
		observeInts(p, col, a.Uint32Values(), valid, off, skip)
	case *array.Uint16:
		observeInts(p, col, a.Uint16Values(), valid, off, skip)
	case *array.Uint8:
		observeInts(p, col, a.Uint8Values(), valid, off, skip)
	case *array.Uint64:
		for i, v := range a.Uint64Values() {
			if !take(i, valid, off, skip, p, col) {
				continue
			}
			if v > 1<<63-1 {
				p.ObserveFloat(col, float64(v))
			} else {
				p.ObserveInt(col, int64(v))
			}
		}
	case *array.Boolean:
		for i := range a.Len() {
			if take(i, valid, off, skip, p, col) {
				p.ObserveBool(col, a.Value(i))
			}
		}
	case *array.String:
		for i := range a.Len() {
			if take(i, valid, off, skip, p, col) {
				p.ObserveString(col, a.Value(i))
			}
		}
	case *array.LargeString:
		for i := range a.Len() {
			if take(i, valid, off, skip, p, col) {
				p.ObserveString(col, a.Value(i))
			}
		}
	default:
		c := &p.st[col]
		for i := range arr.Len() {
			if take(i, valid, off, skip, p, col) {
				c.present++
				c.types.String++
			}
		}
	}
}

// take reports whether row i is observed, counting it as missing when it
// is null.
func take(i int, valid []byte, off int, skip func(int) bool, p *Profile, col int) bool {
	if skip != nil && skip(i) {
		return false
	}
	if valid != nil && !bitutil.BitIsSet(valid, off+i) {
		p.st[col].missing++
		return false
	}
	return true
}

func observeFloats[T float32 | float64](p *Profile, col int, vals []T, valid []byte, off int, skip func(int) bool) {
	for i, v := range vals {
		if take(i, valid, off, skip, p, col) {
			p.ObserveFloat(col, float64(v))
		}
	}
}

func observeInts[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32](p *Profile, col int, vals []T, valid []byte, off int, skip func(int) bool) {
	for i, v := range vals {
		if take(i, valid, off, skip, p, col) {
			p.ObserveInt(col, int64(v))
		}
	}
}

// KindOf is the Model Monitor type of an Arrow column's values: the one
// mapping the in-stream monitor and `streamscore monitor` share, so a
// baseline made from files and a period profiled in the stream agree.
func KindOf(t arrow.DataType) Kind {
	switch t.ID() {
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return Fractional
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return Integral
	case arrow.BOOL:
		return Boolean
	case arrow.STRING, arrow.LARGE_STRING:
		return String
	}
	return Unknown
}
