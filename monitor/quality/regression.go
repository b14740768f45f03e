package quality

import (
	"math"
	"unsafe"
)

// Regression accumulates the quality of a regression model's predictions
// against the actual values: MAE, MSE, RMSE and R², from the count and the
// running means and squared deviations (Welford) of the actual values, the
// absolute errors and the squared errors. Two accumulators merge by Chan's
// formula: the counts exactly, the moments to floating-point rounding of
// one fed every row. Not safe for concurrent use.
type Regression struct {
	n, missing int64
	actual     moments
	absErr     moments
	sqErr      moments
}

// moments are a running mean and sum of squared deviations from it.
type moments struct{ mean, m2 float64 }

// add folds x in as the n-th value (Welford).
func (m *moments) add(x float64, n int64) {
	d := x - m.mean
	m.mean += d / float64(n)
	m.m2 += d * (x - m.mean)
}

// merge folds o's nb values into m's na (Chan et al.).
func (m *moments) merge(o moments, na, nb int64) {
	if nb == 0 {
		return
	}
	if na == 0 {
		*m = o
		return
	}
	n := float64(na + nb)
	d := o.mean - m.mean
	m.mean += d * float64(nb) / n
	m.m2 += o.m2 + d*d*float64(na)*float64(nb)/n
}

// variance is the population variance (m2/n).
func (m moments) variance(n int64) float64 {
	if n == 0 {
		return math.NaN()
	}
	return max(m.m2, 0) / float64(n)
}

// NewRegression returns an empty accumulator.
func NewRegression() *Regression { return &Regression{} }

// Add counts one prediction and its actual value. A row where either is
// NaN or infinite, or whose error is too large to square in float64, is
// counted as missing and left out of every metric.
func (r *Regression) Add(pred, actual float64) {
	e := pred - actual
	se := e * e
	if se-se != 0 || pred-pred != 0 || actual-actual != 0 {
		r.missing++
		return
	}
	r.n++
	r.actual.add(actual, r.n)
	r.absErr.add(math.Abs(e), r.n)
	r.sqErr.add(se, r.n)
}

// Count is the number of rows in the metrics (item_count).
func (r *Regression) Count() int64 { return r.n }

// Missing is the number of rows left out.
func (r *Regression) Missing() int64 { return r.missing }

// Reset empties the accumulator.
func (r *Regression) Reset() { *r = Regression{} }

// MemoryBytes is the accumulator's fixed size.
func (r *Regression) MemoryBytes() int { return int(unsafe.Sizeof(*r)) }

// Merge adds o's rows to r. It never fails; the error is there for the
// same shape as Binary.Merge.
func (r *Regression) Merge(o *Regression) error {
	if o == nil {
		return nil
	}
	r.actual.merge(o.actual, r.n, o.n)
	r.absErr.merge(o.absErr, r.n, o.n)
	r.sqErr.merge(o.sqErr, r.n, o.n)
	r.n += o.n
	r.missing += o.missing
	return nil
}

// Statistics renders the rows as Model Monitor's regression_metrics. R² is
// scikit-learn's r2_score: 1 - SSE/SST, and with actual values that do not
// vary, 1 for a perfect fit and 0 otherwise; with fewer than two rows it
// is NaN, and with no row every metric is.
//
// Standard errors (stderr.go turns them into standard deviations): MAE and
// MSE are means, so the standard deviation of the absolute or squared
// error over √n; RMSE's is MSE's over 2·RMSE (delta method); R²'s is MSE's
// over the actual values' variance, which treats that variance as known:
// it leaves out the variance's own sampling error, small beside the
// errors' when the model explains less than most of the variance.
func (r *Regression) Statistics() *Statistics {
	n := r.n
	nan := math.NaN()
	mae, mse, rmse, r2 := nan, nan, nan, nan
	maeErr, mseErr, rmseErr, r2Err := nan, nan, nan, nan
	if n > 0 {
		mae, mse = r.absErr.mean, r.sqErr.mean
		rmse = math.Sqrt(mse)
		maeErr = math.Sqrt(r.absErr.variance(n) / float64(n))
		mseErr = math.Sqrt(r.sqErr.variance(n) / float64(n))
		rmseErr = 0
		if rmse > 0 {
			rmseErr = mseErr / (2 * rmse)
		}
	}
	if n >= 2 {
		sst := r.actual.variance(n) // per row, as mse is
		switch {
		case sst > 0:
			r2, r2Err = 1-mse/sst, mseErr/sst
		case mse == 0:
			r2, r2Err = 1, 0
		default:
			r2, r2Err = 0, 0
		}
	}
	return &Statistics{
		Dataset: Dataset{ItemCount: n, NumMissing: r.missing},
		Regression: &RegressionMetrics{
			MAE:  metricOf(mae, maeErr, n),
			MSE:  metricOf(mse, mseErr, n),
			RMSE: metricOf(rmse, rmseErr, n),
			R2:   metricOf(r2, r2Err, n),
		},
	}
}
