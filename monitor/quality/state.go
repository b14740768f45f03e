package quality

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// The accumulators' own state, as a worker writes its part of a period
// for another to merge. It is not a Model Monitor format. Each names its
// kind and a version, so a regression part is never read as a binary one
// and a later layout can be told apart.
const (
	stateVersion    = 1
	kindBinary      = "binary"
	kindRegression  = "regression"
	maxStateVersion = stateVersion
)

// binaryState is Binary's JSON. The fixed-point sums are decimal strings:
// 128-bit integers, exact.
type binaryState struct {
	Kind           string  `json:"kind"`
	Version        int     `json:"version"`
	Threshold      float64 `json:"threshold"`
	Bins           int     `json:"bins"`
	TruePositives  int64   `json:"true_positives"`
	FalsePositives int64   `json:"false_positives"`
	FalseNegatives int64   `json:"false_negatives"`
	TrueNegatives  int64   `json:"true_negatives"`
	Missing        int64   `json:"missing"`
	// SquaredErrorSum is Σe², SquaredErrorSquareSum Σe⁴, in units of 2⁻⁵².
	SquaredErrorSum       string  `json:"squared_error_sum"`
	SquaredErrorSquareSum string  `json:"squared_error_square_sum"`
	Positives             []int64 `json:"positives"`
	Negatives             []int64 `json:"negatives"`
}

// MarshalJSON writes the accumulator's state: options, counts, the
// histograms and the fixed-point sums, everything Merge needs.
func (b *Binary) MarshalJSON() ([]byte, error) {
	return json.Marshal(binaryState{
		Kind: kindBinary, Version: stateVersion,
		Threshold: b.threshold, Bins: b.bins,
		TruePositives: b.tp, FalsePositives: b.fp, FalseNegatives: b.fn, TrueNegatives: b.tn,
		Missing:               b.missing,
		SquaredErrorSum:       b.sq.String(),
		SquaredErrorSquareSum: b.quad.String(),
		Positives:             b.pos,
		Negatives:             b.neg,
	})
}

// UnmarshalJSON reads what MarshalJSON wrote, replacing b's state. It
// checks what Merge and Statistics rely on, and errors name the field:
// the kind and version, valid options, counts that are not negative and do
// not overflow, histograms of Bins counts that add up to the confusion
// counts of their class, and sums that rows could have given.
func (b *Binary) UnmarshalJSON(data []byte) error {
	var s struct {
		binaryState
		// Pointers tell a missing field from a zero.
		Threshold *float64 `json:"threshold"`
		Bins      *int     `json:"bins"`
		Positives *[]int64 `json:"positives"`
		Negatives *[]int64 `json:"negatives"`
	}
	if err := decodeField(data, &s, ""); err != nil {
		return err
	}
	if err := checkKind(s.Kind, s.Version, kindBinary); err != nil {
		return err
	}
	switch {
	case s.Threshold == nil:
		return atField("threshold", errMissing)
	case s.Bins == nil:
		return atField("bins", errMissing)
	case s.Positives == nil:
		return atField("positives", errMissing)
	case s.Negatives == nil:
		return atField("negatives", errMissing)
	}
	o := Options{Threshold: *s.Threshold, Bins: *s.Bins}
	if *s.Threshold == 0 || *s.Bins == 0 {
		return errors.New("threshold, bins: a state holds them resolved, never 0")
	}
	if err := o.Validate(); err != nil {
		return err
	}
	counts := []struct {
		name string
		v    int64
	}{
		{"true_positives", s.TruePositives}, {"false_positives", s.FalsePositives},
		{"false_negatives", s.FalseNegatives}, {"true_negatives", s.TrueNegatives},
	}
	var total int64
	for _, c := range counts {
		var err error
		if total, err = addCount(total, c.v, c.name); err != nil {
			return err
		}
	}
	if s.Missing < 0 {
		return atField("missing", fmt.Errorf("%d is negative", s.Missing))
	}
	for _, h := range []struct {
		name   string
		counts []int64
		want   int64
	}{
		{"positives", *s.Positives, s.TruePositives + s.FalseNegatives},
		{"negatives", *s.Negatives, s.FalsePositives + s.TrueNegatives},
	} {
		if len(h.counts) != *s.Bins {
			return atField(h.name, fmt.Errorf("%d counts for %d bins", len(h.counts), *s.Bins))
		}
		var sum int64
		for i, v := range h.counts {
			var err error
			if sum, err = addCount(sum, v, fmt.Sprintf("%s[%d]", h.name, i)); err != nil {
				return err
			}
		}
		if sum != h.want {
			return atField(h.name, fmt.Errorf("counts add up to %d, the class's confusion counts to %d", sum, h.want))
		}
	}
	sq, err := parseUint128(s.SquaredErrorSum)
	if err == nil {
		err = sq.check(total)
	}
	if err != nil {
		return atField("squared_error_sum", err)
	}
	quad, err := parseUint128(s.SquaredErrorSquareSum)
	if err == nil && (quad.hi > sq.hi || (quad.hi == sq.hi && quad.lo > sq.lo)) {
		err = errors.New("above squared_error_sum, which no rows give (e⁴ <= e² for e in [-1, 1])")
	}
	if err != nil {
		return atField("squared_error_square_sum", err)
	}
	*b = Binary{
		threshold: o.Threshold, bins: o.Bins, fbins: float64(o.Bins),
		tp: s.TruePositives, fp: s.FalsePositives, fn: s.FalseNegatives, tn: s.TrueNegatives,
		missing: s.Missing, pos: *s.Positives, neg: *s.Negatives, sq: sq, quad: quad,
	}
	return nil
}

// addCount adds a count that must not be negative to a total that must
// not overflow.
func addCount(total, v int64, name string) (int64, error) {
	if v < 0 {
		return 0, atField(name, fmt.Errorf("%d is negative", v))
	}
	if total > (1<<63-1)-v {
		return 0, atField(name, errors.New("counts overflow int64"))
	}
	return total + v, nil
}

func checkKind(kind string, version int, want string) error {
	if kind != want {
		return atField("kind", fmt.Errorf("%q, not %q", kind, want))
	}
	if version < 1 || version > maxStateVersion {
		return atField("version", fmt.Errorf("%d is not a state version this build reads (1 to %d)", version, maxStateVersion))
	}
	return nil
}

// String is the integer in decimal.
func (u uint128) String() string {
	v := new(big.Int).SetUint64(u.hi)
	v.Lsh(v, 64)
	return v.Or(v, new(big.Int).SetUint64(u.lo)).String()
}

func parseUint128(s string) (uint128, error) {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok || v.Sign() < 0 || v.BitLen() > 128 {
		return uint128{}, fmt.Errorf("%q is not a decimal integer in [0, 2^128)", s)
	}
	lo := new(big.Int).And(v, new(big.Int).SetUint64(^uint64(0))).Uint64()
	hi := new(big.Int).Rsh(v, 64).Uint64()
	return uint128{hi: hi, lo: lo}, nil
}

// regressionState is Regression's JSON.
type regressionState struct {
	Kind          string       `json:"kind"`
	Version       int          `json:"version"`
	Count         int64        `json:"count"`
	Missing       int64        `json:"missing"`
	Actual        momentsState `json:"actual"`
	AbsoluteError momentsState `json:"absolute_error"`
	SquaredError  momentsState `json:"squared_error"`
}

type momentsState struct {
	Mean float64 `json:"mean"`
	M2   float64 `json:"m2"`
}

// MarshalJSON writes the accumulator's state: the counts and the three
// running means and squared deviations. Values so large that a moment
// overflowed to infinity cannot be written (JSON has no infinity).
func (r *Regression) MarshalJSON() ([]byte, error) {
	return json.Marshal(regressionState{
		Kind: kindRegression, Version: stateVersion,
		Count: r.n, Missing: r.missing,
		Actual:        momentsState{r.actual.mean, r.actual.m2},
		AbsoluteError: momentsState{r.absErr.mean, r.absErr.m2},
		SquaredError:  momentsState{r.sqErr.mean, r.sqErr.m2},
	})
}

// UnmarshalJSON reads what MarshalJSON wrote, replacing r's state, and
// checks what Merge and Statistics rely on, errors naming the field:
// counts not negative, squared deviations not negative, error means not
// negative, and an empty state all zeros.
func (r *Regression) UnmarshalJSON(data []byte) error {
	var s regressionState
	if err := decodeField(data, &s, ""); err != nil {
		return err
	}
	if err := checkKind(s.Kind, s.Version, kindRegression); err != nil {
		return err
	}
	if s.Count < 0 {
		return atField("count", fmt.Errorf("%d is negative", s.Count))
	}
	if s.Missing < 0 {
		return atField("missing", fmt.Errorf("%d is negative", s.Missing))
	}
	for _, m := range []struct {
		name        string
		v           momentsState
		nonNegative bool
	}{{"actual", s.Actual, false}, {"absolute_error", s.AbsoluteError, true}, {"squared_error", s.SquaredError, true}} {
		switch {
		case m.v.M2 < 0:
			return atField(m.name+".m2", fmt.Errorf("%g is negative", m.v.M2))
		case m.nonNegative && m.v.Mean < 0:
			return atField(m.name+".mean", fmt.Errorf("%g is negative", m.v.Mean))
		case s.Count == 0 && (m.v.Mean != 0 || m.v.M2 != 0):
			return atField(m.name, errors.New("not zero with count 0"))
		}
	}
	*r = Regression{
		n: s.Count, missing: s.Missing,
		actual: moments{s.Actual.Mean, s.Actual.M2},
		absErr: moments{s.AbsoluteError.Mean, s.AbsoluteError.M2},
		sqErr:  moments{s.SquaredError.Mean, s.SquaredError.M2},
	}
	return nil
}
