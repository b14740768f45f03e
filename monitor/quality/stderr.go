package quality

import "math"

// Standard deviations. Model Monitor's container takes, for each metric,
// the standard deviation of the metric over five random 80% samples of the
// rows, and only with at least 200 rows ("NaN" below). An accumulator
// keeps no rows to sample, so the standard deviations here are analytic:
// the metric's standard error, from the counts and sums the accumulator
// merges, times subsampleFactor. That factor is what turns a standard
// error into the spread of the metric over 80% samples drawn without
// replacement: the finite-population variance of a statistic on m of n
// rows is SE²·(n/m)·(1 - m/n) = SE²·(1-f)/f with f = 0.8, so the factor
// is √0.25 = ½. Doubling a standard_deviation gives the standard error.

const (
	// minRowsForStdDev is Model Monitor's "at least 200 samples".
	minRowsForStdDev = 200
	// subsampleFactor is √((1-f)/f) for Model Monitor's 80% samples.
	subsampleFactor = 0.5
)

// metricOf packages a value and its standard error as the Metric written,
// applying the 200-row rule and the subsample factor in their one place.
// A value or standard error that is not finite (an overflow, a metric
// undefined on these rows) is written as NaN.
func metricOf(value, stdErr float64, rows int64) Metric {
	if math.IsInf(value, 0) {
		value = math.NaN()
	}
	sd := stdErr * subsampleFactor
	if rows < minRowsForStdDev || math.IsNaN(value) || math.IsInf(sd, 0) {
		sd = math.NaN()
	}
	return Metric{Value: value, StandardDeviation: sd}
}

// cells are the confusion counts in the order the ratio weights use:
// true positives, false positives, false negatives, true negatives.
type cells [4]float64

// ratio is a metric of the confusion counts of the form (w·c)/(v·c):
// every rate, precision, accuracy and F-score is one. A zero denominator
// gives 0, scikit-learn's zero_division default and Spark's for recall
// and precision at a threshold with no predicted positive.
type ratio struct{ w, v cells }

// fbeta is F_β = (1+β²)·TP / ((1+β²)·TP + β²·FN + FP).
func fbeta(beta2 float64) ratio {
	a := 1 + beta2
	return ratio{w: cells{a, 0, 0, 0}, v: cells{a, 1, beta2, 0}}
}

// The ratio metrics of the confusion matrix.
var (
	recallRatio    = ratio{w: cells{1, 0, 0, 0}, v: cells{1, 0, 1, 0}}
	precisionRatio = ratio{w: cells{1, 0, 0, 0}, v: cells{1, 1, 0, 0}}
	accuracyRatio  = ratio{w: cells{1, 0, 0, 1}, v: cells{1, 1, 1, 1}}
	tnrRatio       = ratio{w: cells{0, 0, 0, 1}, v: cells{0, 1, 0, 1}}
	fprRatio       = ratio{w: cells{0, 1, 0, 0}, v: cells{0, 1, 0, 1}}
	fnrRatio       = ratio{w: cells{0, 0, 1, 0}, v: cells{1, 0, 1, 0}}
	f05Ratio       = fbeta(0.25)
	f1Ratio        = fbeta(1)
	f2Ratio        = fbeta(4)
)

// eval returns the metric and its standard error by the delta method. The
// counts are multinomial, and a ratio of two linear forms is homogeneous
// of degree 0 in them, so its gradient g is orthogonal to the cell
// probabilities and Var ≈ Σ g_i² c_i, with g_i = (w_i·D - v_i·N)/D². For
// recall this is exactly the binomial p(1-p)/positives; for the F-scores
// it is the delta-method variance under the multinomial model.
func (r ratio) eval(c cells) (value, stdErr float64) {
	var num, den float64
	for i := range c {
		num += r.w[i] * c[i]
		den += r.v[i] * c[i]
	}
	if den == 0 {
		return 0, 0
	}
	var v float64
	for i := range c {
		g := (r.w[i]*den - r.v[i]*num) / (den * den)
		v += g * g * c[i]
	}
	return num / den, math.Sqrt(v)
}

// meanStdErr is the standard error of a mean from the mean of the values
// and the mean of their squares over n rows.
func meanStdErr(mean, meanSquares float64, n int64) float64 {
	if n == 0 {
		return math.NaN()
	}
	return math.Sqrt(max(meanSquares-mean*mean, 0) / float64(n))
}
