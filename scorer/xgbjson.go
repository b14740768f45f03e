package scorer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// A single-pass JSON reader for XGBoost model documents. encoding/json is
// several times too slow for large models (a 500-tree depth-8 model is tens
// of megabytes, nearly all numbers), and XGBoost writes NaN and Infinity as
// bare literals, which JSON forbids. The reader fills the fields prediction
// needs and skips everything else without building values.

const jsonMaxDepth = 64

type jreader struct {
	b     []byte
	pos   int
	depth int
}

// errJSON is wrapped by every syntax error of the model reader.
var errJSON = errors.New("json")

func (r *jreader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", errJSON, r.pos, fmt.Sprintf(format, args...))
}

func (r *jreader) ws() {
	for r.pos < len(r.b) {
		switch r.b[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

func (r *jreader) peek() byte {
	r.ws()
	if r.pos >= len(r.b) {
		return 0
	}
	return r.b[r.pos]
}

func (r *jreader) expect(c byte) error {
	if r.peek() != c {
		if r.pos >= len(r.b) {
			return r.errorf("unexpected end of input, want %q", c)
		}
		return r.errorf("found %q, want %q", r.b[r.pos], c)
	}
	r.pos++
	return nil
}

// str reads a string. Strings without escapes are returned without copying
// the bytes more than once.
func (r *jreader) str() (string, error) {
	if err := r.expect('"'); err != nil {
		return "", err
	}
	start := r.pos
	escaped := false
	for r.pos < len(r.b) {
		c := r.b[r.pos]
		switch {
		case c == '"':
			s := r.b[start:r.pos]
			r.pos++
			if !escaped {
				if !utf8.Valid(s) {
					return "", r.errorf("string is not valid UTF-8")
				}
				return string(s), nil
			}
			u, err := strconv.Unquote(`"` + string(s) + `"`)
			if err != nil {
				return "", r.errorf("bad string escape")
			}
			return u, nil
		case c == '\\':
			escaped = true
			r.pos += 2
		case c < 0x20:
			return "", r.errorf("control character in string")
		default:
			r.pos++
		}
	}
	return "", r.errorf("unterminated string")
}

// object calls fn for each member; fn must consume the value.
func (r *jreader) object(fn func(key string) error) error {
	if err := r.expect('{'); err != nil {
		return err
	}
	if r.depth++; r.depth > jsonMaxDepth {
		return r.errorf("nesting deeper than %d", jsonMaxDepth)
	}
	defer func() { r.depth-- }()
	if r.peek() == '}' {
		r.pos++
		return nil
	}
	for {
		k, err := r.str()
		if err != nil {
			return err
		}
		if err := r.expect(':'); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.pos++
		case '}':
			r.pos++
			return nil
		default:
			return r.errorf("want ',' or '}' in object")
		}
	}
}

// array calls fn for each element; fn must consume the value.
func (r *jreader) array(fn func(i int) error) error {
	if err := r.expect('['); err != nil {
		return err
	}
	if r.depth++; r.depth > jsonMaxDepth {
		return r.errorf("nesting deeper than %d", jsonMaxDepth)
	}
	defer func() { r.depth-- }()
	if r.peek() == ']' {
		r.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := fn(i); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			return nil
		default:
			return r.errorf("want ',' or ']' in array")
		}
	}
}

// token returns the bytes of a number or literal.
func (r *jreader) token() []byte {
	r.ws()
	start := r.pos
	for r.pos < len(r.b) {
		c := r.b[r.pos]
		if c == ',' || c == ']' || c == '}' || c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == ':' || c == '"' || c == '[' || c == '{' {
			break
		}
		r.pos++
	}
	return r.b[start:r.pos]
}

// skip consumes any value.
func (r *jreader) skip() error {
	switch r.peek() {
	case '{':
		return r.object(func(string) error { return r.skip() })
	case '[':
		return r.array(func(int) error { return r.skip() })
	case '"':
		_, err := r.str()
		return err
	case 0:
		return r.errorf("unexpected end of input")
	}
	if len(r.token()) == 0 {
		return r.errorf("unexpected %q", r.b[r.pos])
	}
	return nil
}

func (r *jreader) string() (string, error) {
	if r.peek() == 'n' {
		if string(r.token()) == "null" {
			return "", nil
		}
		return "", r.errorf("want a string")
	}
	return r.str()
}

func (r *jreader) int() (int64, error) {
	t := r.token()
	v, ok := parseInt(t)
	if !ok {
		return 0, r.errorf("%.30q is not an integer", t)
	}
	return v, nil
}

// parseInt is a fast path for the plain integers that fill tree arrays.
func parseInt(t []byte) (int64, bool) {
	if len(t) == 0 || len(t) > 19 {
		return 0, false
	}
	neg := t[0] == '-'
	if neg {
		t = t[1:]
		if len(t) == 0 {
			return 0, false
		}
	}
	var v int64
	for _, c := range t {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// float32 reads a number exactly as float32 (no rounding through float64),
// accepting XGBoost's NaN and Infinity literals.
func (r *jreader) float32() (float32, error) {
	t := r.token()
	switch string(t) {
	case "NaN", "nan":
		return float32(math.NaN()), nil
	case "Infinity", "inf":
		return float32(math.Inf(1)), nil
	case "-Infinity", "-inf":
		return float32(math.Inf(-1)), nil
	}
	if len(t) == 0 || (t[0] != '-' && (t[0] < '0' || t[0] > '9')) {
		return 0, r.errorf("%.30q is not a number", t)
	}
	v, err := strconv.ParseFloat(string(t), 32)
	if err != nil {
		return 0, r.errorf("%.30q is not a float32", t)
	}
	return float32(v), nil
}

func (r *jreader) ints32(dst *[]int32) error {
	return r.array(func(int) error {
		v, err := r.int()
		if err != nil {
			return err
		}
		if v < math.MinInt32 || v > math.MaxInt32 {
			return r.errorf("%d does not fit in 32 bits", v)
		}
		*dst = append(*dst, int32(v))
		return nil
	})
}

func (r *jreader) ints64(dst *[]int64) error {
	return r.array(func(int) error {
		v, err := r.int()
		*dst = append(*dst, v)
		return err
	})
}

func (r *jreader) ints(dst *[]int) error {
	return r.array(func(int) error {
		v, err := r.int()
		*dst = append(*dst, int(v))
		return err
	})
}

func (r *jreader) floats32(dst *[]float32) error {
	return r.array(func(int) error {
		v, err := r.float32()
		*dst = append(*dst, v)
		return err
	})
}

func (r *jreader) bools(dst *[]bool) error {
	return r.array(func(int) error {
		switch string(r.token()) {
		case "0", "false":
			*dst = append(*dst, false)
		case "1", "true":
			*dst = append(*dst, true)
		default:
			return r.errorf("want 0, 1, true or false")
		}
		return nil
	})
}

func (r *jreader) strings(dst *[]string) error {
	return r.array(func(int) error {
		s, err := r.str()
		*dst = append(*dst, s)
		return err
	})
}

func (r *jreader) stringMap(dst map[string]string) error {
	return r.object(func(k string) error {
		if r.peek() != '"' {
			return r.skip()
		}
		v, err := r.str()
		dst[k] = v
		return err
	})
}

// decodeXGBoost reads an XGBoost JSON model document into doc.
func decodeXGBoost(b []byte, doc *xgbDoc) error {
	r := &jreader{b: b}
	err := r.object(func(k string) error {
		switch k {
		case "learner":
			doc.Learner = &xgbLearner{Attributes: map[string]string{}}
			return r.learner(doc.Learner)
		case "version":
			return r.ints(&doc.Version)
		}
		return r.skip()
	})
	if err != nil {
		return err
	}
	if r.ws(); r.pos != len(r.b) {
		return r.errorf("trailing data after the model")
	}
	return nil
}

func (r *jreader) learner(l *xgbLearner) error {
	return r.object(func(k string) error {
		switch k {
		case "attributes":
			return r.stringMap(l.Attributes)
		case "feature_names":
			return r.strings(&l.FeatureNames)
		case "feature_types":
			return r.strings(&l.FeatureTypes)
		case "gradient_booster":
			return r.booster(&l.GradientBooster)
		case "learner_model_param":
			p := &l.LearnerModelParam
			return r.object(func(k string) error {
				var dst *string
				switch k {
				case "base_score":
					dst = &p.BaseScore
				case "num_class":
					dst = &p.NumClass
				case "num_feature":
					dst = &p.NumFeature
				case "num_target":
					dst = &p.NumTarget
				default:
					return r.skip()
				}
				s, err := r.string()
				*dst = s
				return err
			})
		case "objective":
			return r.object(func(k string) error {
				if k == "name" {
					s, err := r.string()
					l.Objective.Name = s
					return err
				}
				return r.skip()
			})
		}
		return r.skip()
	})
}

// booster reads learner.gradient_booster. XGBoost writes the members in
// key order, so "model" comes before "name" says whose model it is: it is
// read as either body (gbtree's trees or gblinear's weights) and kept as
// the one the name selects.
func (r *jreader) booster(gb *xgbBooster) error {
	var (
		model, dart *xgbGBTreeBody
		lin         *xgbLinearBody
	)
	err := r.object(func(k string) error {
		switch k {
		case "name":
			s, err := r.string()
			gb.Name = s
			return err
		case "model":
			model, lin = &xgbGBTreeBody{}, &xgbLinearBody{}
			return r.gbtree(model, lin)
		case "gbtree": // dart: {"name": "gbtree", "model": {...}}
			return r.object(func(k string) error {
				if k != "model" {
					return r.skip()
				}
				dart = &xgbGBTreeBody{}
				return r.gbtree(dart, nil)
			})
		case "weight_drop":
			return r.floats32(&gb.WeightDrop)
		}
		return r.skip()
	})
	switch gb.Name {
	case "dart":
		gb.Model = dart
	case "gblinear":
		gb.Linear = lin
	default:
		gb.Model = model
	}
	return err
}

// gbtree reads a gbtree model body; lin, when not nil, receives gblinear's
// weights should the body be gblinear's.
func (r *jreader) gbtree(g *xgbGBTreeBody, lin *xgbLinearBody) error {
	return r.object(func(k string) error {
		switch k {
		case "weights":
			if lin == nil {
				return r.skip()
			}
			return r.floats32(&lin.Weights)
		case "gbtree_model_param":
			p := &g.Param
			return r.object(func(k string) error {
				var dst *string
				switch k {
				case "num_parallel_tree":
					dst = &p.NumParallelTree
				case "num_trees":
					dst = &p.NumTrees
				case "size_leaf_vector":
					dst = &p.SizeLeafVector
				default:
					return r.skip()
				}
				s, err := r.string()
				*dst = s
				return err
			})
		case "iteration_indptr":
			return r.ints(&g.IterationIndptr)
		case "tree_info":
			return r.ints(&g.TreeInfo)
		case "trees":
			return r.array(func(int) error {
				g.Trees = append(g.Trees, xgbTree{})
				return r.tree(&g.Trees[len(g.Trees)-1])
			})
		}
		return r.skip()
	})
}

func (r *jreader) tree(t *xgbTree) error {
	return r.object(func(k string) error {
		switch k {
		case "left_children":
			return r.ints32(&t.LeftChildren)
		case "right_children":
			return r.ints32(&t.RightChildren)
		case "split_indices":
			return r.ints64(&t.SplitIndices)
		case "split_conditions":
			return r.floats32(&t.SplitConditions)
		case "sum_hessian":
			return r.floats32(&t.SumHessian)
		case "default_left":
			return r.bools(&t.DefaultLeft)
		case "split_type":
			return r.ints32(&t.SplitType)
		case "categories":
			return r.ints64(&t.Categories)
		case "categories_nodes":
			return r.ints64(&t.CategoriesNodes)
		case "categories_segments":
			return r.ints64(&t.CategoriesSegments)
		case "categories_sizes":
			return r.ints64(&t.CategoriesSizes)
		case "tree_param":
			return r.object(func(k string) error {
				var dst *string
				switch k {
				case "num_nodes":
					dst = &t.TreeParam.NumNodes
				case "size_leaf_vector":
					dst = &t.TreeParam.SizeLeafVector
				default:
					return r.skip()
				}
				s, err := r.string()
				*dst = s
				return err
			})
		}
		return r.skip()
	})
}
