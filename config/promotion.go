package config

// A scorer's promotion policy. The rules of a policy (its metrics, their
// problem types and directions, the bounds) are the promotion package's:
// Policy is the one conversion onto its type, as Spec is for windowing,
// and its errors are reported here at the keys that set them. What only
// the file knows (a challenger to promote, a quality monitor to give the
// evidence, the table's name) is judged here.

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/streamscore/streamscore/promotion"
)

// Promotion is when a scorer's challenger replaces its champion, judged
// on the quality monitor's statistics of both over the same labelled
// rows (docs/flywheel.md).
type Promotion struct {
	// MinLabelled is the least number of rows both models scored that
	// have a label. Zero takes promotion.DefaultMinLabelled (1000).
	MinLabelled int64 `yaml:"min_labelled"`
	// Metric is compared: binary auc, f1, precision, recall, accuracy,
	// brier_score (lower is better) and the others of
	// promotion.Metrics; regression mae, rmse, r2.
	Metric string `yaml:"metric"`
	// Margin is how much better the challenger's metric must be, in the
	// metric's units.
	Margin float64 `yaml:"margin"`
	// Guardrails are absolute bounds the challenger must meet.
	Guardrails []Guardrail `yaml:"guardrails"`
	// Table is the DynamoDB table of decisions. Empty takes
	// promotion.DefaultTable(pipeline).
	Table string `yaml:"table"`
	// Auto: the pipeline promotes by itself when the policy is met.
	// False: it only reports the verdict; a person promotes with
	// `streamscore model promote`.
	Auto bool `yaml:"auto"`
}

// Guardrail bounds one metric of the challenger: at least min, at most
// max (either or both).
type Guardrail struct {
	Metric string   `yaml:"metric"`
	Min    *float64 `yaml:"min"`
	Max    *float64 `yaml:"max"`
}

// Policy returns the promotion policy as the promotion package judges it.
func (p *Promotion) Policy() promotion.Policy {
	out := promotion.Policy{MinLabelled: p.MinLabelled, Metric: p.Metric, Margin: p.Margin}
	for _, g := range p.Guardrails {
		out.Guardrails = append(out.Guardrails, promotion.Guardrail{Metric: g.Metric, Min: g.Min, Max: g.Max})
	}
	return out
}

// TableName returns the decision table of a pipeline named pipeline.
func (p *Promotion) TableName(pipeline string) string {
	if p.Table != "" {
		return p.Table
	}
	return promotion.DefaultTable(pipeline)
}

// tableNameRE is DynamoDB's rule for table names.
var tableNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// validatePromotions checks every scorer's promotion section.
func (c *Config) validatePromotions(p *problems) {
	for i, s := range c.Scorers {
		pr := s.Promotion
		if pr == nil {
			continue
		}
		path := fmt.Sprintf("scorers[%d].promotion", i)
		if s.Challenger == "" {
			p.add(path, "scorer %q has no challenger: a promotion replaces the champion with the challenger, so set challenger", s.Name)
		}
		if s.Endpoint != nil {
			p.add(path, "scorer %q scores on an endpoint: promotion swaps embedded models, so it cannot replace the endpoint", s.Name)
		}
		if err := pr.Policy().Validate(); err != nil {
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			for _, e := range errs {
				var pe *promotion.PolicyError
				if errors.As(e, &pe) {
					p.add(path+"."+pe.Key, "%s", pe.Reason)
				} else {
					p.add(path, "%v", e)
				}
			}
		}
		if pr.Table != "" && !tableNameRE.MatchString(pr.Table) {
			p.add(path+".table", "%q is not a DynamoDB table name: 3 to 255 letters, digits, '_', '-' or '.'", pr.Table)
		}
		c.promotionEvidence(p, path, s.Name, pr)
	}
}

// promotionEvidence checks that a quality monitor judges the scorer, so
// the policy has statistics to judge, and that its problem type is the
// policy metric's.
func (c *Config) promotionEvidence(p *problems, path, scorer string, pr *Promotion) {
	for _, q := range c.Monitor.Quality {
		if q.Scorer != scorer {
			continue
		}
		problem := q.Problem
		if problem == "" {
			problem = "binary"
		}
		if got := promotion.Problem(pr.Metric); got != "" && got != problem {
			p.add(path+".metric", "%q is a %s metric but monitor.quality judges scorer %q as %s", pr.Metric, got, scorer, problem)
		}
		return
	}
	p.add(path, "no monitor.quality entry judges scorer %q: a promotion is decided on its model-quality statistics", scorer)
}
