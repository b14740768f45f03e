package scorer

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// CheckSchema reports whether a batch with this schema can feed a model with
// these features: every feature must be present, with a numeric type
// (float64, float32, int64 or int32; nulls are missing values). The
// pipeline calls it at start-up so a missing feature fails there, not at
// scoring time.
func CheckSchema(schema *arrow.Schema, features []string) error {
	var missing []string
	for _, name := range features {
		idx := schema.FieldIndices(name)
		if len(idx) == 0 {
			missing = append(missing, name)
			continue
		}
		if len(idx) > 1 {
			return fmt.Errorf("feature %q appears %d times in the batch schema", name, len(idx))
		}
		if !supportedType(schema.Field(idx[0]).Type) {
			return fmt.Errorf("feature %q has type %s, want float64, float32, int64 or int32", name, schema.Field(idx[0]).Type)
		}
	}
	if len(missing) > 0 {
		return &MissingFeaturesError{Missing: missing}
	}
	return nil
}

func supportedType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.FLOAT64, arrow.FLOAT32, arrow.INT64, arrow.INT32:
		return true
	}
	return false
}

// bindColumns points r.cols at rec's feature columns in model order, as
// float64 with NaN for nulls. Non-null float64 columns are used in place;
// the rest are converted into r's reusable buffers.
func (r *Result) bindColumns(rec arrow.RecordBatch, features []string) ([][]float64, error) {
	n := int(rec.NumRows())
	nf := len(features)
	if cap(r.cols) < nf {
		r.cols = make([][]float64, nf)
		r.buf = make([][]float64, nf)
	}
	r.cols, r.buf = r.cols[:nf], r.buf[:nf]
	idx, err := r.bind.indices(rec.Schema(), features)
	if err != nil {
		return nil, err
	}
	for j, name := range features {
		col := rec.Column(idx[j])
		if c, ok := col.(*array.Float64); ok && c.NullN() == 0 {
			r.cols[j] = c.Float64Values()
			continue
		}
		if cap(r.buf[j]) < n {
			r.buf[j] = make([]float64, n, n+n/4)
		}
		b := r.buf[j][:n]
		switch c := col.(type) {
		case *array.Float64:
			for i, v := range c.Float64Values() {
				b[i] = v
			}
		case *array.Float32:
			for i, v := range c.Float32Values() {
				b[i] = float64(v)
			}
		case *array.Int64:
			for i, v := range c.Int64Values() {
				b[i] = float64(v)
			}
		case *array.Int32:
			for i, v := range c.Int32Values() {
				b[i] = float64(v)
			}
		default:
			return nil, fmt.Errorf("feature %q has type %s, want float64, float32, int64 or int32", name, col.DataType())
		}
		if col.NullN() > 0 {
			for i := range n {
				if col.IsNull(i) {
					b[i] = math.NaN()
				}
			}
		}
		r.cols[j] = b
	}
	return r.cols, nil
}

// binding caches where each model feature sits in a batch schema, so that
// batches sharing a schema (the common case) cost no lookups or allocations.
type binding struct {
	schema   *arrow.Schema
	features []string // the model's slice, compared by identity
	idx      []int
}

func (b *binding) indices(schema *arrow.Schema, features []string) ([]int, error) {
	if b.schema != nil && len(b.features) == len(features) && (len(features) == 0 || &b.features[0] == &features[0]) {
		if b.schema == schema {
			return b.idx, nil
		}
		// A new schema object (windowing may build one per batch): the
		// binding still holds if every feature sits where it did.
		same := true
		for j, i := range b.idx {
			if i >= schema.NumFields() || schema.Field(i).Name != features[j] {
				same = false
				break
			}
		}
		if same {
			b.schema = schema
			return b.idx, nil
		}
	}
	idx := make([]int, len(features))
	for j, name := range features {
		fi := schema.FieldIndices(name)
		if len(fi) != 1 {
			if len(fi) == 0 {
				return nil, &MissingFeaturesError{Missing: []string{name}}
			}
			return nil, fmt.Errorf("feature %q appears %d times in the batch", name, len(fi))
		}
		idx[j] = fi[0]
	}
	b.schema, b.features, b.idx = schema, features, idx
	return idx, nil
}
