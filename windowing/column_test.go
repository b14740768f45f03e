package windowing

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestColReaderKinds pins what each column kind folds as, through the one
// reader every aggregate uses: the number, the count_if comparison and the
// distinct_count key, with nulls, a NaN and a sliced column (its validity
// bitmap offset).
func TestColReaderKinds(t *testing.T) {
	mem := memory.NewGoAllocator()
	build := func(b array.Builder, add func()) arrow.Array {
		defer b.Release()
		add()
		b.AppendNull()
		a := b.NewArray()
		// Slice off the first value so the reader must apply the offset.
		s := array.NewSlice(a, 1, int64(a.Len()))
		a.Release()
		return s
	}
	fb := array.NewFloat64Builder(mem)
	ib := array.NewInt64Builder(mem)
	tb := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Nanosecond})
	bb := array.NewBooleanBuilder(mem)
	sb := array.NewStringBuilder(mem)
	const big = int64(1)<<60 + 1 // not exact as a float64
	cols := []struct {
		name  string
		a     arrow.Array
		x     []float64 // number per row; NaN: missing
		eq    equalsValue
		eqs   []bool
		bytes [][]byte // distinct key per row; nil: missing
	}{
		{"float", build(fb, func() { fb.AppendValues([]float64{9, 2.5, math.NaN()}, nil) }),
			[]float64{2.5, math.NaN(), math.NaN()}, equalsValue{f: 2.5}, []bool{true, false, false},
			[][]byte{le(math.Float64bits(2.5)), nil, nil}},
		{"int", build(ib, func() { ib.AppendValues([]int64{9, 3, big}, nil) }),
			[]float64{3, float64(big), math.NaN()}, equalsValue{f: 3}, []bool{true, false, false},
			[][]byte{le(3), le(uint64(big)), nil}},
		{"timestamp", build(tb, func() { tb.AppendValues([]arrow.Timestamp{9, 1_500_000_000, arrow.Timestamp(big)}, nil) }),
			[]float64{1.5, float64(big) / 1e9, math.NaN()}, equalsValue{f: 1.5}, []bool{true, false, false},
			[][]byte{le(1_500_000_000), le(uint64(big)), nil}},
		{"bool", build(bb, func() { bb.AppendValues([]bool{false, true, false}, nil) }),
			[]float64{1, 0, math.NaN()}, equalsValue{f: 0}, []bool{false, true, false},
			[][]byte{le(1), le(0), nil}},
		{"string", build(sb, func() { sb.AppendValues([]string{"x", "press-1", ""}, nil) }),
			[]float64{math.NaN(), math.NaN(), math.NaN()}, equalsValue{s: ""}, []bool{false, true, false},
			[][]byte{[]byte("press-1"), {}, nil}},
	}
	for _, tc := range cols {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.a.Release()
			c, err := newColReader(tc.a, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.a.Len() {
				x, ok := c.number(i)
				if want := tc.x[i]; ok != (want == want) || ok && x != want {
					t.Errorf("row %d: number = %v, %v; want %v", i, x, ok, want)
				}
				if got := c.equals(i, &tc.eq); got != tc.eqs[i] {
					t.Errorf("row %d: equals(%+v) = %v, want %v", i, tc.eq, got, tc.eqs[i])
				}
				var buf [8]byte
				key, ok := c.distinctKey(i, &buf)
				if want := tc.bytes[i]; ok != (want != nil) || string(key) != string(want) {
					t.Errorf("row %d: distinctKey = %x, %v; want %x", i, key, ok, want)
				}
			}
		})
	}
	dec := array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 5, Scale: 2})
	defer dec.Release()
	a := dec.NewArray()
	defer a.Release()
	if _, err := newColReader(a, nil); err == nil {
		t.Error("newColReader accepted a decimal column")
	}
}

// The conversion buffer of a numeric column is reused batch after batch:
// once it has held the largest batch, resolving a column allocates nothing.
func TestColReaderReusesItsBuffer(t *testing.T) {
	mem := memory.NewGoAllocator()
	ints := func(v ...int64) arrow.Array {
		b := array.NewInt64Builder(mem)
		defer b.Release()
		b.AppendValues(v, nil)
		return b.NewArray()
	}
	big, small := ints(1, 2, 3), ints(7, 8)
	defer big.Release()
	defer small.Release()
	c, err := newColReader(big, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := &c.own[0]
	if c, err = newColReader(small, c.own); err != nil {
		t.Fatal(err)
	}
	if &c.own[0] != buf {
		t.Error("a smaller batch got a new buffer")
	}
	for i, want := range []float64{7, 8} {
		if x, ok := c.number(i); !ok || x != want {
			t.Errorf("row %d of the second batch: %v, %v; want %v", i, x, ok, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { c, _ = newColReader(small, c.own) }); n != 0 {
		t.Errorf("resolving a column allocates %v times", n)
	}
}

// le is x as the 8 little-endian bytes distinct_count hashes.
func le(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }
