package monitor

import (
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The benchmarks report ns per value in steady state (the sketch already
// at its size); allocs/op must be 0.

func BenchmarkKLLUpdate(b *testing.B) {
	vals := stream("normal", 1<<20, 1)
	s := NewKLL(0, 0)
	for _, v := range vals {
		s.Update(v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.Update(vals[i&(1<<20-1)])
	}
}

func BenchmarkProfileObserveFloat(b *testing.B) {
	vals := stream("normal", 1<<20, 1)
	p := NewProfile([]Column{{"x", Fractional}}, Options{})
	for _, v := range vals {
		p.ObserveFloat(0, v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.ObserveFloat(0, vals[i&(1<<20-1)])
	}
}

// BenchmarkObserveArrow: one op is one value of a 4096-row float64 column
// with 1% nulls, through the Arrow fast path.
func BenchmarkObserveArrow(b *testing.B) {
	const rows = 4096
	fb := array.NewFloat64Builder(memory.NewGoAllocator())
	for i, v := range stream("lognormal", rows, 2) {
		if i%100 == 0 {
			fb.AppendNull()
		} else {
			fb.Append(v)
		}
	}
	arr := fb.NewArray()
	defer arr.Release()
	p := NewProfile([]Column{{"x", Fractional}}, Options{})
	for range 300 {
		p.ObserveArrow(0, arr, nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += rows {
		p.ObserveArrow(0, arr, nil)
	}
}

// BenchmarkObserveArrowString: one op is one value of a 4096-row string
// column of 50 categories.
func BenchmarkObserveArrowString(b *testing.B) {
	const rows = 4096
	sb := array.NewStringBuilder(memory.NewGoAllocator())
	for i := range rows {
		sb.Append("category-" + strconv.Itoa(i%50))
	}
	arr := sb.NewArray()
	defer arr.Release()
	p := NewProfile([]Column{{"c", String}}, Options{})
	p.ObserveArrow(0, arr, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += rows {
		p.ObserveArrow(0, arr, nil)
	}
}

// BenchmarkObserveText: one op is one CSV cell of a numeric column of
// unknown type (classified, parsed, counted as a category until the table
// is full).
func BenchmarkObserveText(b *testing.B) {
	texts := make([]string, 1<<12)
	for i, v := range stream("normal", len(texts), 3) {
		texts[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	p := NewProfile([]Column{{"x", Unknown}}, Options{})
	for _, s := range texts {
		p.ObserveText(0, s)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.ObserveText(0, texts[i&(len(texts)-1)])
	}
}

func BenchmarkStatistics(b *testing.B) {
	p := NewProfile([]Column{{"x", Fractional}, {"c", String}}, Options{})
	for i, v := range stream("normal", 1_000_000, 4) {
		p.ObserveFloat(0, v)
		p.ObserveString(1, strconv.Itoa(i%40))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = p.Statistics()
	}
}
