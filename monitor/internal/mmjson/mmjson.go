// Package mmjson holds the conventions of Model Monitor's JSON files that
// both of streamscore's monitors follow: the drift monitor's statistics,
// constraints and violations (package monitor) and the model-quality
// monitor's (package monitor/quality). Each convention has its one home
// here, so the two packages write numbers and files alike and name a bad
// file's line and column alike. It is internal to monitor/ because the
// conventions are Model Monitor's file formats, not general JSON helpers.
package mmjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// JavaDouble formats f as Java's Double.toString does, since Model
// Monitor's (Scala) container writes the numbers of its violation
// descriptions that way, and tools match on those descriptions: "0.1",
// "100.0", "99.71751412429379", "1.0E-4", "NaN".
func JavaDouble(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'E', -1, 64) // 1E-04, 1.5E+07
	mant, exp, _ := strings.Cut(s, "E")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

// WholeNumber reads a JSON number that must be a whole count, written as
// an integer or, as Spark-based writers do, as a float with no fractional
// part (10.0). An absent number (json.Number's zero value) is 0: a caller
// for whom absence is an error checks for it first.
func WholeNumber(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	f, err := n.Float64()
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", n.String())
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s is not a whole count", n.String())
	}
	return int64(f), nil
}

// Position is ":line:col" of a decoding error of data, for an error that
// names the file: where the decoder stopped on a syntax or type error,
// just past the end for a truncated file, and "" for any other error.
func Position(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return LineCol(data, syn.Offset)
	case errors.As(err, &typ):
		return LineCol(data, typ.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return LineCol(data, int64(len(data))+1)
	}
	return ""
}

// LineCol is ":line:col" (1-based) of the byte before offset off in data,
// the encoding/json convention: its offsets point just past the byte at
// fault.
func LineCol(data []byte, off int64) string {
	off = max(off, 1)
	before := data[:min(off-1, int64(len(data)))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf(":%d:%d", line, col)
}

// Write writes v as a monitor file: indented by two spaces, as Model
// Monitor's files are, with HTML characters (<, >, &) left as they are
// rather than escaped, so names and descriptions read as written. Nothing
// is written when v cannot be encoded. Errors say "write <what>".
func Write(w io.Writer, what string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}
