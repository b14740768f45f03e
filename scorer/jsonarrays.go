package scorer

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// The per-node arrays of an XGBoost tree hold nearly all of a model's bytes.
// These types decode them without reflection, and accept the non-JSON
// literals XGBoost writes (NaN as the split condition of a categorical
// node), which fixNonFinite turns into strings first.

// eachToken calls fn with every element of a flat JSON array.
func eachToken(b []byte, what string, fn func(i int, tok []byte) error) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return fmt.Errorf("%s: want an array, got %.20q", what, b)
	}
	body := b[1 : len(b)-1]
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	for i := 0; ; i++ {
		j := bytes.IndexByte(body, ',')
		tok := body
		if j >= 0 {
			tok = body[:j]
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 {
			return fmt.Errorf("%s: element %d is empty", what, i)
		}
		if err := fn(i, tok); err != nil {
			return fmt.Errorf("%s: element %d: %w", what, i, err)
		}
		if j < 0 {
			return nil
		}
		body = body[j+1:]
	}
}

// f32s decodes a float array exactly as float32 (no double rounding).
type f32s []float32

// UnmarshalJSON implements json.Unmarshaler.
func (f *f32s) UnmarshalJSON(b []byte) error {
	out := (*f)[:0]
	err := eachToken(b, "float array", func(_ int, tok []byte) error {
		switch string(tok) {
		case `"NaN"`:
			out = append(out, float32(math.NaN()))
			return nil
		case `"Infinity"`, `"inf"`:
			out = append(out, float32(math.Inf(1)))
			return nil
		case `"-Infinity"`, `"-inf"`:
			out = append(out, float32(math.Inf(-1)))
			return nil
		}
		v, err := strconv.ParseFloat(string(tok), 32)
		if err != nil {
			return fmt.Errorf("%.30q is not a float32", tok)
		}
		out = append(out, float32(v))
		return nil
	})
	*f = out
	return err
}

// i64s decodes an integer array.
type i64s []int64

// UnmarshalJSON implements json.Unmarshaler.
func (v *i64s) UnmarshalJSON(b []byte) error {
	out := (*v)[:0]
	err := eachToken(b, "integer array", func(_ int, tok []byte) error {
		n, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil {
			return fmt.Errorf("%.30q is not an integer", tok)
		}
		out = append(out, n)
		return nil
	})
	*v = out
	return err
}

// i32s decodes an integer array whose values fit in int32.
type i32s []int32

// UnmarshalJSON implements json.Unmarshaler.
func (v *i32s) UnmarshalJSON(b []byte) error {
	out := (*v)[:0]
	err := eachToken(b, "integer array", func(_ int, tok []byte) error {
		n, err := strconv.ParseInt(string(tok), 10, 32)
		if err != nil {
			return fmt.Errorf("%.30q is not a 32-bit integer", tok)
		}
		out = append(out, int32(n))
		return nil
	})
	*v = out
	return err
}

// flexBools accepts default_left written as numbers (XGBoost >= 1.6) or as
// JSON booleans (older writers).
type flexBools []bool

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexBools) UnmarshalJSON(b []byte) error {
	out := (*f)[:0]
	err := eachToken(b, "default_left", func(_ int, tok []byte) error {
		switch string(tok) {
		case "0", "false":
			out = append(out, false)
		case "1", "true":
			out = append(out, true)
		default:
			return fmt.Errorf("%.20q: want 0, 1, true or false", tok)
		}
		return nil
	})
	*f = out
	return err
}

// fixNonFinite rewrites the bare NaN, Infinity and -Infinity literals that
// XGBoost's JSON writer emits (and JSON forbids) into strings that f32s
// understands. Literals inside strings are left alone. It returns b itself
// when there is nothing to rewrite.
func fixNonFinite(b []byte) []byte {
	if !bytes.Contains(b, []byte("NaN")) && !bytes.Contains(b, []byte("Infinity")) && !bytes.Contains(b, []byte("inf")) {
		return b
	}
	out := make([]byte, 0, len(b)+64)
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(b) {
					i++
					out = append(out, b[i])
				}
			case '"':
				inStr = false
			}
			continue
		}
		if c == '"' {
			inStr = true
			out = append(out, c)
			continue
		}
		if lit := nonFiniteAt(b[i:]); lit != "" {
			out = append(out, '"')
			out = append(out, lit...)
			out = append(out, '"')
			i += len(lit) - 1
			continue
		}
		out = append(out, c)
	}
	return out
}

func nonFiniteAt(b []byte) string {
	for _, lit := range [...]string{"NaN", "-Infinity", "Infinity", "-inf", "inf"} {
		if bytes.HasPrefix(b, []byte(lit)) {
			return lit
		}
	}
	return ""
}
