package windowing

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

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

// scanString returns the index just past the closing quote of the string
// starting at r[p] == '"', whether it holds escapes, and whether it is valid
// (closed, no raw control characters, well-formed escapes).
func scanString(r []byte, p int) (end int, esc bool, ok bool) {
	for i := p + 1; i < len(r); i++ {
		c := r[i]
		switch {
		case c == '"':
			return i + 1, esc, true
		case c == '\\':
			esc = true
			i++
			if i >= len(r) {
				return 0, false, false
			}
			switch r[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(r) {
					return 0, false, false
				}
				for k := 1; k <= 4; k++ {
					if !isHex(r[i+k]) {
						return 0, false, false
					}
				}
				i += 4
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		}
	}
	return 0, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(b []byte) rune {
	var v rune
	for _, c := range b {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			v |= rune(c - 'a' + 10)
		default:
			v |= rune(c - 'A' + 10)
		}
	}
	return v
}

// unescape appends the decoded contents of the valid JSON string s (without
// its quotes) to dst, the way encoding/json does (lone surrogates become
// U+FFFD).
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexVal(s[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2 = hexVal(s[i+3 : i+7])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, s[i])
		}
	}
	return dst
}

// scanNumber returns the end of the JSON number at r[p], and whether it has
// a fraction or exponent.
func scanNumber(r []byte, p int) (end int, isFloat bool, ok bool) {
	i := p
	if i < len(r) && r[i] == '-' {
		i++
	}
	if i >= len(r) {
		return 0, false, false
	}
	if r[i] == '0' {
		i++
	} else if r[i] >= '1' && r[i] <= '9' {
		for i < len(r) && r[i] >= '0' && r[i] <= '9' {
			i++
		}
	} else {
		return 0, false, false
	}
	if i < len(r) && r[i] == '.' {
		isFloat = true
		i++
		s := i
		for i < len(r) && r[i] >= '0' && r[i] <= '9' {
			i++
		}
		if i == s {
			return 0, false, false
		}
	}
	if i < len(r) && (r[i] == 'e' || r[i] == 'E') {
		isFloat = true
		i++
		if i < len(r) && (r[i] == '+' || r[i] == '-') {
			i++
		}
		s := i
		for i < len(r) && r[i] >= '0' && r[i] <= '9' {
			i++
		}
		if i == s {
			return 0, false, false
		}
	}
	return i, isFloat, true
}

// bstr views b as a string without copying; the string must not outlive
// the call it is passed to.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func hasLiteral(r []byte, p int, lit string) bool {
	return len(r)-p >= len(lit) && string(r[p:p+len(lit)]) == lit
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

// parseEpoch converts an epoch number in seconds or milliseconds to
// nanoseconds, exactly for plain decimal literals.
func parseEpoch(lit []byte, f TimeFormat) (int64, bool) {
	scale := int64(1e9)
	fracDigits := 9
	if f == TimeEpochMS {
		scale, fracDigits = 1e6, 6
	}
	neg := false
	i := 0
	if lit[0] == '-' {
		neg = true
		i++
	}
	var whole int64
	for ; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
		if whole > (math.MaxInt64/scale)/10 {
			return 0, false
		}
		whole = whole*10 + int64(lit[i]-'0')
	}
	var frac int64
	if i < len(lit) && lit[i] == '.' {
		i++
		n := 0
		for ; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
			if n < fracDigits {
				frac = frac*10 + int64(lit[i]-'0')
				n++
			}
		}
		for ; n < fracDigits; n++ {
			frac *= 10
		}
	}
	if i < len(lit) { // exponent: go through float64
		x, err := strconv.ParseFloat(bstr(lit), 64)
		if err != nil {
			return 0, false
		}
		x *= float64(scale)
		if math.IsNaN(x) || x >= math.MaxInt64 || x <= math.MinInt64 {
			return 0, false
		}
		return int64(math.Round(x)), true
	}
	ns := whole*scale + frac
	if ns < 0 {
		return 0, false
	}
	if neg {
		ns = -ns
	}
	return ns, true
}

// parseRFC3339 parses the common shapes ("2026-11-24T10:15:03.250Z",
// "...+01:00") without allocating and falls back to time.Parse for the
// rest, so the accepted language is exactly Go's RFC 3339.
func parseRFC3339(b []byte) (int64, bool) {
	if ns, ok := fastRFC3339(b); ok {
		return ns, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

func digits(b []byte, n int) (int, bool) {
	v := 0
	for i := range n {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func fastRFC3339(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	y, ok1 := digits(b[0:], 4)
	mo, ok2 := digits(b[5:], 2)
	dd, ok3 := digits(b[8:], 2)
	hh, ok4 := digits(b[11:], 2)
	mi, ok5 := digits(b[14:], 2)
	ss, ok6 := digits(b[17:], 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || dd < 1 ||
		dd > daysIn(y, mo) || hh > 23 || mi > 59 || ss > 59 {
		return 0, false
	}
	i := 19
	var frac int64
	if b[i] == '.' {
		i++
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if n < 9 {
				frac = frac*10 + int64(b[i]-'0')
			}
			n++
			i++
		}
		if n == 0 || n > 9 {
			return 0, false
		}
		for ; n < 9; n++ {
			frac *= 10
		}
	}
	if i >= len(b) {
		return 0, false
	}
	var zone int64
	switch b[i] {
	case 'Z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return 0, false
		}
		zh, ok1 := digits(b[i+1:], 2)
		zm, ok2 := digits(b[i+4:], 2)
		if !ok1 || !ok2 || zh > 23 || zm > 59 {
			return 0, false
		}
		zone = int64(zh*3600 + zm*60)
		if b[i] == '-' {
			zone = -zone
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(b) {
		return 0, false
	}
	secs := daysFromCivil(y, mo, dd)*86400 + int64(hh*3600+mi*60+ss) - zone
	return secs*1e9 + frac, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
