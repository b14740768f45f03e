package sinks

// The ground-truth layout: the Arrow batch the pipeline hands the
// ground-truth sink, and the JSON line each label becomes.

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Columns of a ground-truth batch, as GroundTruthBuilder lays them out.
const (
	// GTColEntity is the label's entity (string).
	GTColEntity = ColEntity
	// GTColTime is the label's event time (timestamp, any unit).
	GTColTime = "time"
	// GTColData is the label as AppendGroundTruthData wrote it (string).
	GTColData = "data"
	// GTColEventID is the inference id the label judges, as
	// AppendInferenceID wrote it, or "" (string).
	GTColEventID = "event_id"
)

// Dead-letter reasons of label records the pipeline refuses.
const (
	// ReasonBadLabel: the label field is missing, null, or not a bool, a
	// finite number or a string holding one.
	ReasonBadLabel = "bad_label"
	// ReasonBadInferenceID: the inference-id field holds something other
	// than a result_id (32 hex digits).
	ReasonBadInferenceID = "bad_inference_id"
)

// gtTimeLayout is a label's time in its line: RFC 3339, milliseconds, UTC.
const gtTimeLayout = "2006-01-02T15:04:05.000Z"

var gtSchema = arrow.NewSchema([]arrow.Field{
	{Name: GTColEntity, Type: arrow.BinaryTypes.String},
	{Name: GTColTime, Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
	{Name: GTColData, Type: arrow.BinaryTypes.String},
	{Name: GTColEventID, Type: arrow.BinaryTypes.String},
}, nil)

// GroundTruthBuilder builds the batches the ground-truth sink takes. Its
// builders keep their buffers between batches, so appending allocates
// nothing per label once they have grown. Not safe for concurrent use.
type GroundTruthBuilder struct {
	rb             *array.RecordBuilder
	entity, data   *array.StringBuilder
	eventID        *array.StringBuilder
	eventTimeNanos *array.TimestampBuilder
}

// NewGroundTruthBuilder returns a builder; mem may be nil for the default
// Go allocator.
func NewGroundTruthBuilder(mem memory.Allocator) *GroundTruthBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	rb := array.NewRecordBuilder(mem, gtSchema)
	return &GroundTruthBuilder{rb: rb, entity: rb.Field(0).(*array.StringBuilder), eventTimeNanos: rb.Field(1).(*array.TimestampBuilder),
		data: rb.Field(2).(*array.StringBuilder), eventID: rb.Field(3).(*array.StringBuilder)}
}

// Append adds one label: its entity, event time (Unix nanoseconds), data
// (AppendGroundTruthData's) and inference id (AppendInferenceID's, or
// empty).
func (b *GroundTruthBuilder) Append(entity string, eventTimeNanos int64, data, eventID []byte) {
	b.entity.Append(entity)
	b.eventTimeNanos.Append(arrow.Timestamp(eventTimeNanos))
	b.data.BinaryBuilder.Append(data)
	b.eventID.BinaryBuilder.Append(eventID)
}

// Len is the number of labels appended since the last NewRecordBatch.
func (b *GroundTruthBuilder) Len() int { return b.entity.Len() }

// NewRecordBatch returns the labels appended so far and starts a new
// batch. The caller releases it.
func (b *GroundTruthBuilder) NewRecordBatch() arrow.RecordBatch { return b.rb.NewRecordBatch() }

// Release frees the builders.
func (b *GroundTruthBuilder) Release() { b.rb.Release() }

// AppendGroundTruthData appends a label's text in the ground truth: v in
// Go's shortest form (strconv 'g', -1), so true is "1", false "0", and a
// regression target keeps every digit it has; -0 is "0", so one label has
// one text. Model Monitor's CSV encoding holds the label alone, which this
// is. NaN and infinities are refused: no metric can be computed from them.
func AppendGroundTruthData(dst []byte, v float64) ([]byte, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dst, fmt.Errorf("%v is not a finite number", v)
	}
	if v == 0 {
		v = 0 // -0 too
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64), nil
}

// AppendInferenceID appends id, a result_id (ResultID: 32 hex digits, of
// either case), as its canonical 32 lowercase hex digits. Anything else is
// an error: such a label could never be joined to a prediction.
func AppendInferenceID(dst []byte, id string) ([]byte, error) {
	if len(id) != 2*resultIDBytes {
		return dst, fmt.Errorf("%q is not a result_id: want %d hex digits, got %d characters", truncateForError(id), 2*resultIDBytes, len(id))
	}
	n := len(dst)
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			c += 'a' - 'A'
		default:
			return dst[:n], fmt.Errorf("%q is not a result_id: %q at %d is not a hex digit", truncateForError(id), id[i], i)
		}
		dst = append(dst, c)
	}
	return dst, nil
}

// truncateForError keeps an error readable when a field holds a novel.
func truncateForError(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}

// gtView reads a ground-truth batch's columns.
type gtView struct {
	entity, data, id stringCol
	ts               timeCol
}

// newGTView checks rec against GroundTruthBuilder's layout.
func newGTView(rec arrow.RecordBatch) (*gtView, error) {
	v := &gtView{}
	for i, f := range rec.Schema().Fields() {
		col := rec.Column(i)
		switch f.Name {
		case GTColEntity, GTColData, GTColEventID:
			s, ok := col.(stringCol)
			if !ok || (f.Type.ID() != arrow.STRING && f.Type.ID() != arrow.LARGE_STRING) {
				return nil, &SchemaError{Column: f.Name, Reason: "must be string, is " + f.Type.String()}
			}
			switch f.Name {
			case GTColEntity:
				v.entity = s
			case GTColData:
				v.data = s
			default:
				v.id = s
			}
		case GTColTime:
			ts, ok := col.(*array.Timestamp)
			if !ok {
				return nil, &SchemaError{Column: f.Name, Reason: "must be a timestamp, is " + f.Type.String()}
			}
			v.ts = timeCol{a: ts, unit: f.Type.(*arrow.TimestampType).Unit}
		}
	}
	switch {
	case v.entity == nil:
		return nil, &SchemaError{Column: GTColEntity, Reason: "missing"}
	case !v.ts.ok():
		return nil, &SchemaError{Column: GTColTime, Reason: "missing"}
	case v.data == nil:
		return nil, &SchemaError{Column: GTColData, Reason: "missing"}
	}
	return v, nil
}

// appendLine appends row i as one line of Model Monitor's ground-truth
// JSON Lines, with our own "streamscore" object (entity and event time,
// which a join by entity and horizon needs and Model Monitor ignores):
//
//	{"groundTruthData":{"data":"1","encoding":"CSV"},"eventMetadata":{"eventId":"…"},"eventVersion":"0","streamscore":{"entity":"m-1","time":"2026-12-03T07:00:00.123Z"}}
//
// Keys are in this fixed order and the line has no blank space, so a
// replay writes the same bytes.
func (v *gtView) appendLine(dst []byte, i int, nanos int64) []byte {
	dst = append(dst, `{"groundTruthData":{"data":`...)
	dst = appendJSONText(dst, colValue(v.data, i))
	dst = append(dst, `,"encoding":"CSV"},"eventMetadata":{"eventId":`...)
	dst = appendJSONText(dst, colValue(v.id, i))
	dst = append(dst, `},"eventVersion":"0","streamscore":{"entity":`...)
	dst = appendJSONText(dst, colValue(v.entity, i))
	dst = append(dst, `,"time":"`...)
	dst = time.Unix(0, nanos).UTC().AppendFormat(dst, gtTimeLayout)
	return append(dst, "\"}}\n"...)
}

// colValue is a string column's value, "" when the column is absent or null.
func colValue(c stringCol, i int) string {
	if c == nil || c.IsNull(i) {
		return ""
	}
	return c.Value(i)
}

// appendJSONText appends s as a JSON string. Bytes that are not UTF-8
// become U+FFFD, so the line stays valid JSON whatever the column holds.
func appendJSONText(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
