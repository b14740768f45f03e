package windowing

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

// DecodeError says why one record was rejected. The caller sends the record,
// with this reason, to the dead-letter sink: the decoder never drops a
// record silently.
type DecodeError struct {
	// Offset is the record's source position as given to Append.
	Offset uint64
	// Field is the field at fault; empty when the record as a whole is not a
	// JSON object.
	Field string
	// Reason says what is wrong, in words.
	Reason string
	// Pos is the byte position in the record where the problem was found.
	Pos int
	// Err is ErrEventTimeBounds or ErrEntity when the record parsed but
	// its values are refused; nil for a record that does not parse.
	Err error
}

// Unwrap returns Err, so errors.Is(err, ErrEventTimeBounds) works.
func (e *DecodeError) Unwrap() error { return e.Err }

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("record at offset %d: %s (byte %d)", e.Offset, e.Reason, e.Pos)
	}
	return fmt.Sprintf("record at offset %d: field %q: %s (byte %d)", e.Offset, e.Field, e.Reason, e.Pos)
}

// Timestamps in decoded and feature batches are nanoseconds since the Unix
// epoch, UTC.
var timestampType = &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}

func arrowType(t FieldType) arrow.DataType {
	switch t {
	case TypeString:
		return arrow.BinaryTypes.String
	case TypeFloat64:
		return arrow.PrimitiveTypes.Float64
	case TypeInt64:
		return arrow.PrimitiveTypes.Int64
	case TypeBool:
		return arrow.FixedWidthTypes.Boolean
	default:
		return timestampType
	}
}

// ArrowSchema is the schema of the batches a Decoder builds: the entity
// (utf8), the event time (timestamp[ns, UTC]), the declared fields in order,
// and the source position (uint64, named ColOffset).
func (s *Schema) ArrowSchema() *arrow.Schema {
	fs := make([]arrow.Field, 0, len(s.Fields)+3)
	fs = append(fs,
		arrow.Field{Name: s.Entity, Type: arrow.BinaryTypes.String},
		arrow.Field{Name: s.Time, Type: timestampType})
	for _, f := range s.Fields {
		fs = append(fs, arrow.Field{Name: f.Name, Type: arrowType(f.Type), Nullable: true})
	}
	fs = append(fs, arrow.Field{Name: ColOffset, Type: arrow.PrimitiveTypes.Uint64})
	return arrow.NewSchema(fs, nil)
}

// maxEventTime bounds event times (as ns from the epoch, either sign) so
// that window arithmetic cannot overflow.
const maxEventTime = 1 << 62

// value states of one field of the record being decoded.
const (
	vAbsent uint8 = iota
	vNull
	vSet
)

type fieldVal struct {
	state uint8
	i     int64   // int64, bool (0/1), timestamp (ns)
	f     float64 // float64
	s     []byte  // string: a view of the record or of buf
	buf   []byte  // unescaped string, reused
}

// Decoder turns JSON records into Arrow record batches following a Schema.
// It scans the JSON by hand (no reflection) and appends straight into Arrow
// builders, so decoding allocates nothing per record once its buffers have
// grown. A Decoder is not safe for concurrent use; use one per shard.
type Decoder struct {
	schema   Schema
	aschema  *arrow.Schema
	rb       *array.RecordBuilder
	entity   *array.StringBuilder
	ts       *array.TimestampBuilder
	off      *array.Uint64Builder
	builders []array.Builder
	types    []FieldType // per slot: 0 entity, 1 time, then fields
	names    []string
	index    map[string]int
	vals     []fieldVal
	offset   uint64
	rec      []byte
	keyBuf   []byte

	bounds      TimeBounds
	arrival     int64 // ns; 0: no bounds check for this record
	checkEntity func([]byte) error
}

// NewDecoder returns a decoder for schema. mem may be nil for the default
// Go allocator.
func NewDecoder(schema Schema, mem memory.Allocator) (*Decoder, error) {
	if err := schema.Validate(); err != nil {
		return nil, err
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	d := &Decoder{schema: schema, aschema: schema.ArrowSchema(), index: make(map[string]int)}
	d.rb = array.NewRecordBuilder(mem, d.aschema)
	d.entity = d.rb.Field(0).(*array.StringBuilder)
	d.ts = d.rb.Field(1).(*array.TimestampBuilder)
	d.off = d.rb.Field(len(schema.Fields) + 2).(*array.Uint64Builder)
	d.types = append(d.types, TypeString, TypeTimestamp)
	d.names = append(d.names, schema.Entity, schema.Time)
	for _, f := range schema.Fields {
		d.types = append(d.types, f.Type)
		d.names = append(d.names, f.Name)
	}
	for i, n := range d.names {
		d.index[n] = i
		d.builders = append(d.builders, d.rb.Field(i))
	}
	d.vals = make([]fieldVal, len(d.names))
	return d, nil
}

// Schema returns the Arrow schema of the batches built.
func (d *Decoder) Schema() *arrow.Schema { return d.aschema }

// Len is the number of records appended since the last NewRecordBatch.
func (d *Decoder) Len() int { return d.off.Len() }

// Release frees the builders.
func (d *Decoder) Release() { d.rb.Release() }

// NewRecordBatch returns the records appended so far as one batch (possibly
// empty) and starts a new one. The caller releases it.
func (d *Decoder) NewRecordBatch() arrow.RecordBatch { return d.rb.NewRecordBatch() }

// Append decodes one JSON record at source position offset into the current
// batch. A record that is not a JSON object, lacks the entity or time field,
// or holds a value of the wrong type is not appended; the error is a
// *DecodeError naming the field, and the batch is left as it was.
func (d *Decoder) Append(rec []byte, offset uint64) error {
	d.rec = rec
	d.offset = offset
	for i := range d.vals {
		d.vals[i].state = vAbsent
	}
	if err := d.parse(); err != nil {
		return err
	}
	ev, tv := &d.vals[0], &d.vals[1]
	if ev.state != vSet {
		return d.errf(0, len(rec), "entity field is missing or null")
	}
	if tv.state != vSet {
		return d.errf(1, len(rec), "event-time field is missing or null")
	}
	if tv.i < -maxEventTime || tv.i > maxEventTime {
		return d.errf(1, len(rec), "event time %s is out of range (years 1824 to 2116)", time.Unix(0, tv.i).UTC().Format(time.RFC3339))
	}
	if e := d.checkTime(tv.i); e != nil {
		return e
	}
	if d.checkEntity != nil {
		if err := d.checkEntity(ev.s); err != nil {
			e := d.errf(0, len(rec), "%v", err)
			e.Err = ErrEntity
			return e
		}
	}
	d.entity.BinaryBuilder.Append(ev.s)
	d.ts.Append(arrow.Timestamp(tv.i))
	for i := 2; i < len(d.vals); i++ {
		v := &d.vals[i]
		b := d.builders[i]
		if v.state != vSet {
			b.AppendNull()
			continue
		}
		switch d.types[i] {
		case TypeString:
			b.(*array.StringBuilder).BinaryBuilder.Append(v.s)
		case TypeFloat64:
			b.(*array.Float64Builder).Append(v.f)
		case TypeInt64:
			b.(*array.Int64Builder).Append(v.i)
		case TypeBool:
			b.(*array.BooleanBuilder).Append(v.i != 0)
		case TypeTimestamp:
			b.(*array.TimestampBuilder).Append(arrow.Timestamp(v.i))
		}
	}
	d.off.Append(offset)
	return nil
}

func (d *Decoder) errf(slot int, pos int, format string, a ...any) *DecodeError {
	e := &DecodeError{Offset: d.offset, Reason: fmt.Sprintf(format, a...), Pos: pos}
	if slot >= 0 {
		e.Field = d.names[slot]
	}
	return e
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (d *Decoder) skipSpace(p int) int {
	for p < len(d.rec) && isSpace(d.rec[p]) {
		p++
	}
	return p
}

// parse scans the top-level object, decoding the declared fields into vals
// and checking the syntax of everything else.
func (d *Decoder) parse() error {
	r := d.rec
	p := d.skipSpace(0)
	if p >= len(r) || r[p] != '{' {
		return d.errf(-1, p, "not a JSON object")
	}
	p = d.skipSpace(p + 1)
	if p < len(r) && r[p] == '}' {
		p++
	} else {
		for {
			if p >= len(r) || r[p] != '"' {
				return d.errf(-1, p, "invalid JSON: expected a field name")
			}
			end, esc, ok := scanString(r, p)
			if !ok {
				return d.errf(-1, p, "invalid JSON: bad string")
			}
			name := r[p+1 : end-1]
			if esc { // rare: a field name written with escapes
				d.keyBuf = unescape(d.keyBuf[:0], name)
				name = d.keyBuf
			}
			slot := -1
			if i, found := d.index[string(name)]; found {
				slot = i
			}
			p = d.skipSpace(end)
			if p >= len(r) || r[p] != ':' {
				return d.errf(slot, p, "invalid JSON: expected ':'")
			}
			p = d.skipSpace(p + 1)
			var err error
			if slot >= 0 {
				p, err = d.value(slot, p)
			} else {
				p, err = d.skipValue(p)
			}
			if err != nil {
				return err
			}
			p = d.skipSpace(p)
			if p < len(r) && r[p] == ',' {
				p = d.skipSpace(p + 1)
				continue
			}
			if p < len(r) && r[p] == '}' {
				p++
				break
			}
			return d.errf(slot, p, "invalid JSON: expected ',' or '}'")
		}
	}
	if p = d.skipSpace(p); p != len(r) {
		return d.errf(-1, p, "invalid JSON: data after the object")
	}
	return nil
}

// value decodes the value at r[p] into vals[slot] and returns the position
// after it.
func (d *Decoder) value(slot int, p int) (int, error) {
	r := d.rec
	v := &d.vals[slot]
	if p >= len(r) {
		return p, d.errf(slot, p, "invalid JSON: value expected")
	}
	if hasLiteral(r, p, "null") {
		v.state = vNull
		return p + 4, nil
	}
	typ := d.types[slot]
	c := r[p]
	switch {
	case c == '"':
		end, esc, ok := scanString(r, p)
		if !ok {
			return p, d.errf(slot, p, "invalid JSON: bad string")
		}
		s := r[p+1 : end-1]
		if esc {
			v.buf = unescape(v.buf[:0], s)
			s = v.buf
		}
		switch typ {
		case TypeString:
			if !utf8.Valid(s) {
				return p, d.errf(slot, p, "string is not valid UTF-8")
			}
			v.s = s
		case TypeTimestamp:
			if d.schema.TimeFormat != TimeRFC3339 {
				return p, d.errf(slot, p, "expected a number (%s), got a string", d.schema.TimeFormat)
			}
			ns, ok := parseRFC3339(s)
			if !ok {
				return p, d.errf(slot, p, "%q is not an RFC 3339 time", s)
			}
			v.i = ns
		default:
			return p, d.errf(slot, p, "expected %s, got a string", typ)
		}
		v.state = vSet
		return end, nil
	case c == '-' || c >= '0' && c <= '9':
		end, isFloat, ok := scanNumber(r, p)
		if !ok {
			return p, d.errf(slot, p, "invalid JSON: bad number")
		}
		lit := r[p:end]
		switch typ {
		case TypeFloat64:
			f, err := strconv.ParseFloat(bstr(lit), 64)
			if err != nil {
				return p, d.errf(slot, p, "number %s is out of float64 range", lit)
			}
			v.f = f
		case TypeInt64:
			if !isFloat {
				n, err := strconv.ParseInt(bstr(lit), 10, 64)
				if err != nil {
					return p, d.errf(slot, p, "number %s is out of int64 range", lit)
				}
				v.i = n
			} else {
				f, err := strconv.ParseFloat(bstr(lit), 64)
				if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
					return p, d.errf(slot, p, "number %s is not an int64", lit)
				}
				v.i = int64(f)
			}
		case TypeTimestamp:
			if d.schema.TimeFormat == TimeRFC3339 {
				return p, d.errf(slot, p, "expected an RFC 3339 string, got a number")
			}
			ns, ok := parseEpoch(lit, d.schema.TimeFormat)
			if !ok {
				return p, d.errf(slot, p, "number %s is out of range for %s", lit, d.schema.TimeFormat)
			}
			v.i = ns
		case TypeString:
			if slot != 0 {
				return p, d.errf(slot, p, "expected a string, got a number")
			}
			// A numeric entity id (user_id: 18273) keys by its literal text.
			v.s = lit
		default:
			return p, d.errf(slot, p, "expected %s, got a number", typ)
		}
		v.state = vSet
		return end, nil
	case hasLiteral(r, p, "true") || hasLiteral(r, p, "false"):
		n := 4
		if c == 'f' {
			n = 5
		}
		if typ != TypeBool {
			return p, d.errf(slot, p, "expected %s, got a boolean", typ)
		}
		v.i = 0
		if c == 't' {
			v.i = 1
		}
		v.state = vSet
		return p + n, nil
	case c == '{' || c == '[':
		return p, d.errf(slot, p, "expected %s, got an object or array", typ)
	}
	return p, d.errf(slot, p, "invalid JSON: bad value")
}

// skipValue checks the syntax of the value at r[p] (any depth) and returns
// the position after it.
func (d *Decoder) skipValue(p int) (int, error) {
	r := d.rec
	// stack of open containers: '{' or '['; expect says what may come next.
	var stackArr [32]byte
	stack := stackArr[:0]
	const (
		wantValue = iota
		wantKey   // in an object, after '{' or ','
		wantColon
		wantSep // after a value inside a container
	)
	state := wantValue
	first := false // just after '{' or '[' (closing bracket allowed)
	for {
		p = d.skipSpace(p)
		if p >= len(r) {
			return p, d.errf(-1, p, "invalid JSON: unexpected end")
		}
		c := r[p]
		switch state {
		case wantKey:
			if c == '}' && first {
				stack = stack[:len(stack)-1]
				p++
				state = wantSep
				break
			}
			if c != '"' {
				return p, d.errf(-1, p, "invalid JSON: expected a field name")
			}
			end, _, ok := scanString(r, p)
			if !ok {
				return p, d.errf(-1, p, "invalid JSON: bad string")
			}
			p = end
			state = wantColon
		case wantColon:
			if c != ':' {
				return p, d.errf(-1, p, "invalid JSON: expected ':'")
			}
			p++
			state = wantValue
		case wantValue:
			if c == ']' && first {
				stack = stack[:len(stack)-1]
				p++
				state = wantSep
				break
			}
			switch {
			case c == '{' || c == '[':
				stack = append(stack, c)
				p++
				first = true
				if c == '{' {
					state = wantKey
				}
				continue
			case c == '"':
				end, _, ok := scanString(r, p)
				if !ok {
					return p, d.errf(-1, p, "invalid JSON: bad string")
				}
				p = end
			case c == '-' || c >= '0' && c <= '9':
				end, _, ok := scanNumber(r, p)
				if !ok {
					return p, d.errf(-1, p, "invalid JSON: bad number")
				}
				p = end
			case hasLiteral(r, p, "true") || hasLiteral(r, p, "null"):
				p += 4
			case hasLiteral(r, p, "false"):
				p += 5
			default:
				return p, d.errf(-1, p, "invalid JSON: bad value")
			}
			state = wantSep
		case wantSep:
			if len(stack) == 0 {
				return p, nil
			}
			top := stack[len(stack)-1]
			switch {
			case c == ',':
				p++
				if top == '{' {
					state = wantKey
				} else {
					state = wantValue
				}
			case c == '}' && top == '{' || c == ']' && top == '[':
				stack = stack[:len(stack)-1]
				p++
			default:
				return p, d.errf(-1, p, "invalid JSON: expected ',' or closing bracket")
			}
		}
		first = false
		if state == wantSep && len(stack) == 0 {
			return p, nil
		}
	}
}
