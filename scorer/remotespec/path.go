package remotespec

import (
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
// A step is an object key (any characters but . [ ] * $ " and white
// space), an index [n], or * ([*] too). "$" alone, or as the first step, is
// the document itself. A JSON lines response has one row per line, so its
// path has no "*" and is applied to each line. The value found is a number
// (one output) or an array of exactly as many numbers as the model has
// outputs.
type ScorePath struct {
	text      string
	rows, row []Step
}

// Step is one step of a path: an object key, or an array index.
type Step struct {
	// Key is the object key; "" for an index step.
	Key string
	// Index is the array index of an index step.
	Index int
}

// String returns the path as written (the default's, when none was).
func (p *ScorePath) String() string { return p.text }

// Steps returns the steps to the array of rows (JSON only) and those
// within one row.
func (p *ScorePath) Steps() (rows, row []Step) { return p.rows, p.row }

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
	steps, wild, err := parseSteps(path)
	if err != nil {
		return nil, fmt.Errorf("score path %q: %w", path, err)
	}
	p := &ScorePath{text: path}
	switch {
	case accept == ContentJSON && wild < 0:
		return nil, fmt.Errorf("score path %q: an application/json response holds every row: mark the array of rows with * (e.g. %s)", path, DefaultJSONScorePath)
	case accept == ContentJSONLines && wild >= 0:
		return nil, fmt.Errorf("score path %q: an application/jsonlines response has one row per line, so the path starts inside a row and has no * (e.g. %s, or $ for the line itself)", path, DefaultJSONLinesScorePath)
	case wild >= 0:
		p.rows, p.row = steps[:wild], steps[wild:]
	default:
		p.row = steps
	}
	return p, nil
}

// parseSteps returns the steps of path with the wildcard's removed, and
// where it stood (-1 for none).
func parseSteps(path string) ([]Step, int, error) {
	if strings.TrimSpace(path) != path {
		return nil, -1, fmt.Errorf("leading or trailing white space")
	}
	rest := path
	if rest == "$" {
		return nil, -1, nil
	}
	if strings.HasPrefix(rest, "$[") {
		rest = rest[1:]
	}
	rest = strings.TrimPrefix(rest, "$.")
	var steps []Step
	wild := -1
	star := func() error {
		if wild >= 0 {
			return fmt.Errorf("more than one *; only the array of rows is marked")
		}
		wild = len(steps)
		return nil
	}
	for seg := range strings.SplitSeq(rest, ".") {
		if seg == "" {
			return nil, -1, fmt.Errorf("an empty step (a leading, trailing or doubled dot)")
		}
		if seg == "*" {
			if err := star(); err != nil {
				return nil, -1, err
			}
			continue
		}
		name := seg
		if i := strings.IndexByte(seg, '['); i >= 0 {
			name, seg = seg[:i], seg[i:]
		} else {
			seg = ""
		}
		if strings.ContainsAny(name, "[]*$ \t\r\n\"") {
			return nil, -1, fmt.Errorf("key %q: a key has none of [ ] * $ \" or white space", name)
		}
		if name != "" {
			steps = append(steps, Step{Key: name})
		}
		for seg != "" {
			end := strings.IndexByte(seg, ']')
			if seg[0] != '[' || end < 0 {
				return nil, -1, fmt.Errorf("%q: want [n] or [*] after a key", seg)
			}
			in := seg[1:end]
			seg = seg[end+1:]
			if in == "*" {
				if err := star(); err != nil {
					return nil, -1, err
				}
				continue
			}
			n, err := strconv.Atoi(in)
			if err != nil || n < 0 || n > 1<<20 || strings.HasPrefix(in, "+") {
				return nil, -1, fmt.Errorf("[%s]: an index is a number from 0", in)
			}
			steps = append(steps, Step{Index: n})
		}
	}
	return steps, wild, nil
}
