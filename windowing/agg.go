package windowing

import (
	"math"

	"github.com/axiomhq/hyperloglog"
)

// Pane state is a run of float64 words in one slab, laid out by a layout
// compiled from the features: only the statistics some feature needs are
// kept. Event times are stored bit-cast (math.Float64frombits) so that they
// stay exact int64 nanoseconds.
//
// Word 0 of every pane is its event count; words 1 and 2 its first and
// last event time, kept only when needed (sessions, seconds_since_last).
const (
	wCount = iota
	wFirstT
	wLastT
)

// needs of one field
const (
	needSum = 1 << iota
	needWelford
	needMin
	needMax
	needFirst
	needLast
)

// fieldLayout says where a field's statistics live in a pane (word offsets,
// -1 when not kept) and how to read the field from a batch.
type fieldLayout struct {
	name  string
	typ   FieldType
	needs int
	n     int // non-null values; always kept
	sum, m2, min, max,
	firstV, firstT, lastV, lastT int
}

// countIfLayout is one count_if feature: its word and operand.
type countIfLayout struct {
	field int // index into layout.fields
	word  int
	eq    equalsValue
}

// sketchLayout is one distinct_count or quantile feature (its sketches
// live beside the slab, one per pane).
type sketchLayout struct {
	field int
	q     float64
}

// featureOut says how to compute one output column from an accumulator.
type featureOut struct {
	agg   Agg
	field int // -1 when none
	aux   int // count_if index or sketch index
	q     float64
}

type layout struct {
	words    int
	times    bool // words wFirstT and wLastT are kept
	fields   []fieldLayout
	countIfs []countIfLayout
	hlls     []sketchLayout
	quants   []sketchLayout
	outs     []featureOut
}

func compileLayout(w *WindowSpec, s *Schema) *layout {
	l := &layout{words: 1, times: w.Kind == Session}
	for _, f := range w.Features {
		if f.Agg == AggSecondsSinceLast {
			l.times = true
		}
	}
	if l.times {
		l.words = 3
	}
	fieldIdx := func(name string) int {
		for i := range l.fields {
			if l.fields[i].name == name {
				return i
			}
		}
		t, _ := s.field(name)
		l.fields = append(l.fields, fieldLayout{name: name, typ: t})
		return len(l.fields) - 1
	}
	for _, f := range w.Features {
		out := featureOut{agg: f.Agg, field: -1, q: f.Quantile}
		if f.Field != "" {
			out.field = fieldIdx(f.Field)
		}
		var need int
		switch f.Agg {
		case AggSum, AggMean:
			need = needSum
		case AggStddev, AggVariance:
			need = needSum | needWelford
		case AggMin:
			need = needMin
		case AggMax:
			need = needMax
		case AggFirst:
			need = needFirst
		case AggLast:
			need = needLast
		case AggDelta:
			need = needFirst | needLast
		case AggRate:
			if out.field >= 0 {
				need = needFirst | needLast
			}
		case AggCountIf:
			eq, _ := parseEquals(l.fields[out.field].typ, f.Equals)
			out.aux = len(l.countIfs)
			l.countIfs = append(l.countIfs, countIfLayout{field: out.field, eq: eq})
		case AggDistinctCount:
			out.aux = len(l.hlls)
			l.hlls = append(l.hlls, sketchLayout{field: out.field})
		case AggQuantile:
			out.aux = len(l.quants)
			l.quants = append(l.quants, sketchLayout{field: out.field, q: f.Quantile})
		}
		if out.field >= 0 {
			l.fields[out.field].needs |= need
		}
		l.outs = append(l.outs, out)
	}
	for i := range l.fields {
		f := &l.fields[i]
		f.sum, f.m2, f.min, f.max = -1, -1, -1, -1
		f.firstV, f.firstT, f.lastV, f.lastT = -1, -1, -1, -1
		alloc := func() int { l.words++; return l.words - 1 }
		f.n = alloc()
		if f.needs&needSum != 0 {
			f.sum = alloc()
		}
		if f.needs&needWelford != 0 {
			f.m2 = alloc()
		}
		if f.needs&needMin != 0 {
			f.min = alloc()
		}
		if f.needs&needMax != 0 {
			f.max = alloc()
		}
		if f.needs&needFirst != 0 {
			f.firstV, f.firstT = alloc(), alloc()
		}
		if f.needs&needLast != 0 {
			f.lastV, f.lastT = alloc(), alloc()
		}
	}
	for i := range l.countIfs {
		l.countIfs[i].word = l.words
		l.words++
	}
	return l
}

func tbits(t int64) float64 { return math.Float64frombits(uint64(t)) }
func bitsT(w float64) int64 { return int64(math.Float64bits(w)) }

// addEventTime counts one event at time t into pane p (words of the slab).
func (l *layout) addEventTime(p []float64, t int64) {
	p[wCount]++
	if !l.times {
		return
	}
	if p[wCount] == 1 {
		p[wFirstT], p[wLastT] = tbits(t), tbits(t)
		return
	}
	if t < bitsT(p[wFirstT]) {
		p[wFirstT] = tbits(t)
	}
	if t >= bitsT(p[wLastT]) {
		p[wLastT] = tbits(t)
	}
}

// addValue folds one non-null value x of field f at time t into pane p.
// Ties in time keep the earliest arrival as first and the latest as last.
func (f *fieldLayout) addValue(p []float64, x float64, t int64) {
	p[f.n]++
	n := p[f.n]
	if f.m2 >= 0 {
		// Welford, with the running mean read off the sum so that a pane
		// keeps one word less.
		var before float64
		if n > 1 {
			before = p[f.sum] / (n - 1)
		}
		p[f.sum] += x
		p[f.m2] += (x - before) * (x - p[f.sum]/n)
	} else if f.sum >= 0 {
		p[f.sum] += x
	}
	if n == 1 {
		if f.min >= 0 {
			p[f.min] = x
		}
		if f.max >= 0 {
			p[f.max] = x
		}
		if f.firstV >= 0 {
			p[f.firstV], p[f.firstT] = x, tbits(t)
		}
		if f.lastV >= 0 {
			p[f.lastV], p[f.lastT] = x, tbits(t)
		}
		return
	}
	if f.min >= 0 && x < p[f.min] {
		p[f.min] = x
	}
	if f.max >= 0 && x > p[f.max] {
		p[f.max] = x
	}
	if f.firstV >= 0 && t < bitsT(p[f.firstT]) {
		p[f.firstV], p[f.firstT] = x, tbits(t)
	}
	if f.lastV >= 0 && t >= bitsT(p[f.lastT]) {
		p[f.lastV], p[f.lastT] = x, tbits(t)
	}
}

// mergePane folds pane src into dst (same layout). Time ties cannot occur
// between the panes merged (they cover disjoint event-time ranges), so the
// first/last rules need no tie-break here.
func (l *layout) mergePane(dst, src []float64) {
	if src[wCount] == 0 {
		return
	}
	if dst[wCount] == 0 {
		copy(dst[:l.words], src[:l.words])
		return
	}
	dst[wCount] += src[wCount]
	if l.times {
		if bitsT(src[wFirstT]) < bitsT(dst[wFirstT]) {
			dst[wFirstT] = src[wFirstT]
		}
		if bitsT(src[wLastT]) >= bitsT(dst[wLastT]) {
			dst[wLastT] = src[wLastT]
		}
	}
	for i := range l.fields {
		f := &l.fields[i]
		nb := src[f.n]
		if nb == 0 {
			continue
		}
		na := dst[f.n]
		if na == 0 {
			for _, w := range [...]int{f.n, f.sum, f.m2, f.min, f.max, f.firstV, f.firstT, f.lastV, f.lastT} {
				if w >= 0 {
					dst[w] = src[w]
				}
			}
			continue
		}
		n := na + nb
		dst[f.n] = n
		if f.m2 >= 0 { // Chan et al.'s parallel variance
			d := src[f.sum]/nb - dst[f.sum]/na
			dst[f.m2] += src[f.m2] + d*d*na*nb/n
		}
		if f.sum >= 0 {
			dst[f.sum] += src[f.sum]
		}
		if f.min >= 0 && src[f.min] < dst[f.min] {
			dst[f.min] = src[f.min]
		}
		if f.max >= 0 && src[f.max] > dst[f.max] {
			dst[f.max] = src[f.max]
		}
		if f.firstV >= 0 && bitsT(src[f.firstT]) < bitsT(dst[f.firstT]) {
			dst[f.firstV], dst[f.firstT] = src[f.firstV], src[f.firstT]
		}
		if f.lastV >= 0 && bitsT(src[f.lastT]) >= bitsT(dst[f.lastT]) {
			dst[f.lastV], dst[f.lastT] = src[f.lastV], src[f.lastT]
		}
	}
	for _, c := range l.countIfs {
		dst[c.word] += src[c.word]
	}
}

// newHLL returns an empty sparse HyperLogLog. Sketches are never reused
// after Reset, because a reset sketch keeps its dense form and would then
// estimate differently from a fresh one: a replay must give the same
// estimates whatever the pool held.
func newHLL() *hyperloglog.Sketch { return hyperloglog.New14() }
