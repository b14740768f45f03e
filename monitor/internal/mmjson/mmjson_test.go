package mmjson

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestJavaDouble(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0.0", 0.1: "0.1", 1: "1.0", 100: "100.0", 99.71751412429379: "99.71751412429379",
		1e-4: "1.0E-4", 1.5e7: "1.5E7", -2.5: "-2.5", 0.009009009009009009: "0.009009009009009009",
		math.Inf(-1): "-Infinity", math.Copysign(0, -1): "-0.0",
	} {
		if got := JavaDouble(f); got != want {
			t.Errorf("JavaDouble(%v) = %q, want %q", f, got, want)
		}
	}
	if got := JavaDouble(math.NaN()); got != "NaN" {
		t.Errorf("JavaDouble(NaN) = %q, want NaN", got)
	}
}

func TestWholeNumber(t *testing.T) {
	for n, want := range map[json.Number]int64{"": 0, "7": 7, "10.0": 10, "-3": -3, "1e3": 1000} {
		if got, err := WholeNumber(n); err != nil || got != want {
			t.Errorf("WholeNumber(%q) = %d, %v, want %d", n, got, err, want)
		}
	}
	for n, want := range map[json.Number]string{
		"3.5": "3.5 is not a whole count", "1e300": "1e300 is not a whole count", "1e400": `"1e400" is not a number`,
	} {
		if _, err := WholeNumber(n); err == nil || err.Error() != want {
			t.Errorf("WholeNumber(%q) = %v, want %q", n, err, want)
		}
	}
}

// Decode errors are placed at the byte at fault, line and column 1-based.
func TestPosition(t *testing.T) {
	for data, want := range map[string]string{
		"{\n  \"a\": x}": ":2:8",  // syntax error at the x
		"{\"a\": \"s\"}": ":1:9",  // type error: a string for a number, at its closing quote
		"{\"a\": [1, 2":  ":1:12", // truncated: just past the end
	} {
		var v struct{ A float64 }
		err := json.NewDecoder(strings.NewReader(data)).Decode(&v) // as the readers decode
		if err == nil {
			t.Fatalf("%q decoded", data)
		}
		if got := Position([]byte(data), err); got != want {
			t.Errorf("Position(%q, %v) = %q, want %q", data, err, got, want)
		}
	}
	if got := Position(nil, bytes.ErrTooLarge); got != "" {
		t.Errorf("Position of a non-decoding error = %q, want none", got)
	}
}

func TestWriteIndentsAndLeavesHTMLAsIs(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, "x", map[string]string{"d": "a < b & c"}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"d\": \"a < b & c\"\n}\n"; b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
	b.Reset()
	err := Write(&b, "statistics", math.NaN())
	if err == nil || !strings.HasPrefix(err.Error(), "write statistics: ") || b.Len() != 0 {
		t.Errorf("NaN: wrote %q, error %v; want nothing and a write statistics error", b.String(), err)
	}
}
