package scorer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Request decoding for `streamscore serve`.
//
// The decoders walk the body in place and hand each row to emit in a reused
// buffer, so decoding allocates nothing per value: the memory a request
// costs is its body plus one block of rows and the response (the old path,
// encoding/json into []*float64 per instance, allocated ~74 times the body).
// JSON is first checked whole with json.Valid (which allocates nothing), so
// the walker below only has to find values in a document known to be
// well-formed; it still never indexes past the end, whatever the input.

// rowSink receives one decoded row in model feature order (NaN = missing).
// row is reused: copy what must outlive the call.
type rowSink func(row []float64) *httpError

func badInput(format string, args ...any) *httpError {
	return &httpError{http.StatusBadRequest, "ValidationError", fmt.Sprintf(format, args...)}
}

// decodeRows parses a request body of content type ct and calls emit for
// each row. index maps feature names to their position (for named JSON
// instances).
func decodeRows(ct string, body []byte, features []string, index map[string]int, emit rowSink) *httpError {
	row := make([]float64, len(features))
	switch ct {
	case "text/csv":
		return decodeCSV(body, features, row, emit)
	case "application/json":
		if !json.Valid(body) {
			return jsonSyntax("json", body)
		}
		c := jcur{b: body}
		return c.document(features, index, row, emit)
	case "application/jsonlines", "application/x-jsonlines":
		line := 0
		for len(body) > 0 {
			line++
			var l []byte
			l, body = nextLine(body)
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			where := loc{"jsonlines: line", line}
			if !json.Valid(l) {
				return jsonSyntax(where.String(), l)
			}
			c := jcur{b: l}
			c.ws()
			if herr := c.instance(where, features, index, row); herr != nil {
				return herr
			}
			if herr := emit(row); herr != nil {
				return herr
			}
		}
		return nil
	}
	return &httpError{http.StatusUnsupportedMediaType, "ValidationError",
		fmt.Sprintf("content type %q is not supported: use text/csv, application/json or application/jsonlines", clipString(ct))}
}

// nextLine splits the first line (without its newline) off body.
func nextLine(body []byte) (line, rest []byte) {
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		return body[:i], body[i+1:]
	}
	return body, nil
}

// jsonSyntax reports where an invalid JSON document goes wrong. Unmarshal
// checks the whole document before decoding anything, so on invalid input it
// returns the syntax error without building a value.
func jsonSyntax(where string, b []byte) *httpError {
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badInput("%s: at byte %d: %v", where, se.Offset, err)
	}
	return badInput("%s: %v", where, err)
}

func decodeCSV(body []byte, features []string, row []float64, emit rowSink) *httpError {
	nf := len(features)
	line := 0
	for len(body) > 0 {
		line++
		var l []byte
		l, body = nextLine(body)
		l = bytes.TrimRight(l, "\r")
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		if n := bytes.Count(l, []byte{','}) + 1; n != nf {
			return badInput("line %d: %d values, the model takes %d features (%s)", line, n, nf, strings.Join(features, ","))
		}
		for j := range nf {
			cell := l
			if i := bytes.IndexByte(l, ','); i >= 0 {
				cell, l = l[:i], l[i+1:]
			}
			v, err := parseValue(cell)
			if err != nil {
				return badInput("line %d, column %d (%s): %v", line, j+1, features[j], err)
			}
			row[j] = v
		}
		if herr := emit(row); herr != nil {
			return herr
		}
	}
	return nil
}

// parseValue reads one numeric cell: empty is missing (NaN); inf, nan and
// numbers beyond float64's range are refused, because a model given them
// answers NaN or Inf, which JSON cannot carry and which no caller means.
func parseValue(cell []byte) (float64, error) {
	cell = bytes.TrimSpace(cell)
	if len(cell) == 0 {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(string(cell), 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) && math.IsInf(v, 0) {
			return 0, fmt.Errorf("%q is beyond the range of a float64", clip(cell))
		}
		return 0, fmt.Errorf("%q is not a number", clip(cell))
	}
	if math.IsInf(v, 0) || v != v {
		return 0, fmt.Errorf("%q is not a finite number (leave the cell empty, or null in JSON, for a missing value)", clip(cell))
	}
	return v, nil
}

// clip keeps error messages short whatever the client sent.
func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// loc names a row in errors; it is formatted only when there is one, so
// the happy path allocates nothing per row.
type loc struct {
	what string
	n    int
}

func (l loc) String() string { return l.what + " " + strconv.Itoa(l.n) }

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// jcur walks a JSON document already known to be valid.
type jcur struct {
	b []byte
	i int
}

func (c *jcur) ws() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\r', '\n':
			c.i++
		default:
			return
		}
	}
}

func (c *jcur) peek() byte {
	c.ws()
	if c.i >= len(c.b) {
		return 0
	}
	return c.b[c.i]
}

// str consumes a string at c.i (the opening quote) and returns its content
// still escaped, and whether it holds an escape.
func (c *jcur) str() (s []byte, escaped bool) {
	c.i++
	start := c.i
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case '\\':
			escaped = true
			c.i += 2
			continue
		case '"':
			s = c.b[start:c.i]
			c.i++
			return s, escaped
		}
		c.i++
	}
	c.i = len(c.b)
	return c.b[start:], escaped
}

// token consumes a number or literal.
func (c *jcur) token() []byte {
	start := c.i
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ',', ']', '}', ':', ' ', '\t', '\r', '\n':
			return c.b[start:c.i]
		}
		c.i++
	}
	return c.b[start:]
}

// skip consumes one value of any kind.
func (c *jcur) skip() {
	switch c.peek() {
	case '"':
		c.str()
	case '{', '[':
		depth := 0
		for c.i < len(c.b) {
			switch c.b[c.i] {
			case '"':
				c.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					c.i++
					return
				}
			}
			c.i++
		}
	default:
		if len(c.token()) == 0 && c.i < len(c.b) {
			c.i++ // a stray delimiter: never stand still
		}
	}
}

// next moves past a separator to the next element of an array or object:
// it reports false at the closing bracket (consumed) or the end of input.
func (c *jcur) next(closing byte) bool {
	for {
		switch c.peek() {
		case ',':
			c.i++
		case closing:
			c.i++
			return false
		case 0:
			return false
		default:
			return true
		}
	}
}

// key consumes an object key and its colon; it returns the key unescaped
// (in place, without allocating, unless it holds escapes, which is rare).
func (c *jcur) key() ([]byte, bool) {
	if c.peek() != '"' {
		return nil, false
	}
	start := c.i
	k, esc := c.str()
	if esc {
		var s string
		if json.Unmarshal(c.b[start:c.i], &s) != nil {
			return nil, false
		}
		k = []byte(s)
	}
	if c.peek() != ':' {
		return nil, false
	}
	c.i++
	return k, true
}

// document reads {"instances": [...]} (other keys ignored) or a bare array
// of instances.
func (c *jcur) document(features []string, index map[string]int, row []float64, emit rowSink) *httpError {
	if c.peek() == '{' {
		c.i++
		found := false
		for c.next('}') {
			k, ok := c.key()
			if !ok {
				return badInput("json: malformed object")
			}
			if string(k) != "instances" {
				c.skip()
				continue
			}
			if found {
				return badInput(`json: "instances" appears twice`)
			}
			if c.peek() != '[' {
				return badInput(`json: "instances" must be an array`)
			}
			found = true
			if herr := c.instances(features, index, row, emit); herr != nil {
				return herr
			}
		}
		if !found {
			return badInput(`json: want {"instances": [...]} or an array of instances`)
		}
		return nil
	}
	if c.peek() != '[' {
		return badInput(`json: want {"instances": [...]} or an array of instances`)
	}
	return c.instances(features, index, row, emit)
}

func (c *jcur) instances(features []string, index map[string]int, row []float64, emit rowSink) *httpError {
	c.i++ // '['
	n := 0
	for c.next(']') {
		n++
		if herr := c.instance(loc{"json: row", n}, features, index, row); herr != nil {
			return herr
		}
		if herr := emit(row); herr != nil {
			return herr
		}
	}
	return nil
}

// instance reads [v...], {"features": [v...]} or {"name": v, ...} into row;
// null or an absent name is a missing value.
func (c *jcur) instance(where loc, features []string, index map[string]int, row []float64) *httpError {
	switch c.peek() {
	case '[':
		return c.values(where, features, row)
	case '{':
	default:
		return badInput("%s: an instance must be an array of values or an object", where)
	}
	// {"features": [...]} wins over names, as before: look for it first.
	start := c.i
	c.i++
	for c.next('}') {
		k, ok := c.key()
		if !ok {
			return badInput("%s: malformed object", where)
		}
		if string(k) == "features" && c.peek() == '[' {
			if herr := c.values(where, features, row); herr != nil {
				return herr
			}
			c.i = start
			c.skip()
			return nil
		}
		c.skip()
	}
	end := c.i
	c.i = start + 1
	for j := range row {
		row[j] = math.NaN()
	}
	for c.next('}') {
		k, ok := c.key()
		if !ok {
			return badInput("%s: malformed object", where)
		}
		j, known := index[string(k)]
		if !known {
			return badInput("%s: unknown feature %q", where, clip(k))
		}
		v, herr := c.value(where, j, features)
		if herr != nil {
			return herr
		}
		row[j] = v
	}
	c.i = end
	return nil
}

// values reads an array of exactly len(features) numbers or nulls.
func (c *jcur) values(where loc, features []string, row []float64) *httpError {
	c.i++ // '['
	j := 0
	for c.next(']') {
		if j == len(features) {
			for c.next(']') {
				c.skip()
				j++
			}
			break
		}
		v, herr := c.value(where, j, features)
		if herr != nil {
			return herr
		}
		row[j] = v
		j++
	}
	if j != len(features) {
		return badInput("%s: %d values, the model takes %d features", where, j, len(features))
	}
	return nil
}

// value reads one number or null for feature j.
func (c *jcur) value(where loc, j int, features []string) (float64, *httpError) {
	switch ch := c.peek(); {
	case ch == 'n':
		c.token()
		return math.NaN(), nil
	case ch == '-' || (ch >= '0' && ch <= '9'):
		v, err := parseValue(c.token())
		if err != nil {
			return 0, badInput("%s, column %d (%s): %v", where, j+1, features[j], err)
		}
		return v, nil
	default:
		start := c.i
		c.skip()
		return 0, badInput("%s, column %d (%s): %s is not a number or null", where, j+1, features[j], clip(c.b[start:min(c.i, len(c.b))]))
	}
}
