package pipeline

import (
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// resultBuilder turns a window's feature batch and its scores into the
// result rows the sinks take (sinks package doc: entity, window_start,
// window_end, features, update, score[_k], model_version, fallback). The
// feature columns are shared with the feature batch, not copied.
type resultBuilder struct {
	mem      memory.Allocator
	outputs  int
	shadow   int // challenger outputs, 0 without a challenger
	schema   *arrow.Schema
	nFeature int
	// scratch builders, reused batch after batch
	scores   []*array.Float64Builder
	shadows  []*array.Float64Builder
	versions *array.StringBuilder
	shadowV  *array.StringBuilder
	fallback *array.BooleanBuilder
	// partID is set when the features flag partial rows: each such row
	// gets the source position its part starts at, so readers can group
	// and deduplicate parts (ordinary rows get null).
	partID               *array.StringBuilder
	colPartial, colFirst int
}

func newResultBuilder(features *arrow.Schema, outputs, shadow int, mem memory.Allocator) *resultBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := &resultBuilder{mem: mem, outputs: outputs, shadow: shadow}
	fields := make([]arrow.Field, 0, features.NumFields()+outputs+shadow+4)
	for i, f := range features.Fields() {
		switch {
		case i == 0:
			f.Name = sinks.ColEntity // windowing names it after the schema's entity field
		case f.Name == windowing.ColOffsetFirst || f.Name == windowing.ColOffsetLast:
			continue // process-local bookkeeping
		}
		fields = append(fields, f)
	}
	b.nFeature = features.NumFields()
	for _, n := range scoreNames("score", outputs) {
		fields = append(fields, arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
		b.scores = append(b.scores, array.NewFloat64Builder(mem))
	}
	fields = append(fields,
		arrow.Field{Name: sinks.ColModelVersion, Type: arrow.BinaryTypes.String},
		arrow.Field{Name: sinks.ColFallback, Type: arrow.FixedWidthTypes.Boolean})
	b.versions = array.NewStringBuilder(mem)
	b.fallback = array.NewBooleanBuilder(mem)
	if p, f := features.FieldIndices(windowing.ColPartial), features.FieldIndices(windowing.ColOffsetFirst); len(p) > 0 && len(f) > 0 {
		fields = append(fields, arrow.Field{Name: sinks.ColPartialID, Type: arrow.BinaryTypes.String, Nullable: true})
		b.partID, b.colPartial, b.colFirst = array.NewStringBuilder(mem), p[0], f[0]
	}
	if shadow > 0 {
		for _, n := range scoreNames(sinks.ColChallengerScore, shadow) {
			fields = append(fields, arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
			b.shadows = append(b.shadows, array.NewFloat64Builder(mem))
		}
		fields = append(fields, arrow.Field{Name: sinks.ColChallengerModelVersion, Type: arrow.BinaryTypes.String})
		b.shadowV = array.NewStringBuilder(mem)
	}
	b.schema = arrow.NewSchema(fields, nil)
	return b
}

func scoreNames(base string, n int) []string {
	if n == 1 {
		return []string{base}
	}
	out := make([]string, n)
	for k := range n {
		out[k] = base + "_" + strconv.Itoa(k)
	}
	return out
}

// build returns the result batch; the caller releases it. partID names
// the part a partial row holds from the offset of its first event.
func (b *resultBuilder) build(feat arrow.RecordBatch, res *scorer.Result, partID func(offset uint64) string) arrow.RecordBatch {
	n := int(feat.NumRows())
	cols := make([]arrow.Array, 0, b.schema.NumFields())
	for i := range b.nFeature {
		name := feat.Schema().Field(i).Name
		if name == windowing.ColOffsetFirst || name == windowing.ColOffsetLast {
			continue
		}
		c := feat.Column(i)
		c.Retain()
		cols = append(cols, c)
	}
	for k, sb := range b.scores {
		sb.Reserve(n)
		for i := range n {
			if v := res.Scores[k][i]; math.IsNaN(v) {
				sb.UnsafeAppendBoolToBitmap(false)
			} else {
				sb.UnsafeAppend(v)
			}
		}
		cols = append(cols, sb.NewArray())
	}
	b.versions.Reserve(n)
	b.fallback.Reserve(n)
	for i := range n {
		b.versions.Append(res.VersionOf(i))
		b.fallback.UnsafeAppend(res.Source[i] == scorer.SourceFallback)
	}
	cols = append(cols, b.versions.NewArray(), b.fallback.NewArray())
	if b.partID != nil {
		partial := feat.Column(b.colPartial).(*array.String)
		first := feat.Column(b.colFirst).(*array.Uint64)
		for i := range n {
			if partial.IsNull(i) || partial.Value(i) == "" {
				b.partID.AppendNull()
			} else {
				b.partID.Append(partID(first.Value(i)))
			}
		}
		cols = append(cols, b.partID.NewArray())
	}
	if b.shadow > 0 {
		sh := res.Shadow
		for k, sb := range b.shadows {
			sb.Reserve(n)
			for i := range n {
				if sh == nil || sh.Len() != n || math.IsNaN(sh.Scores[k][i]) {
					sb.UnsafeAppendBoolToBitmap(false)
				} else {
					sb.UnsafeAppend(sh.Scores[k][i])
				}
			}
			cols = append(cols, sb.NewArray())
		}
		for i := range n {
			if sh == nil || sh.Len() != n {
				b.shadowV.AppendNull()
			} else {
				b.shadowV.Append(sh.VersionOf(i))
			}
		}
		cols = append(cols, b.shadowV.NewArray())
	}
	rec := array.NewRecordBatch(b.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

func (b *resultBuilder) release() {
	for _, sb := range b.scores {
		sb.Release()
	}
	for _, sb := range b.shadows {
		sb.Release()
	}
	b.versions.Release()
	b.fallback.Release()
	if b.partID != nil {
		b.partID.Release()
	}
	if b.shadowV != nil {
		b.shadowV.Release()
	}
}
