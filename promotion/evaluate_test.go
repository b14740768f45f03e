package promotion

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/streamscore/streamscore/monitor/quality"
)

// bin is a binary model's statistics over n rows with the metrics a
// policy reads set; the others are zero.
type bin struct {
	n                           int64
	auc, precision, fpr, recall float64
	brier                       *float64
}

func (b bin) stats() *quality.Statistics {
	m := &quality.BinaryMetrics{
		AUC:               quality.Metric{Value: b.auc},
		Precision:         quality.Metric{Value: b.precision},
		Recall:            quality.Metric{Value: b.recall},
		FalsePositiveRate: quality.Metric{Value: b.fpr},
	}
	if b.brier != nil {
		m.BrierScore = &quality.Metric{Value: *b.brier}
	}
	return &quality.Statistics{Dataset: quality.Dataset{ItemCount: b.n}, Binary: m}
}

func reg(n int64, rmse, r2 float64) *quality.Statistics {
	return &quality.Statistics{Dataset: quality.Dataset{ItemCount: n},
		Regression: &quality.RegressionMetrics{RMSE: quality.Metric{Value: rmse}, R2: quality.Metric{Value: r2}}}
}

func f(v float64) *float64 { return &v }

func TestPolicyEvaluate(t *testing.T) {
	const rows = 5204
	guarded := Policy{Metric: "auc", Margin: 0.02, Guardrails: []Guardrail{
		{Metric: "precision", Min: f(0.8)}, {Metric: "false_positive_rate", Max: f(0.05)}}}
	champ := bin{n: rows, auc: 0.87, precision: 0.9, fpr: 0.02}.stats()
	cases := []struct {
		name        string
		p           Policy
		champ, chal *quality.Statistics
		labelled    int64
		want        Outcome
		reason      string // the whole sentence, or a part of it with "…" before
		breached    []string
		gain        float64
	}{
		{name: "met", p: guarded, champ: champ, chal: bin{n: rows, auc: 0.91, precision: 0.85, fpr: 0.03}.stats(), labelled: rows,
			want:   OutcomePromote,
			reason: "challenger v2 auc 0.91 beats champion v1 0.87 by 0.04 ≥ margin 0.02 on 5 204 labelled rows; guardrails met: precision 0.85 ≥ 0.8; false_positive_rate 0.03 ≤ 0.05",
			gain:   0.04},
		{name: "met exactly at the margin despite rounding", p: Policy{Metric: "auc", Margin: 0.02}, champ: bin{n: rows, auc: 0.85}.stats(),
			chal: bin{n: rows, auc: 0.87}.stats(), labelled: rows, want: OutcomePromote,
			reason: "challenger v2 auc 0.87 beats champion v1 0.85 by 0.02 ≥ margin 0.02 on 5 204 labelled rows", gain: 0.02},
		{name: "too few rows for the default minimum", p: guarded, champ: champ, chal: bin{auc: 0.99}.stats(), labelled: 999,
			want:   OutcomeTooFewRows,
			reason: "challenger v2 not judged: 999 labelled rows scored by both models, fewer than min_labelled 1 000", gain: math.NaN()},
		{name: "too few rows for the policy's minimum", p: Policy{Metric: "auc", MinLabelled: 10000}, champ: champ,
			chal: bin{n: rows, auc: 0.99}.stats(), labelled: rows, want: OutcomeTooFewRows,
			reason: "challenger v2 not judged: 5 204 labelled rows scored by both models, fewer than min_labelled 10 000", gain: math.NaN()},
		{name: "the default minimum itself is enough", p: Policy{Metric: "auc"}, champ: bin{n: 1000, auc: 0.8}.stats(),
			chal: bin{n: 1000, auc: 0.81}.stats(), labelled: 1000, want: OutcomePromote, reason: "…on 1 000 labelled rows", gain: 0.01},
		{name: "margin not met", p: guarded, champ: champ, chal: bin{n: rows, auc: 0.88, precision: 0.95}.stats(), labelled: rows,
			want:   OutcomeMarginNotMet,
			reason: "challenger v2 auc 0.88 does not beat champion v1 0.87 by margin 0.02: by 0.01 on 5 204 labelled rows", gain: 0.01},
		{name: "worse challenger", p: Policy{Metric: "auc"}, champ: champ, chal: bin{n: rows, auc: 0.8}.stats(), labelled: rows,
			want: OutcomeMarginNotMet, reason: "…does not beat champion v1 0.87 by margin 0: by -0.07 on", gain: -0.07},
		{name: "guardrail breached", p: guarded, champ: champ, chal: bin{n: rows, auc: 0.95, precision: 0.74, fpr: 0.01}.stats(), labelled: rows,
			want:     OutcomeGuardrailBreached,
			reason:   "challenger v2 auc 0.95 beats champion v1 0.87 by 0.08 ≥ margin 0.02 on 5 204 labelled rows but breaches precision 0.74 < min 0.8",
			breached: []string{"precision 0.74 < min 0.8"}, gain: 0.08},
		{name: "both guardrails breached", p: guarded, champ: champ, chal: bin{n: rows, auc: 0.95, precision: 0.74, fpr: 0.07}.stats(), labelled: rows,
			want: OutcomeGuardrailBreached, reason: "…but breaches precision 0.74 < min 0.8; false_positive_rate 0.07 > max 0.05",
			breached: []string{"precision 0.74 < min 0.8", "false_positive_rate 0.07 > max 0.05"}, gain: 0.08},
		{name: "guardrail undefined on the rows", p: guarded, champ: champ, chal: bin{n: rows, auc: 0.95, precision: math.NaN()}.stats(), labelled: rows,
			want: OutcomeGuardrailBreached, reason: "…but breaches precision undefined on these rows", breached: []string{"precision undefined on these rows"}, gain: 0.08},
		{name: "brier score: lower is better", p: Policy{Metric: "brier_score", Margin: 0.01}, champ: bin{n: rows, brier: f(0.093)}.stats(),
			chal: bin{n: rows, brier: f(0.081)}.stats(), labelled: rows, want: OutcomePromote,
			reason: "challenger v2 brier_score 0.081 beats champion v1 0.093 by 0.012 (lower is better) ≥ margin 0.01 on 5 204 labelled rows", gain: 0.012},
		{name: "brier score: higher is worse", p: Policy{Metric: "brier_score", Margin: 0.01}, champ: bin{n: rows, brier: f(0.081)}.stats(),
			chal: bin{n: rows, brier: f(0.093)}.stats(), labelled: rows, want: OutcomeMarginNotMet, reason: "…(lower is better): by -0.012 on", gain: -0.012},
		{name: "brier score absent", p: Policy{Metric: "brier_score"}, champ: bin{n: rows}.stats(), chal: bin{n: rows, brier: f(0.08)}.stats(),
			labelled: rows, want: OutcomeNoEvidence, reason: "challenger v2 not judged: champion v1 has no binary statistics with brier_score", gain: math.NaN()},
		{name: "rmse: lower is better", p: Policy{Metric: "rmse", Margin: 0.5, Guardrails: []Guardrail{{Metric: "r2", Min: f(0.6)}}},
			champ: reg(rows, 4.2, 0.7), chal: reg(rows, 3.5, 0.75), labelled: rows, want: OutcomePromote,
			reason: "challenger v2 rmse 3.5 beats champion v1 4.2 by 0.7 (lower is better) ≥ margin 0.5 on 5 204 labelled rows; guardrails met: r2 0.75 ≥ 0.6", gain: 0.7},
		{name: "r2: higher is better", p: Policy{Metric: "r2", Margin: 0.1}, champ: reg(rows, 4, 0.7), chal: reg(rows, 3, 0.75), labelled: rows,
			want: OutcomeMarginNotMet, reason: "…r2 0.75 does not beat champion v1 0.7 by margin 0.1: by 0.05 on", gain: 0.05},
		{name: "auc undefined", p: Policy{Metric: "auc"}, champ: bin{n: rows, auc: math.NaN()}.stats(), chal: bin{n: rows, auc: 0.9}.stats(), labelled: rows,
			want: OutcomeNoEvidence, reason: "challenger v2 not judged: champion v1 auc is undefined on these 5 204 labelled rows", gain: math.NaN()},
		{name: "no challenger statistics", p: Policy{Metric: "auc"}, champ: champ, chal: nil, labelled: rows,
			want: OutcomeNoEvidence, reason: "challenger v2 not judged: challenger v2 has no binary statistics with auc", gain: math.NaN()},
		{name: "statistics of the other problem type", p: Policy{Metric: "auc"}, champ: champ, chal: reg(rows, 1, 0.5), labelled: rows,
			want: OutcomeNoEvidence, reason: "…challenger v2 has no binary statistics with auc", gain: math.NaN()},
		{name: "not the same rows", p: Policy{Metric: "auc"}, champ: champ, chal: bin{n: rows - 4, auc: 0.95}.stats(), labelled: rows,
			want: OutcomeNoEvidence, reason: "…not over the same rows (champion v1 5 204 rows, challenger v2 5 200)", gain: math.NaN()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Validate(); err != nil {
				t.Fatalf("case's policy is invalid: %v", err)
			}
			v := Evaluate(tc.p, Scored{Name: "v1", Stats: tc.champ}, Scored{Name: "v2", Stats: tc.chal}, tc.labelled)
			if v.Outcome != tc.want || v.Promote != (tc.want == OutcomePromote) {
				t.Errorf("outcome %s (promote %v), want %s: %s", v.Outcome, v.Promote, tc.want, v.Reason)
			}
			if part, ok := strings.CutPrefix(tc.reason, "…"); ok {
				if !strings.Contains(v.Reason, part) {
					t.Errorf("reason %q\nwant it to contain %q", v.Reason, part)
				}
			} else if v.Reason != tc.reason {
				t.Errorf("reason %q\n    want %q", v.Reason, tc.reason)
			}
			if !slices.Equal(v.Breached, tc.breached) {
				t.Errorf("breached %q, want %q", v.Breached, tc.breached)
			}
			if math.IsNaN(tc.gain) != math.IsNaN(v.Gain) || math.Abs(v.Gain-tc.gain) > 1e-12 {
				t.Errorf("gain %v, want %v", v.Gain, tc.gain)
			}
			if v.Metric != tc.p.Metric || v.Labelled != tc.labelled {
				t.Errorf("metric %q labelled %d", v.Metric, v.Labelled)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name string
		p    Policy
		keys []string
	}{
		{"valid", Policy{Metric: "f1", Margin: 0.01, Guardrails: []Guardrail{{Metric: "recall", Min: f(0.5), Max: f(1)}}}, nil},
		{"no metric", Policy{}, []string{"metric"}},
		{"unknown metric", Policy{Metric: "logloss"}, []string{"metric"}},
		{"negative and infinite", Policy{Metric: "auc", Margin: math.Inf(1), MinLabelled: -5}, []string{"min_labelled", "margin"}},
		{"guardrail problems", Policy{Metric: "auc", Guardrails: []Guardrail{
			{Metric: "precision"},
			{Metric: "mae", Max: f(2)},
			{Metric: "", Min: f(0)},
			{Metric: "recall", Min: f(math.NaN())},
			{Metric: "f1", Min: f(0.9), Max: f(0.8)},
		}}, []string{"guardrails[0]", "guardrails[1].metric", "guardrails[2].metric", "guardrails[3].min", "guardrails[4]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			var keys []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var pe *PolicyError
					if !errors.As(e, &pe) {
						t.Fatalf("%v is not a *PolicyError", e)
					}
					keys = append(keys, pe.Key)
				}
			}
			if !slices.Equal(keys, tc.keys) {
				t.Errorf("keys %q, want %q (%v)", keys, tc.keys, err)
			}
		})
	}
}

// TestPolicyMetricsAreStatisticsKeys: every metric a policy names is the
// key statistics.json gives it, and the problem types partition them, so
// a policy names metrics as Model Monitor's files and CloudWatch do.
func TestPolicyMetricsAreStatisticsKeys(t *testing.T) {
	s := &quality.Statistics{Binary: &quality.BinaryMetrics{AUPRC: &quality.Metric{}, BrierScore: &quality.Metric{}}}
	r := &quality.Statistics{Regression: &quality.RegressionMetrics{}}
	for _, c := range []struct {
		problem, block string
		stats          *quality.Statistics
	}{{"binary", "binary_classification_metrics", s}, {"regression", "regression_metrics", r}} {
		var buf bytes.Buffer
		if err := c.stats.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		var doc map[string]json.RawMessage
		var block map[string]json.RawMessage
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(doc[c.block], &block); err != nil {
			t.Fatalf("%s: %v", c.block, err)
		}
		names := Metrics(c.problem)
		if len(names) == 0 {
			t.Fatalf("no %s metrics", c.problem)
		}
		for _, name := range names {
			if _, ok := block[name]; !ok {
				t.Errorf("%s metric %q is not a key of %s", c.problem, name, c.block)
			}
			if Problem(name) != c.problem {
				t.Errorf("Problem(%q) = %q, want %q", name, Problem(name), c.problem)
			}
		}
	}
	all := append(Metrics("binary"), Metrics("regression")...)
	for _, name := range lowerIsBetter {
		if !slices.Contains(all, name) {
			t.Errorf("lower-is-better metric %q is not a metric of the statistics", name)
		}
	}
	for _, name := range all {
		if strings.Contains(name, "best_constant") {
			t.Errorf("%q describes the labels, not a model, but a policy may name it", name)
		}
	}
	for name, lower := range map[string]bool{"auc": false, "brier_score": true, "false_positive_rate": true, "rmse": true, "r2": false} {
		if LowerIsBetter(name) != lower {
			t.Errorf("LowerIsBetter(%q) = %v", name, !lower)
		}
	}
}
