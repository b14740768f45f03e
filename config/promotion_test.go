package config

import (
	"strings"
	"testing"
)

// promoted is labelled (a quality-monitored scorer) with a challenger and
// a promotion policy on the scorer.
var promoted = strings.Replace(strings.Replace(labelled, "    path: model.json\n", "    path: model.json\n  m2:\n    path: model2.json\n", 1),
	"    model: m\n", `    model: m
    challenger: m2
    promotion:
      metric: auc
      margin: 0.02
      min_labelled: 500
      guardrails:
        - {metric: precision, min: 0.8}
        - {metric: false_positive_rate, max: 0.05}
      auto: true
`, 1)

func TestPromotionPolicyIsValid(t *testing.T) {
	cfg, err := Parse([]byte(promoted), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pr := cfg.Scorers[0].Promotion
	if pr == nil {
		t.Fatal("no promotion parsed")
	}
	pol := pr.Policy()
	if pol.Metric != "auc" || pol.Margin != 0.02 || pol.MinLabelled != 500 || !pr.Auto || len(pol.Guardrails) != 2 {
		t.Fatalf("policy = %+v, auto %v", pol, pr.Auto)
	}
	if g := pol.Guardrails[0]; g.Metric != "precision" || g.Min == nil || *g.Min != 0.8 || g.Max != nil {
		t.Errorf("guardrail 0 = %+v", g)
	}
	if g := pol.Guardrails[1]; g.Metric != "false_positive_rate" || g.Max == nil || *g.Max != 0.05 || g.Min != nil {
		t.Errorf("guardrail 1 = %+v", g)
	}
	// The table defaults to one named after the pipeline; a named one is
	// taken as is.
	if got := pr.TableName(cfg.Pipeline); got != "p-promotions" {
		t.Errorf("default table = %q, want p-promotions", got)
	}
	named, err := Parse([]byte(strings.Replace(promoted, "      auto: true\n", "      table: decisions\n", 1)), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := named.Scorers[0].Promotion; got.TableName("p") != "decisions" || got.Auto {
		t.Errorf("named table = %q, auto %v: want decisions, false", got.TableName("p"), got.Auto)
	}
}

func TestPromotionPolicyProblems(t *testing.T) {
	cases := []struct {
		name, old, new, wantPath, wantInMsg string
		wantLine                            int
	}{
		{"no challenger", "    challenger: m2\n", "", "scorers[0].promotion", `scorer "sc" has no challenger`, 0},
		{"metric missing", "      metric: auc\n", "", "scorers[0].promotion.metric", "missing: name the metric compared", 0},
		{"unknown metric", "metric: auc", "metric: auroc", "scorers[0].promotion.metric", `"auroc" is not a metric a policy compares`, 0},
		{"negative margin", "margin: 0.02", "margin: -0.02", "scorers[0].promotion.margin", "-0.02: want a finite number, 0 or more", 0},
		{"negative min_labelled", "min_labelled: 500", "min_labelled: -1", "scorers[0].promotion.min_labelled", "must not be negative", 0},
		{"guardrail on an unknown metric", "{metric: precision, min: 0.8}", "{metric: precison, min: 0.8}",
			"scorers[0].promotion.guardrails[0].metric", `"precison" is not a metric a guardrail bounds`, 41},
		{"guardrail without a bound", "{metric: false_positive_rate, max: 0.05}", "{metric: false_positive_rate}",
			"scorers[0].promotion.guardrails[1]", "no bound: give min, max or both", 42},
		{"guardrail min above max", "{metric: precision, min: 0.8}", "{metric: precision, min: 0.8, max: 0.7}",
			"scorers[0].promotion.guardrails[0]", "min 0.8 is above max 0.7", 41},
		{"guardrail of the other problem type", "{metric: precision, min: 0.8}", "{metric: rmse, max: 3}",
			"scorers[0].promotion.guardrails[0].metric", `"rmse" is a regression metric but metric "auc" is a binary one`, 0},
		{"metric bounded twice", "{metric: false_positive_rate, max: 0.05}", "{metric: precision, max: 0.99}",
			"scorers[0].promotion.guardrails[1].metric", `"precision" is bounded twice`, 0},
		{"regression metric on a binary monitor", "metric: auc", "metric: rmse", "scorers[0].promotion.metric",
			`"rmse" is a regression metric but monitor.quality judges scorer "sc" as binary`, 0},
		{"no quality monitor", "    - {scorer: sc, threshold: 0.9, horizon: 5m}\n", "", "scorers[0].promotion",
			`no monitor.quality entry judges scorer "sc"`, 0},
		{"bad table name", "      auto: true\n", "      table: my table\n", "scorers[0].promotion.table", `"my table" is not a DynamoDB table name`, 0},
		{"unknown key", "      auto: true\n", "      automatic: true\n", "scorers[0].promotion.automatic", `unknown key "automatic"`, 43},
		{"endpoint scorer", "    challenger: m2\n", "    challenger: m2\n    endpoint: {name: e}\n", "scorers[0].promotion", "scores on an endpoint", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(promoted, tc.old) {
				t.Fatalf("case does not apply: %q", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(promoted, tc.old, tc.new, 1)), "p.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			var found *Error
			for _, e := range err.(Errors) {
				if e.Path == tc.wantPath && strings.Contains(e.Msg, tc.wantInMsg) {
					found = e
				}
			}
			switch {
			case found == nil:
				t.Errorf("want %s: %q in\n%v", tc.wantPath, tc.wantInMsg, err)
			case tc.wantLine != 0 && found.Line != tc.wantLine:
				t.Errorf("%v: line %d, want %d", found, found.Line, tc.wantLine)
			}
		})
	}
}
