package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int
	// Path is the key's path, e.g. windows[0].features[2].agg.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	}
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(e.Line))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in line order. Match a single
// one with errors.As(err, new(*config.Error)).
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As reach each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a configuration; file names it in errors.
func Parse(data []byte, file string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{syntaxError(err, file)}
	}
	idx := newIndex(&root)

	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeErrors(err, file, idx)
	}
	cfg.File = file
	cfg.applyDefaults()
	if errs := cfg.validate(); len(errs) > 0 {
		for _, e := range errs {
			e.File = file
			e.Line = idx.lineOf(e.Path)
		}
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, errs
	}
	return &cfg, nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func syntaxError(err error, file string) *Error {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: n, Msg: "YAML syntax: " + m[2]}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

var (
	unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	wrongTypeRE    = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// decodeErrors turns yaml.v3's errors into ones that name the key path.
func decodeErrors(err error, file string, idx *index) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return Errors{{File: file, Msg: err.Error()}}
	}
	var out Errors
	for _, s := range te.Errors {
		m := lineRE.FindStringSubmatch(s)
		if m == nil {
			out = append(out, &Error{File: file, Msg: s})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		msg := m[2]
		e := &Error{File: file, Line: line}
		if u := unknownFieldRE.FindStringSubmatch(msg); u != nil {
			e.Path = idx.pathAt(line, true)
			e.Msg = fmt.Sprintf("unknown key %q", u[1])
			if parent := idx.parentPath(e.Path); parent != "" {
				e.Msg += " in " + parent
			}
		} else if w := wrongTypeRE.FindStringSubmatch(msg); w != nil {
			e.Path = idx.pathAt(line, false)
			e.Msg = fmt.Sprintf("expected %s, got %s %q", goTypeName(w[3]), yamlTagName(w[1]), w[2])
		} else {
			e.Path = idx.pathAt(line, false)
			e.Msg = msg
		}
		out = append(out, e)
	}
	return out
}

func goTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."):
		return "a mapping"
	case t == "time.Time":
		return "an RFC 3339 timestamp"
	}
	return t
}

func yamlTagName(tag string) string {
	switch tag {
	case "str":
		return "the string"
	case "int":
		return "the integer"
	case "float":
		return "the number"
	case "bool":
		return "the boolean"
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	}
	return tag
}

// index maps key paths to lines and back, from the parsed YAML tree.
type index struct {
	lines map[string]int
	// keys and values on each line, deepest last.
	keyAt, valAt map[int][]string
}

func newIndex(root *yaml.Node) *index {
	idx := &index{lines: map[string]int{}, keyAt: map[int][]string{}, valAt: map[int][]string{}}
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		idx.walk(root.Content[0], "")
	}
	return idx
}

func (idx *index) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			idx.lines[p] = k.Line
			idx.keyAt[k.Line] = append(idx.keyAt[k.Line], p)
			idx.valAt[v.Line] = append(idx.valAt[v.Line], p)
			idx.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			idx.lines[p] = item.Line
			idx.valAt[item.Line] = append(idx.valAt[item.Line], p)
			idx.walk(item, p)
		}
	}
}

// pathAt returns the deepest key path on the line: the key itself for an
// unknown key, the key whose value sits there otherwise.
func (idx *index) pathAt(line int, key bool) string {
	var cands []string
	if key {
		cands = idx.keyAt[line]
	}
	if len(cands) == 0 {
		cands = idx.valAt[line]
	}
	if len(cands) == 0 {
		cands = idx.keyAt[line]
	}
	if len(cands) == 0 {
		return ""
	}
	return cands[len(cands)-1]
}

// lineOf finds the line of a path, or of its nearest ancestor present in
// the file (a missing required key is reported where its parent is).
func (idx *index) lineOf(path string) int {
	for p := path; p != ""; p = idx.parentPath(p) {
		if l, ok := idx.lines[p]; ok {
			return l
		}
	}
	return 0
}

func (idx *index) parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}
