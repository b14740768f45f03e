package monitor

import (
	"math"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestObserveArrowTypes(t *testing.T) {
	mem := memory.NewGoAllocator()
	valid := []bool{true, false, true, true}
	f64 := array.NewFloat64Builder(mem)
	f64.AppendValues([]float64{1.5, 99, math.NaN(), 2}, valid)
	f32 := array.NewFloat32Builder(mem)
	f32.AppendValues([]float32{1.5, 99, 3, 2}, valid)
	i64 := array.NewInt64Builder(mem)
	i64.AppendValues([]int64{-1, 99, 3, 1 << 50}, valid)
	i32 := array.NewInt32Builder(mem)
	i32.AppendValues([]int32{-1, 99, 3, 7}, valid)
	u64 := array.NewUint64Builder(mem)
	u64.AppendValues([]uint64{1, 99, 3, math.MaxUint64}, valid)
	bl := array.NewBooleanBuilder(mem)
	bl.AppendValues([]bool{true, true, false, true}, valid)
	st := array.NewStringBuilder(mem)
	st.AppendValues([]string{"a", "zz", "b", "a"}, valid)
	d32 := array.NewDate32Builder(mem)
	d32.AppendValues([]arrow.Date32{1, 2, 3, 4}, valid)
	arrays := []arrow.Array{f64.NewArray(), f32.NewArray(), i64.NewArray(), i32.NewArray(), u64.NewArray(), bl.NewArray(), st.NewArray(), d32.NewArray()}
	cols := []Column{{"f64", Fractional}, {"f32", Fractional}, {"i64", Integral}, {"i32", Integral}, {"u64", Integral},
		{"bool", Boolean}, {"str", String}, {"date", String}}
	p := NewProfile(cols, Options{})
	skipLast := func(row int) bool { return row == 3 }
	for i, a := range arrays {
		p.ObserveArrow(i, a, nil)
		p.ObserveArrow(i, a, skipLast)
		a.Release()
	}
	s := p.Statistics()
	num := func(i int) *NumericalStatistics { return s.Features[i].NumericalStatistics }
	// each array seen twice, the second time without its last row: row 1
	// is null (missing), the NaN of the float64 array is missing too
	if c := num(0).Common; c != (Common{NumPresent: 3, NumMissing: 4}) || num(0).Sum != 1.5*2+2 {
		t.Errorf("float64: %+v sum %g", c, num(0).Sum)
	}
	if c := num(1).Common; c != (Common{NumPresent: 5, NumMissing: 2}) || num(1).Sum != 1.5*2+3*2+2 {
		t.Errorf("float32: %+v sum %g", c, num(1).Sum)
	}
	if num(2).Sum != (-1+3)*2+1<<50 || num(3).Max != 7 || num(3).Min != -1 {
		t.Errorf("ints: sum %g, min %g max %g", num(2).Sum, num(3).Min, num(3).Max)
	}
	if num(4).Max != math.MaxUint64 || *s.Features[4].TypeCounts != (TypeCounts{Integral: 5}) {
		t.Errorf("uint64 max %g, types %+v", num(4).Max, *s.Features[4].TypeCounts)
	}
	if b := s.Features[5].StringStatistics.Distribution.Categorical.Buckets; !slices.Equal(b, []CategoricalBucket{{"true", 3}, {"false", 2}}) {
		t.Errorf("bool buckets %v", b)
	}
	if b := s.Features[6].StringStatistics.Distribution.Categorical.Buckets; !slices.Equal(b, []CategoricalBucket{{"a", 3}, {"b", 2}}) {
		t.Errorf("string buckets %v", b)
	}
	if f := s.Features[7]; f.StringStatistics.Common != (Common{NumPresent: 5, NumMissing: 2}) || f.TypeCounts.String != 5 {
		t.Errorf("date column %+v %+v", f.StringStatistics.Common, *f.TypeCounts)
	}
}

func TestObserveArrowSlicedArray(t *testing.T) {
	b := array.NewFloat64Builder(memory.NewGoAllocator())
	b.AppendValues([]float64{10, 20, 30, 40, 50, 60}, []bool{true, true, false, true, false, true})
	whole := b.NewArray()
	defer whole.Release()
	part := array.NewSlice(whole, 2, 5) // 30 (null), 40, 50 (null)
	defer part.Release()
	p := NewProfile([]Column{{"x", Fractional}}, Options{})
	p.ObserveArrow(0, part, nil)
	ns := p.Statistics().Features[0].NumericalStatistics
	if ns.Common != (Common{NumPresent: 1, NumMissing: 2}) || ns.Sum != 40 {
		t.Fatalf("slice [2:5]: %+v sum %g, want one present (40) and two missing", ns.Common, ns.Sum)
	}
}

func TestObserveArrowAllocatesNothing(t *testing.T) {
	mem := memory.NewGoAllocator()
	fb := array.NewFloat64Builder(mem)
	sb := array.NewStringBuilder(mem)
	for i := range 1024 {
		fb.Append(float64(i % 113))
		if i%10 == 0 {
			sb.AppendNull()
		} else {
			sb.Append([]string{"red", "green", "blue"}[i%3])
		}
	}
	fa, sa := fb.NewArray(), sb.NewArray()
	defer fa.Release()
	defer sa.Release()
	p := NewProfile([]Column{{"x", Fractional}, {"c", String}}, Options{})
	for range 100 {
		p.ObserveArrow(0, fa, nil)
		p.ObserveArrow(1, sa, nil)
	}
	skip := func(row int) bool { return row%7 == 0 }
	allocs := testing.AllocsPerRun(200, func() {
		p.ObserveArrow(0, fa, skip)
		p.ObserveArrow(1, sa, nil)
	})
	if allocs != 0 {
		t.Fatalf("%g allocations per batch", allocs)
	}
}
