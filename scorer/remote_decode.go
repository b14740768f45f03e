package scorer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/streamscore/streamscore/scorer/remotespec"
)

// decoder reads a response of one content type into scores.
type decoder struct {
	accept string
	path   *remotespec.ScorePath
}

// parse reads the scores of rows (the batch rows of one request, in the
// order sent) from body.
func (d *decoder) parse(body []byte, rows []int32, scores [][]float64) error {
	switch d.accept {
	case remotespec.ContentJSON:
		return d.parseJSON(body, rows, scores)
	case remotespec.ContentJSONLines:
		return d.parseJSONLines(body, rows, scores)
	}
	return parseCSVScores(body, rows, scores)
}

// parseCSVScores reads text/csv predictions. It accepts one line per row
// (classes comma-separated) as well as the single comma-separated line
// SageMaker's XGBoost container returns for real-time requests, with the
// brackets it writes around each multi-class row.
func parseCSVScores(body []byte, rows []int32, scores [][]float64) error {
	k := len(scores)
	want := len(rows) * k
	idx := 0
	for len(body) > 0 {
		var tok []byte
		j := bytes.IndexAny(body, ",\n")
		if j < 0 {
			tok, body = body, nil
		} else {
			tok, body = body[:j], body[j+1:]
		}
		tok = bytes.Trim(tok, " \r\t[]")
		if len(tok) == 0 {
			continue
		}
		if idx >= want {
			return fmt.Errorf("response has more than %d values for %d rows", want, len(rows))
		}
		v, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return fmt.Errorf("response value %d: %q is not a number", idx, clip(tok))
		}
		scores[idx%k][rows[idx/k]] = v
		idx++
	}
	if idx != want {
		return fmt.Errorf("response has %d values, want %d (%d rows x %d outputs)", idx, want, len(rows), k)
	}
	return nil
}

func (d *decoder) parseJSON(body []byte, rows []int32, scores [][]float64) error {
	if !json.Valid(body) {
		return responseSyntax("response", body)
	}
	c := jcur{b: body}
	rowsAt, _ := d.path.Steps()
	if err := descend(&c, rowsAt); err != nil {
		return fmt.Errorf("response: %s: %w", d.path, err)
	}
	if c.peek() != '[' {
		return fmt.Errorf("response: %s: the value marked * is not an array of rows", d.path)
	}
	c.i++
	n := 0
	for c.next(']') {
		if n >= len(rows) {
			return fmt.Errorf("response has more than the %d rows sent", len(rows))
		}
		e := c // the row, read on a copy; c skips past it
		if err := d.score(&e, int(rows[n]), scores); err != nil {
			return fmt.Errorf("response row %d: %s: %w", n+1, d.path, err)
		}
		c.skip()
		n++
	}
	if n != len(rows) {
		return fmt.Errorf("response has %d rows, %d were sent", n, len(rows))
	}
	return nil
}

func (d *decoder) parseJSONLines(body []byte, rows []int32, scores [][]float64) error {
	n := 0
	for line := 1; len(body) > 0; line++ {
		var l []byte
		l, body = nextLine(body)
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		if n >= len(rows) {
			return fmt.Errorf("response has more than the %d rows sent", len(rows))
		}
		if !json.Valid(l) {
			return responseSyntax(fmt.Sprintf("response line %d", line), l)
		}
		c := jcur{b: l}
		if err := d.score(&c, int(rows[n]), scores); err != nil {
			return fmt.Errorf("response line %d: %s: %w", line, d.path, err)
		}
		n++
	}
	if n != len(rows) {
		return fmt.Errorf("response has %d lines of scores, %d rows were sent", n, len(rows))
	}
	return nil
}

// score reads one row's scores at the path's in-row steps into row i.
func (d *decoder) score(c *jcur, i int, scores [][]float64) error {
	_, inRow := d.path.Steps()
	if err := descend(c, inRow); err != nil {
		return err
	}
	switch ch := c.peek(); {
	case ch == '[':
		c.i++
		k := 0
		for c.next(']') {
			if k == len(scores) {
				return fmt.Errorf("more than the %d scores configured (outputs)", len(scores))
			}
			v, err := number(c)
			if err != nil {
				return fmt.Errorf("score %d: %w", k, err)
			}
			scores[k][i] = v
			k++
		}
		if k != len(scores) {
			return fmt.Errorf("%d scores, want %d (outputs)", k, len(scores))
		}
		return nil
	case len(scores) != 1:
		return fmt.Errorf("one score, want an array of %d (outputs)", len(scores))
	default:
		v, err := number(c)
		if err != nil {
			return err
		}
		scores[0][i] = v
		return nil
	}
}

// number reads a JSON number at c.
func number(c *jcur) (float64, error) {
	switch ch := c.peek(); {
	case ch == '-' || (ch >= '0' && ch <= '9'):
		tok := c.token()
		v, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is beyond the range of a float64", clip(tok))
		}
		return v, nil
	default:
		start := c.i
		c.skip()
		return 0, fmt.Errorf("%s is not a number", clip(c.b[start:min(c.i, len(c.b))]))
	}
}

// descend moves c to the value the steps lead to, in a document known to
// be valid.
func descend(c *jcur, steps []remotespec.Step) error {
	for _, s := range steps {
		switch {
		case s.Key != "":
			if c.peek() != '{' {
				return fmt.Errorf("no object where key %q should be", s.Key)
			}
			c.i++
			found := false
			for c.next('}') {
				k, ok := c.key()
				if !ok {
					return fmt.Errorf("malformed object")
				}
				if string(k) == s.Key {
					found = true
					break
				}
				c.skip()
			}
			if !found {
				return fmt.Errorf("no key %q", s.Key)
			}
		default:
			if c.peek() != '[' {
				return fmt.Errorf("no array where index [%d] should be", s.Index)
			}
			c.i++
			found := false
			for n := 0; c.next(']'); n++ {
				if n == s.Index {
					found = true
					break
				}
				c.skip()
			}
			if !found {
				return fmt.Errorf("index [%d] is past the end of its array", s.Index)
			}
		}
	}
	return nil
}

// responseSyntax says where an invalid JSON response goes wrong.
func responseSyntax(where string, b []byte) error {
	if herr := jsonSyntax(where, b); herr != nil {
		return fmt.Errorf("%s", herr.msg)
	}
	return fmt.Errorf("%s: invalid JSON", where)
}
