package sinks

import (
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Column names of the result record the pipeline hands to sinks.
const (
	ColEntity       = "entity"
	ColWindowStart  = "window_start"
	ColWindowEnd    = "window_end"
	ColUpdate       = "update"
	ColScore        = "score"
	ColModelVersion = "model_version"
	ColFallback     = "fallback"
	ColEventTime    = "event_time"
	// ColPartial flags a row holding only part of its window's events
	// (the windowing package's partial column: "evicted" when its key was
	// evicted with the window open, "late" for late events of a window
	// whose key's earlier state is gone); "" or absent for ordinary rows.
	// Partial rows are written to S3 for the readers' rule, but never
	// replace a feature-table item or count toward an alert.
	ColPartial = "partial"
	// ColPartialID names the part a partial row holds (the shard and the
	// source position of its first event): readers group and deduplicate
	// partial rows by it. Null for ordinary rows.
	ColPartialID = "partial_id"
	// Columns sinks add to what they write.
	ColResultID       = "result_id"
	ColProcessingTime = "processing_time"
)

// dropped are input columns that hold process-local bookkeeping: offsets are
// only meaningful inside one process, so they must not reach the data lake.
func dropped(name string) bool {
	return strings.HasPrefix(name, "_") || name == "offset_first" || name == "offset_last"
}

// isFeature reports whether a column of the written result is a feature:
// none of the key, time, score and bookkeeping columns.
func isFeature(name string) bool {
	switch name {
	case ColResultID, ColEntity, ColWindowStart, ColWindowEnd, ColUpdate, ColModelVersion, ColFallback, ColEventTime, ColProcessingTime, ColPartial, ColPartialID:
		return false
	}
	return !isScore(name) && !isChallengerScore(name) && name != ColChallengerModelVersion && !dropped(name)
}

// isScore reports whether a column holds a model output: "score", or
// "score_0".."score_k" for multi-output models.
func isScore(name string) bool {
	if name == ColScore {
		return true
	}
	rest, ok := strings.CutPrefix(name, "score_")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// view is typed access to one result record, built once per batch.
type view struct {
	n        int
	entity   stringCol
	ws, we   timeCol
	model    stringCol // may be nil: ""
	fallback *array.Boolean
	update   *array.Boolean
	partial  stringCol // may be nil: no partial rows
	event    timeCol
	scores   []floatCol
	features []floatCol // numeric features (the feature table and alert context)
}

type stringCol interface {
	Value(i int) string
	IsNull(i int) bool
}

type timeCol struct {
	a    *array.Timestamp
	unit arrow.TimeUnit
}

func (c timeCol) ok() bool { return c.a != nil }

// nanos returns the value in Unix nanoseconds.
func (c timeCol) nanos(i int) int64 {
	v := int64(c.a.Value(i))
	switch c.unit {
	case arrow.Second:
		return v * 1e9
	case arrow.Millisecond:
		return v * 1e6
	case arrow.Microsecond:
		return v * 1e3
	}
	return v
}

// millis returns the value in Unix milliseconds, rounded down (before
// 1970 too, where integer division would round up).
func (c timeCol) millis(i int) int64 { return floorDiv(c.nanos(i), 1e6) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func (c timeCol) time(i int) time.Time { return time.Unix(0, c.nanos(i)).UTC() }

type floatCol struct {
	name string
	arr  arrow.Array
}

// value returns the column's value as float64 and whether it is present.
func (c floatCol) value(i int) (float64, bool) {
	if c.arr.IsNull(i) {
		return 0, false
	}
	switch a := c.arr.(type) {
	case *array.Float64:
		return a.Value(i), true
	case *array.Float32:
		return float64(a.Value(i)), true
	case *array.Int64:
		return float64(a.Value(i)), true
	case *array.Int32:
		return float64(a.Value(i)), true
	case *array.Uint64:
		return float64(a.Value(i)), true
	case *array.Uint32:
		return float64(a.Value(i)), true
	case *array.Boolean:
		if a.Value(i) {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func numeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.FLOAT64, arrow.FLOAT32, arrow.INT64, arrow.INT32, arrow.UINT64, arrow.UINT32, arrow.BOOL:
		return true
	}
	return false
}

// newView checks rec against the result layout and returns typed access.
func newView(rec arrow.RecordBatch) (*view, error) {
	v := &view{n: int(rec.NumRows())}
	sc := rec.Schema()
	for i, f := range sc.Fields() {
		col := rec.Column(i)
		switch {
		case f.Name == ColEntity:
			s, ok := col.(stringCol)
			if !ok || (f.Type.ID() != arrow.STRING && f.Type.ID() != arrow.LARGE_STRING) {
				return nil, &SchemaError{Column: f.Name, Reason: "must be string, is " + f.Type.String()}
			}
			v.entity = s
		case f.Name == ColWindowStart, f.Name == ColWindowEnd, f.Name == ColEventTime:
			ts, ok := col.(*array.Timestamp)
			if !ok {
				return nil, &SchemaError{Column: f.Name, Reason: "must be a timestamp, is " + f.Type.String()}
			}
			tc := timeCol{a: ts, unit: f.Type.(*arrow.TimestampType).Unit}
			switch f.Name {
			case ColWindowStart:
				v.ws = tc
			case ColWindowEnd:
				v.we = tc
			default:
				v.event = tc
			}
		case f.Name == ColModelVersion, f.Name == ColPartial:
			s, ok := col.(stringCol)
			if !ok || (f.Type.ID() != arrow.STRING && f.Type.ID() != arrow.LARGE_STRING) {
				return nil, &SchemaError{Column: f.Name, Reason: "must be string, is " + f.Type.String()}
			}
			if f.Name == ColPartial {
				v.partial = s
			} else {
				v.model = s
			}
		case f.Name == ColFallback, f.Name == ColUpdate:
			b, ok := col.(*array.Boolean)
			if !ok {
				return nil, &SchemaError{Column: f.Name, Reason: "must be bool, is " + f.Type.String()}
			}
			if f.Name == ColFallback {
				v.fallback = b
			} else {
				v.update = b
			}
		case isScore(f.Name):
			if f.Type.ID() != arrow.FLOAT64 && f.Type.ID() != arrow.FLOAT32 {
				return nil, &SchemaError{Column: f.Name, Reason: "must be float64 or float32, is " + f.Type.String()}
			}
			v.scores = append(v.scores, floatCol{name: f.Name, arr: col})
		case dropped(f.Name):
		default:
			if numeric(f.Type) {
				v.features = append(v.features, floatCol{name: f.Name, arr: col})
			}
		}
	}
	switch {
	case v.entity == nil:
		return nil, &SchemaError{Column: ColEntity, Reason: "missing"}
	case !v.ws.ok():
		return nil, &SchemaError{Column: ColWindowStart, Reason: "missing"}
	case !v.we.ok():
		return nil, &SchemaError{Column: ColWindowEnd, Reason: "missing"}
	}
	return v, nil
}

func (v *view) modelVersion(i int) string {
	if v.model == nil || v.model.IsNull(i) {
		return ""
	}
	return v.model.Value(i)
}

func (v *view) isFallback(i int) bool {
	return v.fallback != nil && v.fallback.IsValid(i) && v.fallback.Value(i)
}

func (v *view) isUpdate(i int) bool {
	return v.update != nil && v.update.IsValid(i) && v.update.Value(i)
}

// isPartial reports whether row i holds only part of its window's events.
func (v *view) isPartial(i int) bool {
	return v.partial != nil && !v.partial.IsNull(i) && v.partial.Value(i) != ""
}

// score returns the named score column's value for row i.
func (v *view) score(name string, i int) (float64, bool) {
	for _, c := range v.scores {
		if c.name == name {
			return c.value(i)
		}
	}
	return 0, false
}
