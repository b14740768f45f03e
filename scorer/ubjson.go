package scorer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// ubjsonMaxDepth bounds container nesting so a hostile file cannot exhaust the
// stack; XGBoost models nest about six levels deep.
const ubjsonMaxDepth = 64

// errUBJSON is wrapped by every UBJSON decoding error.
var errUBJSON = errors.New("ubjson")

// ubjsonToJSON transcodes a UBJSON document (Draft 12, as XGBoost writes it:
// big-endian numbers, optimized containers with '$' type and '#' count) into
// JSON text, so both model encodings share one parser and one set of
// semantics. float32 values are written in their shortest round-trip form, so
// parsing them back as float32 is exact.
func ubjsonToJSON(src []byte) ([]byte, error) {
	d := ubjDecoder{src: src, out: make([]byte, 0, len(src)+len(src)/2)}
	if err := d.value(0); err != nil {
		return nil, err
	}
	if d.pos != len(d.src) {
		return nil, d.errorf("%d trailing bytes after the document", len(d.src)-d.pos)
	}
	return d.out, nil
}

type ubjDecoder struct {
	src []byte
	pos int
	out []byte
}

func (d *ubjDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", errUBJSON, d.pos, fmt.Sprintf(format, args...))
}

func (d *ubjDecoder) need(n int) ([]byte, error) {
	if n < 0 || len(d.src)-d.pos < n {
		return nil, d.errorf("unexpected end of input (need %d bytes, have %d)", n, len(d.src)-d.pos)
	}
	b := d.src[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *ubjDecoder) marker() (byte, error) {
	for {
		b, err := d.need(1)
		if err != nil {
			return 0, err
		}
		if b[0] != 'N' { // no-op marker
			return b[0], nil
		}
	}
}

// length reads a non-negative integer with its own type marker, as used for
// string lengths and container counts.
func (d *ubjDecoder) length() (int, error) {
	m, err := d.marker()
	if err != nil {
		return 0, err
	}
	v, isInt, err := d.integer(m)
	if err != nil {
		return 0, err
	}
	if !isInt {
		return 0, d.errorf("length has non-integer type %q", m)
	}
	if v < 0 || v > int64(len(d.src)-d.pos) {
		// Every element takes at least one byte (payload-less optimized
		// types are refused), so a count larger than the rest of the input
		// is a lie; refusing it also bounds the output to a small multiple
		// of the input.
		return 0, d.errorf("length %d out of range", v)
	}
	return int(v), nil
}

func (d *ubjDecoder) integer(m byte) (int64, bool, error) {
	switch m {
	case 'i':
		b, err := d.need(1)
		if err != nil {
			return 0, true, err
		}
		return int64(int8(b[0])), true, nil
	case 'U':
		b, err := d.need(1)
		if err != nil {
			return 0, true, err
		}
		return int64(b[0]), true, nil
	case 'I':
		b, err := d.need(2)
		if err != nil {
			return 0, true, err
		}
		return int64(int16(binary.BigEndian.Uint16(b))), true, nil
	case 'l':
		b, err := d.need(4)
		if err != nil {
			return 0, true, err
		}
		return int64(int32(binary.BigEndian.Uint32(b))), true, nil
	case 'L':
		b, err := d.need(8)
		if err != nil {
			return 0, true, err
		}
		return int64(binary.BigEndian.Uint64(b)), true, nil
	}
	return 0, false, nil
}

func (d *ubjDecoder) value(depth int) error {
	m, err := d.marker()
	if err != nil {
		return err
	}
	return d.typed(m, depth)
}

// typed decodes one value whose type marker m has already been read.
func (d *ubjDecoder) typed(m byte, depth int) error {
	if v, isInt, err := d.integer(m); isInt {
		if err != nil {
			return err
		}
		d.out = strconv.AppendInt(d.out, v, 10)
		return nil
	}
	switch m {
	case 'Z':
		d.out = append(d.out, "null"...)
	case 'T':
		d.out = append(d.out, "true"...)
	case 'F':
		d.out = append(d.out, "false"...)
	case 'd':
		b, err := d.need(4)
		if err != nil {
			return err
		}
		return d.float(float64(math.Float32frombits(binary.BigEndian.Uint32(b))), 32)
	case 'D':
		b, err := d.need(8)
		if err != nil {
			return err
		}
		return d.float(math.Float64frombits(binary.BigEndian.Uint64(b)), 64)
	case 'C':
		b, err := d.need(1)
		if err != nil {
			return err
		}
		return d.str(b)
	case 'S', 'H': // high-precision numbers are carried as strings
		n, err := d.length()
		if err != nil {
			return err
		}
		b, err := d.need(n)
		if err != nil {
			return err
		}
		return d.str(b)
	case '[':
		return d.array(depth + 1)
	case '{':
		return d.object(depth + 1)
	default:
		d.pos--
		return d.errorf("unknown type marker %q", m)
	}
	return nil
}

func (d *ubjDecoder) float(f float64, bits int) error {
	switch {
	case math.IsNaN(f):
		// XGBoost's JSON writer spells these as bare literals;
		// fixNonFinite handles them for both encodings.
		d.out = append(d.out, "NaN"...)
		return nil
	case math.IsInf(f, 1):
		d.out = append(d.out, "Infinity"...)
		return nil
	case math.IsInf(f, -1):
		d.out = append(d.out, "-Infinity"...)
		return nil
	}
	d.out = strconv.AppendFloat(d.out, f, 'g', -1, bits)
	return nil
}

func (d *ubjDecoder) str(b []byte) error {
	if !utf8.Valid(b) {
		return d.errorf("string is not valid UTF-8")
	}
	d.out = appendJSONString(d.out, b)
	return nil
}

// appendJSONString quotes valid UTF-8 b as a JSON string.
func appendJSONString(dst, b []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// header reads the optional '$' type and '#' count of an optimized container.
func (d *ubjDecoder) header() (typ byte, count int, err error) {
	count = -1
	if d.pos < len(d.src) && d.src[d.pos] == '$' {
		d.pos++
		b, err := d.need(1)
		if err != nil {
			return 0, 0, err
		}
		typ = b[0]
		switch typ {
		case 'Z', 'T', 'F', 'N':
			// Elements of these types have no bytes, so a count would be
			// unbounded by the input; XGBoost never writes them.
			return 0, 0, d.errorf("optimized container of type %q is not supported", typ)
		}
		if d.pos >= len(d.src) || d.src[d.pos] != '#' {
			return 0, 0, d.errorf("'$' type without '#' count")
		}
	}
	if d.pos < len(d.src) && d.src[d.pos] == '#' {
		d.pos++
		if count, err = d.length(); err != nil {
			return 0, 0, err
		}
	}
	return typ, count, nil
}

func (d *ubjDecoder) array(depth int) error {
	if depth > ubjsonMaxDepth {
		return d.errorf("nesting deeper than %d", ubjsonMaxDepth)
	}
	typ, count, err := d.header()
	if err != nil {
		return err
	}
	d.out = append(d.out, '[')
	for i := 0; count < 0 || i < count; i++ {
		if count < 0 {
			m, err := d.marker()
			if err != nil {
				return err
			}
			if m == ']' {
				break
			}
			if i > 0 {
				d.out = append(d.out, ',')
			}
			if err := d.typed(m, depth); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			d.out = append(d.out, ',')
		}
		if err := d.element(typ, depth); err != nil {
			return err
		}
	}
	d.out = append(d.out, ']')
	return nil
}

// element decodes one container element: of the container's declared type
// when it has one (strongly typed containers omit per-element markers),
// otherwise with its own marker.
func (d *ubjDecoder) element(typ byte, depth int) error {
	if typ != 0 {
		return d.typed(typ, depth)
	}
	return d.value(depth)
}

func (d *ubjDecoder) object(depth int) error {
	if depth > ubjsonMaxDepth {
		return d.errorf("nesting deeper than %d", ubjsonMaxDepth)
	}
	typ, count, err := d.header()
	if err != nil {
		return err
	}
	d.out = append(d.out, '{')
	for i := 0; count < 0 || i < count; i++ {
		if count < 0 {
			if d.pos < len(d.src) && d.src[d.pos] == '}' {
				d.pos++
				break
			}
		}
		if i > 0 {
			d.out = append(d.out, ',')
		}
		n, err := d.length()
		if err != nil {
			return err
		}
		k, err := d.need(n)
		if err != nil {
			return err
		}
		if err := d.str(k); err != nil {
			return err
		}
		d.out = append(d.out, ':')
		if err := d.element(typ, depth); err != nil {
			return err
		}
	}
	d.out = append(d.out, '}')
	return nil
}
