package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/streamscore/streamscore/review/link"
)

// Review sends the firing alerts of score rules to human review
// (docs/quality.md, "Human review"): each carries a review link, goes to
// a review queue, or both; a reviewer's verdict comes back as a label on
// the labels stream (`streamscore review serve|verdict`).
type Review struct {
	// Link is the review page's URL, an http(s) template whose
	// placeholders ({result_id} {entity} {rule} {window_end} {score}
	// {model} {stream}) each alert fills in, URL-query-escaped. The
	// alert's JSON carries it as review_url and its message as a line.
	Link string `yaml:"link"`
	// Queue is an SQS queue name or URL. Each firing alert under review is
	// sent to it as a review task (the alert's JSON, review_url included),
	// the hand-off to a labelling workforce or a ticketing tool.
	Queue string `yaml:"queue"`
	// Rules names the score rules whose alerts are reviewed; empty takes
	// every score rule.
	Rules []string `yaml:"rules"`
}

// validateReview checks alerts.review: the link's placeholders and
// scheme, the queue, the rules it names, and that verdicts have a labels
// stream to go to and an inference id to judge by.
func (c *Config) validateReview(p *problems) {
	r := c.Alerts.Review
	if r == nil {
		return
	}
	if r.Link == "" && r.Queue == "" {
		p.add("alerts.review", "give a link, a queue or both: review needs a way to reach a reviewer")
	}
	if r.Link != "" {
		if _, err := link.Parse(r.Link); err != nil {
			p.add("alerts.review.link", "%v", err)
		}
	}
	if q := r.Queue; q != "" && !strings.HasPrefix(q, "https://") && !strings.HasPrefix(q, "http://") && !validQueueName(q) {
		p.add("alerts.review.queue", "%q is neither an SQS queue URL nor a queue name (1 to 80 letters, digits, - and _, with .fifo for a FIFO queue)", q)
	}
	var score []string
	kinds := map[string]string{}
	for _, ar := range c.Alerts.Rules {
		switch {
		case ar.Drift != "":
			kinds[ar.Name] = "a drift rule"
		case ar.Quality != "":
			kinds[ar.Name] = "a model-quality rule"
		default:
			score = append(score, ar.Name)
		}
	}
	for i, name := range r.Rules {
		path := fmt.Sprintf("alerts.review.rules[%d]", i)
		switch {
		case kinds[name] != "":
			p.add(path, "%q is %s: only score rules' alerts name a prediction to review", name, kinds[name])
		case !slices.Contains(score, name):
			p.ref(path, "score rule", name, score)
		}
	}
	if len(r.Rules) == 0 && len(score) == 0 {
		p.add("alerts.review", "no score rule to review: alerts.rules has none")
	}
	switch l := c.Labels; {
	case l == nil:
		p.add("alerts.review", "a verdict is posted back as a label: configure the labels section (its stream, label field and inference_id)")
	case l.InferenceID == "":
		// Joined by entity, a confirmation at T would mark every
		// prediction of the entity in [T - horizon, T) positive, not the
		// one reviewed, and a false alarm (a 0) would change nothing.
		p.add("alerts.review", "labels.inference_id is missing: a verdict judges the reviewed prediction by its result_id; joined by entity within a horizon it would judge every prediction of the entity in the horizon, and a false alarm would count for nothing")
	}
}

// validQueueName is SQS's rule for queue names.
func validQueueName(q string) bool {
	base := strings.TrimSuffix(q, ".fifo")
	if base == "" || len(q) > 80 {
		return false
	}
	for _, r := range base {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
