package promotion

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/streamscore/streamscore/monitor/quality"
)

// Scored is one model's evidence: the name the verdict gives it (its
// version as the results carry it, or its key in the configuration) and
// its statistics over the labelled rows both models scored.
type Scored struct {
	Name  string
	Stats *quality.Statistics
}

// Outcome classifies a verdict, for alerts and counters.
type Outcome string

// The outcomes of Evaluate, in the order it checks them.
const (
	// OutcomeTooFewRows: fewer labelled rows than the policy's minimum.
	OutcomeTooFewRows Outcome = "too-few-rows"
	// OutcomeNoEvidence: a model's statistics are missing, of the other
	// problem type, over different rows, or the metric is undefined on
	// them (the AUC of rows of one class).
	OutcomeNoEvidence Outcome = "no-evidence"
	// OutcomeMarginNotMet: the challenger is not better by the margin.
	OutcomeMarginNotMet Outcome = "margin-not-met"
	// OutcomeGuardrailBreached: better by the margin, but outside a
	// guardrail.
	OutcomeGuardrailBreached Outcome = "guardrail-breached"
	// OutcomePromote: the policy is met.
	OutcomePromote Outcome = "promote"
)

// Verdict is the policy's judgement of a challenger against its champion.
type Verdict struct {
	// Promote is true only for OutcomePromote.
	Promote bool
	Outcome Outcome
	// Reason says why, in one plain sentence with the numbers, e.g.
	// "challenger v2 auc 0.91 beats champion v1 0.87 by 0.04 ≥ margin
	// 0.02 on 5 204 labelled rows".
	Reason string
	// Metric is the policy's metric; Champion and Challenger its values
	// (NaN when not read); Gain how much better the challenger is, in the
	// metric's direction (negative: worse), NaN when not computed.
	Metric               string
	Champion, Challenger float64
	Gain                 float64
	// Breached are the guardrails the challenger is outside, each as
	// "precision 0.74 < min 0.8".
	Breached []string
	// Labelled is the row count judged on.
	Labelled int64
}

// tolerance absorbs float rounding in the margin comparison: 0.91 - 0.89
// is 0.020000000000000018 and 0.87 - 0.85 is 0.019999999999999907; both
// meet a margin of 0.02, as the sentence printed with them says.
const tolerance = 1e-9

// Evaluate judges a challenger against its champion on their statistics
// over the same labelled rows, of which there are labelled. In order: too
// few rows, evidence missing or undefined, the margin not met, a
// guardrail breached, else promote. A guardrail on a metric the
// challenger's rows leave undefined (NaN: the precision of a model that
// predicted no positive) counts as breached: a bound that cannot be
// checked does not hold. Evaluate is pure; p is assumed valid (Validate).
func Evaluate(p Policy, champion, challenger Scored, labelled int64) Verdict {
	v := Verdict{Metric: p.Metric, Champion: math.NaN(), Challenger: math.NaN(), Gain: math.NaN(), Labelled: labelled}
	chall := "challenger " + orUnnamed(challenger.Name)
	champ := "champion " + orUnnamed(champion.Name)
	rows := rowCount(labelled) + " labelled rows"

	if least := p.minLabelled(); labelled < least {
		v.Outcome = OutcomeTooFewRows
		v.Reason = fmt.Sprintf("%s not judged: %s scored by both models, fewer than min_labelled %s", chall, rows, rowCount(least))
		return v
	}
	m, ok := lookup(p.Metric)
	if !ok {
		return noEvidence(v, fmt.Sprintf("%s not judged: %q is not a metric a policy compares", chall, p.Metric))
	}
	for _, s := range []struct {
		who   string
		stats *quality.Statistics
	}{{champ, champion.Stats}, {chall, challenger.Stats}} {
		if _, ok := m.get(s.stats); !ok {
			return noEvidence(v, fmt.Sprintf("%s not judged: %s has no %s statistics with %s", chall, s.who, Problem(m.name), m.name))
		}
	}
	if a, b := champion.Stats.Dataset.ItemCount, challenger.Stats.Dataset.ItemCount; a > 0 && b > 0 && a != b {
		return noEvidence(v, fmt.Sprintf("%s not judged: the statistics are not over the same rows (%s %s rows, %s %s)",
			chall, champ, rowCount(a), chall, rowCount(b)))
	}
	v.Champion, _ = m.get(champion.Stats)
	v.Challenger, _ = m.get(challenger.Stats)
	for _, s := range []struct {
		who string
		val float64
	}{{champ, v.Champion}, {chall, v.Challenger}} {
		if !finite(s.val) {
			return noEvidence(v, fmt.Sprintf("%s not judged: %s %s is undefined on these %s", chall, s.who, m.name, rows))
		}
	}
	v.Gain = v.Challenger - v.Champion
	if m.lowerBetter {
		v.Gain = -v.Gain
	}
	lower := ""
	if m.lowerBetter {
		lower = " (lower is better)"
	}
	if v.Gain+tolerance < p.Margin {
		v.Outcome = OutcomeMarginNotMet
		v.Reason = fmt.Sprintf("%s %s %s does not beat %s %s by margin %s%s: by %s on %s",
			chall, m.name, num(v.Challenger), champ, num(v.Champion), num(p.Margin), lower, num(v.Gain), rows)
		return v
	}
	beats := fmt.Sprintf("%s %s %s beats %s %s by %s%s ≥ margin %s", chall, m.name, num(v.Challenger), champ,
		num(v.Champion), num(v.Gain), lower, num(p.Margin))
	var met []string
	for _, g := range p.Guardrails {
		if breach, ok := checkGuardrail(g, challenger.Stats); ok {
			met = append(met, breach)
		} else {
			v.Breached = append(v.Breached, breach)
		}
	}
	if len(v.Breached) > 0 {
		v.Outcome = OutcomeGuardrailBreached
		v.Reason = fmt.Sprintf("%s on %s but breaches %s", beats, rows, strings.Join(v.Breached, "; "))
		return v
	}
	v.Promote, v.Outcome = true, OutcomePromote
	v.Reason = beats + " on " + rows
	if len(met) > 0 {
		v.Reason += "; guardrails met: " + strings.Join(met, "; ")
	}
	return v
}

func noEvidence(v Verdict, reason string) Verdict {
	v.Outcome, v.Reason = OutcomeNoEvidence, reason
	return v
}

// checkGuardrail describes the challenger's value against the bound and
// reports whether it holds.
func checkGuardrail(g Guardrail, s *quality.Statistics) (string, bool) {
	m, known := lookup(g.Metric)
	val, ok := math.NaN(), false
	if known {
		val, ok = m.get(s)
	}
	switch {
	case !ok:
		return g.Metric + " absent from the challenger's statistics", false
	case !finite(val):
		return g.Metric + " undefined on these rows", false
	case g.Min != nil && val < *g.Min:
		return fmt.Sprintf("%s %s < min %s", g.Metric, num(val), num(*g.Min)), false
	case g.Max != nil && val > *g.Max:
		return fmt.Sprintf("%s %s > max %s", g.Metric, num(val), num(*g.Max)), false
	case g.Min != nil && g.Max != nil:
		return fmt.Sprintf("%s %s in [%s, %s]", g.Metric, num(val), num(*g.Min), num(*g.Max)), true
	case g.Min != nil:
		return fmt.Sprintf("%s %s ≥ %s", g.Metric, num(val), num(*g.Min)), true
	}
	return fmt.Sprintf("%s %s ≤ %s", g.Metric, num(val), num(*g.Max)), true
}

func orUnnamed(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	return name
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// num writes a metric value with four significant digits, which is finer
// than any margin a policy sets and keeps the sentence readable.
func num(v float64) string {
	if math.Abs(v) >= 1e4 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// rowCount writes a count with its thousands separated by spaces: 5 204.
func rowCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}
