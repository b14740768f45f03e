package retrain

// A validator for the subset of JSON Schema (2020-12) that
// schema/events-v1.schema.json uses. It refuses any keyword it does not
// check, so the schema cannot promise a rule the tests do not hold.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const schemaFile = "schema/events-v1.schema.json"

type jsonSchema struct {
	root map[string]any
}

func loadSchema(t testing.TB) *jsonSchema {
	t.Helper()
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	return &jsonSchema{root: v.(map[string]any)}
}

// decodeJSON keeps numbers as json.Number, so integers can be told apart.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// def returns the schema at a "#/$defs/Name" reference.
func (s *jsonSchema) def(ref string) (map[string]any, error) {
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok {
		return nil, fmt.Errorf("unsupported $ref %q", ref)
	}
	d, ok := s.root["$defs"].(map[string]any)[name].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q: no such definition", ref)
	}
	return d, nil
}

// validate checks doc (decoded by decodeJSON) against the schema at ref
// ("" for the root), returning every problem with its JSON path.
func (s *jsonSchema) validate(ref string, doc any) []string {
	sch := s.root
	if ref != "" {
		var err error
		if sch, err = s.def(ref); err != nil {
			return []string{err.Error()}
		}
	}
	return s.check(sch, doc, "$")
}

func (s *jsonSchema) check(sch map[string]any, v any, path string) []string {
	var errs []string
	fail := func(format string, a ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, a...)) }
	obj, isObj := v.(map[string]any)
	for kw, arg := range sch {
		switch kw {
		case "$schema", "title", "description", "$defs":
		case "$ref":
			d, err := s.def(arg.(string))
			if err != nil {
				fail("%v", err)
				continue
			}
			errs = append(errs, s.check(d, v, path)...)
		case "type":
			types := []string{}
			switch a := arg.(type) {
			case string:
				types = append(types, a)
			case []any:
				for _, x := range a {
					types = append(types, x.(string))
				}
			}
			if !slices.ContainsFunc(types, func(ty string) bool { return hasType(v, ty) }) {
				fail("%s is not of type %v", short(v), types)
			}
		case "const":
			if !jsonEqual(v, arg) {
				fail("%s is not %s", short(v), short(arg))
			}
		case "enum":
			if !slices.ContainsFunc(arg.([]any), func(e any) bool { return jsonEqual(v, e) }) {
				fail("%s is not one of %s", short(v), short(arg))
			}
		case "required":
			if isObj {
				for _, r := range arg.([]any) {
					if _, ok := obj[r.(string)]; !ok {
						fail("%s is required", r)
					}
				}
			}
		case "properties":
			if isObj {
				for name, ps := range arg.(map[string]any) {
					if pv, ok := obj[name]; ok {
						errs = append(errs, s.check(ps.(map[string]any), pv, path+"."+name)...)
					}
				}
			}
		case "additionalProperties":
			if arg != false {
				fail("schema: additionalProperties must be false, got %v", arg)
			}
			if isObj {
				props, _ := sch["properties"].(map[string]any)
				for name := range obj {
					if _, ok := props[name]; !ok {
						fail("%s is not allowed", name)
					}
				}
			}
		case "items":
			if a, ok := v.([]any); ok {
				for i, x := range a {
					errs = append(errs, s.check(arg.(map[string]any), x, fmt.Sprintf("%s[%d]", path, i))...)
				}
			}
		case "minItems", "maxItems":
			if a, ok := v.([]any); ok {
				n := num(arg)
				if kw == "minItems" && float64(len(a)) < n || kw == "maxItems" && float64(len(a)) > n {
					fail("%d items, %s %v", len(a), kw, n)
				}
			}
		case "minimum", "maximum":
			if x, ok := v.(json.Number); ok {
				f, _ := x.Float64()
				if kw == "minimum" && f < num(arg) || kw == "maximum" && f > num(arg) {
					fail("%v is outside %s %v", f, kw, num(arg))
				}
			}
		case "minLength":
			if x, ok := v.(string); ok && float64(len([]rune(x))) < num(arg) {
				fail("%q is shorter than %v", x, num(arg))
			}
		case "pattern":
			if x, ok := v.(string); ok && !regexp.MustCompile(arg.(string)).MatchString(x) {
				fail("%q does not match %s", x, arg)
			}
		case "format":
			if arg != "date-time" {
				fail("schema: unsupported format %v", arg)
			}
			if x, ok := v.(string); ok {
				if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
					fail("%q is not an RFC 3339 date-time", x)
				}
			}
		case "oneOf":
			n := 0
			var why []string
			for i, alt := range arg.([]any) {
				if e := s.check(alt.(map[string]any), v, path); len(e) == 0 {
					n++
				} else {
					why = append(why, fmt.Sprintf("alternative %d: %s", i, strings.Join(e, "; ")))
				}
			}
			if n != 1 {
				fail("matches %d of oneOf's alternatives, not exactly one (%s)", n, strings.Join(why, " | "))
			}
		case "allOf":
			for _, alt := range arg.([]any) {
				errs = append(errs, s.check(alt.(map[string]any), v, path)...)
			}
		default:
			fail("schema: the test's validator does not check keyword %q", kw)
		}
	}
	return errs
}

func hasType(v any, ty string) bool {
	switch ty {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	}
	return false
}

func num(v any) float64 {
	f, _ := v.(json.Number).Float64()
	return f
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

// TestValidatorFails shows the validator refusing what it must: without
// this, a schema test that always passes would prove nothing.
func TestValidatorFails(t *testing.T) {
	s := loadSchema(t)
	for _, c := range []struct{ ref, doc string }{
		{"#/$defs/Time", `"yesterday"`},
		{"#/$defs/S3URI", `"/tmp/x"`},
		{"#/$defs/Number", `"1"`},
		{"#/$defs/ModelRef", `{"key": "k"}`},
		{"#/$defs/ModelRef", `{"key": "k", "path": "p", "extra": 1}`},
		{"#/$defs/ModelRef", `{"key": "k", "path": "p", "sha256": "abc"}`},
		{"#/$defs/ModelPromoted", `{"schema_version": 1, "pipeline": "p", "scorer": "s", "generation": 1.5, "action": "promote", "champion": {"key": "k", "path": "p"}, "at": "2026-01-01T00:00:00Z"}`},
	} {
		doc, err := decodeJSON([]byte(c.doc))
		if err != nil {
			t.Fatal(err)
		}
		if errs := s.validate(c.ref, doc); len(errs) == 0 {
			t.Errorf("%s accepted %s", c.ref, c.doc)
		}
	}
}
