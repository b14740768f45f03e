package link

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestExpandEscapesEveryValue: an entity or model with query syntax in it
// (&, =, spaces, #, non-ASCII) arrives as itself when the link's query is
// read back, and the window end reads back as the same instant.
func TestExpandEscapesEveryValue(t *testing.T) {
	tpl, err := Parse("https://review.example.com/r?id={result_id}&e={entity}&rule={rule}&at={window_end}&s={score}&m={model}&st={stream}")
	if err != nil {
		t.Fatal(err)
	}
	we := time.Date(2026, 12, 3, 7, 0, 1, 500_000_000, time.FixedZone("x", 3600))
	v := Values{ResultID: "5f0e4c1a9b7d2e38c6a1f04b9e3d7c21", Entity: "a&b=c d#é", Rule: "failure-risk", Model: "vib:1/2",
		Stream: "factory", WindowEnd: we, Score: 0.9876}
	u, err := url.Parse(tpl.Expand(&v))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, want := range map[string]string{"id": v.ResultID, "e": v.Entity, "rule": v.Rule, "m": v.Model, "st": v.Stream, "s": "0.9876", "at": "2026-12-03T06:00:01.5Z"} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if at, err := time.Parse(time.RFC3339, q.Get("at")); err != nil || !at.Equal(we) {
		t.Errorf("window end read back as %v (%v), want %v", at, err, we)
	}
	if u.Host != "review.example.com" || u.Fragment != "" {
		t.Errorf("host %q fragment %q: an escaped value leaked into the URL's structure", u.Host, u.Fragment)
	}
}

func TestParseRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "empty link",
		"https://r.example/{resultid}":       "unknown placeholder {resultid}",
		"https://r.example/{result_id":       "without its '}'",
		"https://r.example/result_id}":       "without its '{'",
		"javascript:alert({entity})":         "not an http or https link",
		"mailto:ops@example.com?s={entity}":  "not an http or https link",
		"https:///x?{entity}":                "names no host",
		"review.example.com/?id={result_id}": "not an http or https link",
	} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
}
