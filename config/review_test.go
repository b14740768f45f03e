package config

import (
	"strings"
	"testing"
)

// reviewed is labelled with labels joined by inference id, a score rule
// and a review section.
var reviewed = strings.Replace(strings.Replace(labelled, "  delay: 15m\n", "  inference_id: result_id\n", 1),
	"    - {name: quality, quality: sc}\n", `    - {name: quality, quality: sc}
    - {name: failure-risk, scorer: sc, threshold: 0.9, severity: critical}
  review:
    link: "https://review.example.com/alerts?result_id={result_id}&entity={entity}&at={window_end}"
    queue: streamscore-review
    rules: [failure-risk]
`, 1)

func TestReviewSectionIsValid(t *testing.T) {
	cfg, err := Parse([]byte(reviewed), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Alerts.Review
	if r == nil || r.Queue != "streamscore-review" || len(r.Rules) != 1 || r.Rules[0] != "failure-risk" || !strings.Contains(r.Link, "{window_end}") {
		t.Fatalf("review = %+v", r)
	}
	// A queue alone, a queue URL, and every score rule (rules left out).
	alone := strings.Replace(strings.Replace(reviewed, "    link: \"https://review.example.com/alerts?result_id={result_id}&entity={entity}&at={window_end}\"\n", "", 1),
		"    queue: streamscore-review\n    rules: [failure-risk]\n", "    queue: http://localhost:4566/000000000000/review.fifo\n", 1)
	if cfg, err := Parse([]byte(alone), "p.yaml"); err != nil || cfg.Alerts.Review.Link != "" || len(cfg.Alerts.Review.Rules) != 0 {
		t.Errorf("queue alone: %+v, %v", cfg, err)
	}
}

// TestReviewSectionProblems: each mistake is reported at its key, saying
// what is wrong.
func TestReviewSectionProblems(t *testing.T) {
	const link = `"https://review.example.com/alerts?result_id={result_id}&entity={entity}&at={window_end}"`
	cases := []struct {
		name, old, new, wantPath, wantInMsg string
	}{
		{"unknown placeholder", "{window_end}", "{window}", "alerts.review.link", "unknown placeholder {window} (known: {result_id}, {entity}, {rule}, {window_end}, {score}, {model}, {stream})"},
		{"unclosed placeholder", "{window_end}\"", "{window_end\"", "alerts.review.link", "without its '}'"},
		{"not http", link, `"ftp://review.example.com/{result_id}"`, "alerts.review.link", "is not an http or https link"},
		{"relative link", link, `"/alerts?id={result_id}"`, "alerts.review.link", "is not an http or https link"},
		{"no host", link, `"https:///alerts?id={result_id}"`, "alerts.review.link", "names no host"},
		{"neither link nor queue", "    link: " + link + "\n    queue: streamscore-review\n", "", "alerts.review", "give a link, a queue or both"},
		{"bad queue name", "queue: streamscore-review", "queue: review queue", "alerts.review.queue", `"review queue" is neither an SQS queue URL nor a queue name`},
		{"unknown rule", "rules: [failure-risk]", "rules: [failure-risk, hot]", "alerts.review.rules[1]", `undefined score rule "hot" (defined: failure-risk)`},
		{"quality rule", "rules: [failure-risk]", "rules: [quality]", "alerts.review.rules[0]", `"quality" is a model-quality rule: only score rules`},
		{"no labels", "labels:\n  stream: l\n  label: failed\n  inference_id: result_id\n", "", "alerts.review", "a verdict is posted back as a label: configure the labels section"},
		{"labels without inference id", "  inference_id: result_id\n", "  delay: 1m\n", "alerts.review", "labels.inference_id is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(reviewed, tc.old) {
				t.Fatalf("case does not apply: %q", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(reviewed, tc.old, tc.new, 1)), "p.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			found := false
			for _, e := range err.(Errors) {
				if e.Path == tc.wantPath && strings.Contains(e.Msg, tc.wantInMsg) {
					found = true
					if e.Line == 0 {
						t.Errorf("%s: no line number", e)
					}
				}
			}
			if !found {
				t.Errorf("want %s: %q in\n%v", tc.wantPath, tc.wantInMsg, err)
			}
		})
	}
}
