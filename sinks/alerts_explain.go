package sinks

// What moved a score: the contributions a firing alert carries.

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strings"
)

// FeatureContribution is one model input's share of the score behind an
// alert, in the model's margin space (log-odds for a logistic model): the
// contributions of all inputs plus a bias add up to the margin.
type FeatureContribution struct {
	Feature string `json:"feature"`
	// Value is the input's value in the window; NaN (null in the message)
	// when it was missing.
	Value float64 `json:"value"`
	// Contribution is how much the input moved the margin, signed.
	Contribution float64 `json:"contribution"`
}

type featureContributionJSON struct {
	Feature      string   `json:"feature"`
	Value        *float64 `json:"value"`
	Contribution float64  `json:"contribution"`
}

// MarshalJSON writes a missing (NaN) value as null, which JSON can carry.
func (c FeatureContribution) MarshalJSON() ([]byte, error) {
	j := featureContributionJSON{Feature: c.Feature, Contribution: c.Contribution}
	if !math.IsNaN(c.Value) && !math.IsInf(c.Value, 0) {
		j.Value = &c.Value
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a null value back as NaN.
func (c *FeatureContribution) UnmarshalJSON(b []byte) error {
	var j featureContributionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = FeatureContribution{Feature: j.Feature, Value: math.NaN(), Contribution: j.Contribution}
	if j.Value != nil {
		c.Value = *j.Value
	}
	return nil
}

// MaxTopFeatures is how many contributions an alert carries: enough to say
// why, short enough to read on a phone.
const MaxTopFeatures = 5

// TopFeatures returns the (at most) n contributions largest in magnitude,
// largest first, ties by feature name so a replayed alert reads the same.
// Zero contributions explain nothing and non-finite ones cannot be sent;
// both are left out. cs is not modified.
func TopFeatures(cs []FeatureContribution, n int) []FeatureContribution {
	var out []FeatureContribution
	for _, c := range cs {
		if c.Contribution != 0 && !math.IsNaN(c.Contribution) && !math.IsInf(c.Contribution, 0) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b FeatureContribution) int {
		if c := cmp.Compare(math.Abs(b.Contribution), math.Abs(a.Contribution)); c != 0 {
			return c
		}
		return strings.Compare(a.Feature, b.Feature)
	})
	return slices.Clip(out[:min(len(out), n)])
}
