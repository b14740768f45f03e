// Package link is the review link template of alerts.review.link: an
// http(s) URL with placeholders such as {result_id} that the alert sink
// fills in for each firing alert. It is a leaf package so that the
// configuration (which refuses a bad template by name), the alert sink
// (which expands it) and the review handler (which reads the same names
// back from the query) share one list of placeholders.
package link

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The placeholders a template may use. The review handler reads the query
// parameters of the same names.
const (
	ResultID  = "result_id"
	Entity    = "entity"
	Rule      = "rule"
	WindowEnd = "window_end"
	Score     = "score"
	Model     = "model"
	Stream    = "stream"
)

// Placeholders lists every placeholder name, in the order docs give them.
func Placeholders() []string {
	return []string{ResultID, Entity, Rule, WindowEnd, Score, Model, Stream}
}

// Values are one alert's values for the placeholders.
type Values struct {
	ResultID, Entity, Rule, Model, Stream string
	WindowEnd                             time.Time
	Score                                 float64
}

// get returns the text of the named placeholder, unescaped.
func (v *Values) get(name string) string {
	switch name {
	case ResultID:
		return v.ResultID
	case Entity:
		return v.Entity
	case Rule:
		return v.Rule
	case WindowEnd:
		return FormatTime(v.WindowEnd)
	case Score:
		return strconv.FormatFloat(v.Score, 'g', -1, 64)
	case Model:
		return v.Model
	case Stream:
		return v.Stream
	}
	return ""
}

// FormatTime is how {window_end} is written: RFC 3339 in UTC with as many
// fractional digits as it has, which time.Parse(time.RFC3339, …) and
// the labels decoder read back exactly.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Template is a parsed review link.
type Template struct {
	// parts alternate literal text and placeholder names: parts[0] is
	// text, parts[1] a name, parts[2] text, and so on.
	parts []string
	raw   string
}

// Parse reads a template. It refuses an unknown placeholder, an
// unbalanced brace, and anything but an absolute http or https URL with a
// host, naming what is wrong.
func Parse(s string) (*Template, error) {
	if s == "" {
		return nil, errors.New("empty link")
	}
	t := &Template{raw: s}
	rest := s
	for {
		open := strings.IndexByte(rest, '{')
		closeAt := strings.IndexByte(rest, '}')
		if open < 0 {
			if closeAt >= 0 {
				return nil, fmt.Errorf("%q has a '}' without its '{'", s)
			}
			t.parts = append(t.parts, rest)
			break
		}
		if closeAt >= 0 && closeAt < open {
			return nil, fmt.Errorf("%q has a '}' without its '{'", s)
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q has a '{' without its '}'", s)
		}
		name := rest[open+1 : open+end]
		if !known(name) {
			return nil, fmt.Errorf("unknown placeholder {%s} (known: {%s})", name, strings.Join(Placeholders(), "}, {"))
		}
		t.parts = append(t.parts, rest[:open], name)
		rest = rest[open+end+1:]
	}
	// The link must be one a browser opens: judged with every placeholder
	// filled in, as alerts will carry it.
	u, err := url.Parse(t.Expand(&Values{ResultID: "x", Entity: "x", Rule: "x", Model: "x", Stream: "x"}))
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an http or https link", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q names no host", s)
	}
	return t, nil
}

func known(name string) bool {
	for _, p := range Placeholders() {
		if p == name {
			return true
		}
	}
	return false
}

// Expand fills in the placeholders, each value URL-query-escaped, so that
// an entity such as "a&b" or "x y" arrives as itself.
func (t *Template) Expand(v *Values) string {
	var b strings.Builder
	b.Grow(len(t.raw) + 64)
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
		} else {
			b.WriteString(url.QueryEscape(v.get(p)))
		}
	}
	return b.String()
}

// String returns the template as written.
func (t *Template) String() string { return t.raw }
