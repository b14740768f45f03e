package scorer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Default score paths, by response content type: the shapes SageMaker's
// built-in XGBoost and Linear Learner containers answer (and `streamscore
// serve`): {"predictions": [{"score": s}, ...]} and one {"score": s} per
// line, s a number or, for multi-class models, an array of numbers.
const (
	DefaultJSONScorePath      = "predictions.*.score"
	DefaultJSONLinesScorePath = "score"
)

// ScorePath says where the score(s) of each row are in a JSON or JSON lines
// response. It is a dotted path of object keys and array indexes, with one
// "*" marking the array whose elements are the rows:
//
//	predictions.*.score        {"predictions": [{"score": 0.3}, ...]}
//	predictions.*.probability  XGBoost's selectable inference output
//	predictions.*.probabilities[1]  the class-1 probability of [p0, p1]
//	outputs.*                  {"outputs": [[0.1, 0.9], ...]}
//	*                          a bare array: [0.3, ...] or [[0.1, 0.9], ...]
//	$                          (JSON lines) each line is the score itself
//
// A step is an object key (any characters but . [ ] * and white space), an
// index [n], or * ([*] too). "$" alone, or as the first step, is the
// document itself. A JSON lines response has one row per line, so its path
// has no "*" and is applied to each line. The value found is a number (one
// output) or an array of exactly RemoteConfig.Outputs numbers.
type ScorePath struct {
	text   string
	before []scoreStep // to the rows array (JSON only)
	after  []scoreStep // within one row
}

type scoreStep struct {
	key   string // an object key; "" for an index step
	index int    // an array index; -1 for the rows wildcard
}

// String returns the path as written.
func (p *ScorePath) String() string { return p.text }

// ParseScorePath parses path for responses of content type accept (the
// default path of that type when path is empty). It returns an error saying
// what is wrong and how to write it.
func ParseScorePath(path, accept string) (*ScorePath, error) {
	accept, err := ParseContentType(accept)
	if err != nil {
		return nil, err
	}
	if path == "" {
		switch accept {
		case ContentJSON:
			path = DefaultJSONScorePath
		case ContentJSONLines:
			path = DefaultJSONLinesScorePath
		default:
			return &ScorePath{}, nil
		}
	}
	if accept == ContentCSV {
		return nil, fmt.Errorf("score path %q: a text/csv response has no paths (one line of scores per row); accept application/json or application/jsonlines to pick scores out of a document", path)
	}
	steps, err := parseSteps(path)
	if err != nil {
		return nil, fmt.Errorf("score path %q: %w", path, err)
	}
	p := &ScorePath{text: path}
	wild := -1
	for i, s := range steps {
		if s.key == "" && s.index < 0 {
			if wild >= 0 {
				return nil, fmt.Errorf("score path %q: more than one *; only the array of rows is marked", path)
			}
			wild = i
		}
	}
	switch {
	case accept == ContentJSON && wild < 0:
		return nil, fmt.Errorf("score path %q: an application/json response holds every row: mark the array of rows with * (e.g. %s)", path, DefaultJSONScorePath)
	case accept == ContentJSONLines && wild >= 0:
		return nil, fmt.Errorf("score path %q: an application/jsonlines response has one row per line, so the path starts inside a row and has no * (e.g. %s, or $ for the line itself)", path, DefaultJSONLinesScorePath)
	case wild >= 0:
		p.before, p.after = steps[:wild], steps[wild+1:]
	default:
		p.after = steps
	}
	return p, nil
}

func parseSteps(path string) ([]scoreStep, error) {
	if strings.TrimSpace(path) != path {
		return nil, fmt.Errorf("leading or trailing white space")
	}
	rest := path
	if rest == "$" {
		return nil, nil
	}
	if strings.HasPrefix(rest, "$[") {
		rest = rest[1:]
	}
	rest = strings.TrimPrefix(rest, "$.")
	var steps []scoreStep
	for seg := range strings.SplitSeq(rest, ".") {
		if seg == "" {
			return nil, fmt.Errorf("an empty step (a leading, trailing or doubled dot)")
		}
		if seg == "*" {
			steps = append(steps, scoreStep{index: -1})
			continue
		}
		name := seg
		if i := strings.IndexByte(seg, '['); i >= 0 {
			name, seg = seg[:i], seg[i:]
		} else {
			seg = ""
		}
		if strings.ContainsAny(name, "[]*$ \t\r\n\"") {
			return nil, fmt.Errorf("key %q: a key has none of [ ] * $ \" or white space", name)
		}
		if name != "" {
			steps = append(steps, scoreStep{key: name})
		}
		for seg != "" {
			end := strings.IndexByte(seg, ']')
			if seg[0] != '[' || end < 0 {
				return nil, fmt.Errorf("%q: want [n] or [*] after a key", seg)
			}
			in := seg[1:end]
			seg = seg[end+1:]
			if in == "*" {
				steps = append(steps, scoreStep{index: -1})
				continue
			}
			n, err := strconv.Atoi(in)
			if err != nil || n < 0 || n > 1<<20 || strings.HasPrefix(in, "+") {
				return nil, fmt.Errorf("[%s]: an index is a number from 0", in)
			}
			steps = append(steps, scoreStep{index: n})
		}
	}
	return steps, nil
}

// decoder reads a response of one content type into scores.
type decoder struct {
	accept string
	path   *ScorePath
}

// parse reads the scores of rows (the batch rows of one request, in the
// order sent) from body.
func (d *decoder) parse(body []byte, rows []int32, scores [][]float64) error {
	switch d.accept {
	case ContentJSON:
		return d.parseJSON(body, rows, scores)
	case ContentJSONLines:
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
	if err := descend(&c, d.path.before); err != nil {
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
	if err := descend(c, d.path.after); err != nil {
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
func descend(c *jcur, steps []scoreStep) error {
	for _, s := range steps {
		switch {
		case s.key != "":
			if c.peek() != '{' {
				return fmt.Errorf("no object where key %q should be", s.key)
			}
			c.i++
			found := false
			for c.next('}') {
				k, ok := c.key()
				if !ok {
					return fmt.Errorf("malformed object")
				}
				if string(k) == s.key {
					found = true
					break
				}
				c.skip()
			}
			if !found {
				return fmt.Errorf("no key %q", s.key)
			}
		default:
			if c.peek() != '[' {
				return fmt.Errorf("no array where index [%d] should be", s.index)
			}
			c.i++
			found := false
			for n := 0; c.next(']'); n++ {
				if n == s.index {
					found = true
					break
				}
				c.skip()
			}
			if !found {
				return fmt.Errorf("index [%d] is past the end of its array", s.index)
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
