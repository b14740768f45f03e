package monitor

import (
	"math"
	"slices"
	"sort"
)

// This file holds the distances between a baseline and a current
// distribution, as pure functions of two CDFs (numerical features) or two
// count vectors (categorical features). compare.go decides which to call and
// against which threshold.
//
// Numerical features. Both sides become a cdf: from the KLL sketch (every
// retained item with its weight, F a right-continuous step function), or,
// when a statistics.json carries only buckets, from the buckets with the mass
// spread uniformly inside each bucket (F piecewise linear). With n the
// baseline's and m the current total weight:
//
//   L-infinity (Model Monitor's linf_simple, and the KS statistic):
//       D = sup_x |F_b(x) - F_c(x)|
//     The sup of two step functions is reached at one of their jump points,
//     so it is evaluated exactly at the union of both sketches' items, as
//     Deequ's Distance.numericalDistance does; with a piecewise-linear side
//     the difference is linear between breakpoints, so both one-sided limits
//     at every breakpoint give the exact sup too. For continuous data the
//     two-sample KS statistic is this same number; KS is reported as D.
//
//   linf_robust (Model Monitor's "Robust" comparison_method, Deequ's
//   Distance.selectMetrics):
//       D_robust = max(0, D - c(alpha) * sqrt((n + m) / (n * m))),  c = 1.8
//     c(alpha) = 1.8 is Deequ's default (alpha ~ 0.003, Knuth TAOCP vol. 2,
//     3.3.1 eq. 15). The subtracted term is the two-sample Kolmogorov-Smirnov
//     critical value, so a small period whose D is within sampling noise of
//     the baseline reads 0 instead of false-alarming.
//
//   PSI over the baseline's deciles: edges e_1..e_9 are the baseline
//   quantiles at 0.1..0.9 (ties merged), bins (-inf,e_1], (e_1,e_2], ...,
//   (e_9,+inf); p_i, q_i the baseline and current mass in bin i, smoothed
//   p_i' = (p_i + eps) / (1 + k*eps) with eps = psiEpsilon (1e-4) and k bins
//   so an empty bin costs a finite amount:
//       PSI = sum_i (q_i' - p_i') * ln(q_i' / p_i')
//
//   Jensen-Shannon distance, base 2, same bins, no smoothing (0 log 0 = 0):
//       M = (P + Q) / 2
//       JS = sqrt( KL2(P || M) / 2 + KL2(Q || M) / 2 ),  in [0, 1]
//
//   Wasserstein-1 over the merged support, in the feature's own units (not
//   divided by the baseline's std_dev; divide by it to compare features):
//       W1 = integral |F_b(x) - F_c(x)| dx
//     Between consecutive breakpoints both CDFs are constant or linear, so
//     the integral is exact per interval.
//
// Categorical features (String, Boolean). P and Q are the category
// frequencies (count / total of each side) over the union of categories:
//
//   L-infinity (Deequ's categoricalLInfinityDistance, which Model Monitor's
//   docs call "the K-S (LInfinity) test"): D = max_k |P_k - Q_k|, with the
//   same Robust correction as above (n, m the sides' total counts). KS is
//   reported as this D. PSI uses the same eps smoothing over the union of
//   categories; JS the same formula. Wasserstein is not defined for
//   unordered categories and is reported as 0.
//
//   ChiSquared (categorical_drift_method): Pearson's goodness of fit of the
//   current counts against the baseline's proportions, after Deequ's
//   regrouping (categoricalChiSquareTest); the distance is the test's
//   p-value, see chiSquaredPValue.

// psiEpsilon is the additive smoothing of PSI's bin proportions: small
// enough not to move a PSI computed on populated bins, large enough that one
// empty bin adds a bounded ~ q*ln(q/eps) instead of +Inf.
const psiEpsilon = 1e-4

// robustCAlpha is Deequ's default c(alpha) for linf_robust.
const robustCAlpha = 1.8

// psiBins is the number of baseline quantile bins PSI and JS use.
const psiBins = 10

// cdfPoint is one breakpoint of a CDF: F just left of x and F at x. Between
// two breakpoints F goes linearly from the first's right value to the
// second's left value (constant for a step function).
type cdfPoint struct {
	x, left, right float64
}

// cdf is a distribution function on a finite set of breakpoints, normalised
// to end at 1, with the total weight it was built from (the sample size the
// Robust correction needs).
type cdf struct {
	pts   []cdfPoint
	total float64
}

// stepCDF builds the right-continuous step CDF of weighted items (a KLL
// sketch's retained items). Non-finite items and non-positive weights are
// skipped. It returns a cdf with no points when nothing is left.
func stepCDF(values, weights []float64) cdf {
	type item struct{ v, w float64 }
	items := make([]item, 0, len(values))
	for i, v := range values {
		w := weights[i]
		if math.IsNaN(v) || math.IsInf(v, 0) || !(w > 0) || math.IsInf(w, 0) {
			continue
		}
		items = append(items, item{v, w})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].v < items[j].v })
	var total float64
	for _, it := range items {
		total += it.w
	}
	c := cdf{total: total}
	if total == 0 {
		return c
	}
	var run float64
	for _, it := range items {
		left := run / total
		run += it.w
		if n := len(c.pts); n > 0 && c.pts[n-1].x == it.v {
			c.pts[n-1].right = run / total
			continue
		}
		c.pts = append(c.pts, cdfPoint{x: it.v, left: left, right: run / total})
	}
	c.pts[len(c.pts)-1].right = 1
	return c
}

// bucketCDF builds the CDF of histogram buckets with each bucket's count
// spread uniformly over [lower, upper] (a zero-width bucket is a point
// mass). Buckets are taken in order of their lower bound; overlapping or
// malformed buckets (upper < lower, non-finite bounds) are skipped.
func bucketCDF(lower, upper, count []float64) cdf {
	type bucket struct{ lo, hi, n float64 }
	bs := make([]bucket, 0, len(lower))
	for i := range lower {
		lo, hi, n := lower[i], upper[i], count[i]
		if !finite(lo) || !finite(hi) || hi < lo || !(n > 0) || math.IsInf(n, 0) {
			continue
		}
		bs = append(bs, bucket{lo, hi, n})
	}
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].lo < bs[j].lo })
	var total float64
	for _, b := range bs {
		total += b.n
	}
	c := cdf{total: total}
	if total == 0 {
		return c
	}
	var run float64
	add := func(x, left, right float64) {
		if n := len(c.pts); n > 0 && c.pts[n-1].x == x {
			c.pts[n-1].right = right
			return
		}
		c.pts = append(c.pts, cdfPoint{x: x, left: left, right: right})
	}
	for _, b := range bs {
		if n := len(c.pts); n > 0 && b.lo < c.pts[n-1].x {
			// Overlaps the previous bucket: keep monotone by starting where
			// the previous one ended.
			b.lo = c.pts[n-1].x
			if b.hi < b.lo {
				b.hi = b.lo
			}
		}
		start := run / total
		run += b.n
		end := run / total
		if b.lo == b.hi {
			add(b.lo, start, end)
			continue
		}
		add(b.lo, start, start)
		add(b.hi, end, end)
	}
	c.pts[len(c.pts)-1].right = 1
	return c
}

// at returns F(x) (right) or F(x-) (left).
func (c cdf) at(x float64, left bool) float64 {
	pts := c.pts
	// j = first point with pts[j].x >= x
	j := sort.Search(len(pts), func(i int) bool { return pts[i].x >= x })
	if j < len(pts) && pts[j].x == x {
		if left {
			return pts[j].left
		}
		return pts[j].right
	}
	if j == 0 {
		return 0
	}
	if j == len(pts) {
		return 1
	}
	a, b := pts[j-1], pts[j]
	return a.right + (b.left-a.right)*(x-a.x)/(b.x-a.x)
}

// quantile returns the smallest x with F(x) >= q.
func (c cdf) quantile(q float64) float64 {
	pts := c.pts
	for j, p := range pts {
		if j > 0 && p.left >= q && pts[j-1].right < q {
			a := pts[j-1]
			return a.x + (q-a.right)/(p.left-a.right)*(p.x-a.x)
		}
		if p.right >= q {
			return p.x
		}
	}
	return pts[len(pts)-1].x
}

// mergedX returns the sorted union of both CDFs' breakpoints.
func mergedX(a, b cdf) []float64 {
	xs := make([]float64, 0, len(a.pts)+len(b.pts))
	for _, p := range a.pts {
		xs = append(xs, p.x)
	}
	for _, p := range b.pts {
		xs = append(xs, p.x)
	}
	slices.Sort(xs)
	return slices.Compact(xs)
}

// linf is sup |F_a - F_b|, evaluated at both one-sided limits of every
// breakpoint of either side (exact for step and piecewise-linear CDFs).
func linf(a, b cdf) float64 {
	var d float64
	for _, x := range mergedX(a, b) {
		d = max(d, math.Abs(a.at(x, true)-b.at(x, true)), math.Abs(a.at(x, false)-b.at(x, false)))
	}
	return d
}

// robust applies Model Monitor's linf_robust correction to a linf_simple
// distance between samples of total weight n and m.
func robust(d, n, m float64) float64 {
	if !(n > 0) || !(m > 0) {
		return d
	}
	return max(0, d-robustCAlpha*math.Sqrt((n+m)/(n*m)))
}

// wasserstein1 is the integral of |F_a - F_b| over the merged support.
func wasserstein1(a, b cdf) float64 {
	xs := mergedX(a, b)
	var w float64
	for i := 0; i+1 < len(xs); i++ {
		x0, x1 := xs[i], xs[i+1]
		d0 := a.at(x0, false) - b.at(x0, false)
		d1 := a.at(x1, true) - b.at(x1, true)
		w += absLinearIntegral(d0, d1) * (x1 - x0)
	}
	return w
}

// absLinearIntegral is the mean of |d| over an interval where d goes
// linearly from d0 to d1.
func absLinearIntegral(d0, d1 float64) float64 {
	if (d0 >= 0) == (d1 >= 0) || d0 == 0 || d1 == 0 {
		return (math.Abs(d0) + math.Abs(d1)) / 2
	}
	// Crosses zero: two triangles.
	return (d0*d0 + d1*d1) / (2 * (math.Abs(d0) + math.Abs(d1)))
}

// decileMasses returns the baseline's and the current side's mass in the
// bins cut at the baseline's deciles (ties merged, so there may be fewer
// than psiBins bins for a discrete feature).
func decileMasses(base, cur cdf) (p, q []float64) {
	edges := make([]float64, 0, psiBins-1)
	for i := 1; i < psiBins; i++ {
		e := base.quantile(float64(i) / psiBins)
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	p = make([]float64, len(edges)+1)
	q = make([]float64, len(edges)+1)
	var pPrev, qPrev float64
	for i, e := range edges {
		pe, qe := base.at(e, false), cur.at(e, false)
		p[i], q[i] = pe-pPrev, qe-qPrev
		pPrev, qPrev = pe, qe
	}
	p[len(edges)], q[len(edges)] = 1-pPrev, 1-qPrev
	return p, q
}

// psi is the population stability index of q against the baseline p (both
// proportions over the same bins), with psiEpsilon smoothing.
func psi(p, q []float64) float64 {
	k := float64(len(p))
	var s float64
	for i := range p {
		pi := (max(p[i], 0) + psiEpsilon) / (1 + k*psiEpsilon)
		qi := (max(q[i], 0) + psiEpsilon) / (1 + k*psiEpsilon)
		s += (qi - pi) * math.Log(qi/pi)
	}
	return s
}

// jensenShannon is the base-2 Jensen-Shannon distance (the square root of
// the divergence) between two proportion vectors over the same bins.
func jensenShannon(p, q []float64) float64 {
	var s float64
	for i := range p {
		pi, qi := max(p[i], 0), max(q[i], 0)
		m := (pi + qi) / 2
		if pi > 0 {
			s += pi * math.Log2(pi/m) / 2
		}
		if qi > 0 {
			s += qi * math.Log2(qi/m) / 2
		}
	}
	return math.Sqrt(min(max(s, 0), 1))
}

// numericDistances holds what compare.go reports for a numerical feature.
type numericDistances struct {
	linfSimple, psi, js, wasserstein float64
}

// numericalDistances computes every distance between two numerical CDFs.
// Both must have points.
func numericalDistances(base, cur cdf) numericDistances {
	p, q := decileMasses(base, cur)
	return numericDistances{
		linfSimple:  linf(base, cur),
		psi:         psi(p, q),
		js:          jensenShannon(p, q),
		wasserstein: wasserstein1(base, cur),
	}
}

// categoricalDistances computes L-infinity, PSI and JS between two category
// count maps over the union of their categories. n and m are the totals.
func categoricalDistances(base, cur map[string]float64) (d numericDistances, n, m float64) {
	keys := make([]string, 0, len(base)+len(cur))
	for k, v := range base {
		keys = append(keys, k)
		n += v
	}
	for k, v := range cur {
		if _, ok := base[k]; !ok {
			keys = append(keys, k)
		}
		m += v
	}
	if !(n > 0) || !(m > 0) {
		return d, n, m
	}
	slices.Sort(keys)
	p := make([]float64, len(keys))
	q := make([]float64, len(keys))
	for i, k := range keys {
		p[i], q[i] = base[k]/n, cur[k]/m
		d.linfSimple = max(d.linfSimple, math.Abs(p[i]-q[i]))
	}
	d.psi = psi(p, q)
	d.js = jensenShannon(p, q)
	return d, n, m
}

// Chi-squared thresholds of Deequ's categoricalChiSquareTest regrouping:
// for two categories every expected count must be at least 10 (Cochran
// 1952); for more, no more than 20% of the expected counts may be below 5
// (Yates, Moore & McCabe 1999).
const (
	chiCochranMin   = 10
	chiYatesMin     = 5
	chiYatesMaxFrac = 0.2
)

// chiSquaredPValue is Model Monitor's ChiSquared categorical drift method as
// Deequ computes it: the baseline counts are scaled to the current sample's
// size over the baseline's categories (current categories the baseline never
// saw are left out here: categorical_values_check is about them); while too
// many expected counts are small, the smallest category is folded into the
// next smallest; then Pearson's statistic sum (obs - exp)^2 / exp with k - 1
// degrees of freedom. Deequ's current source approximates the p-value by
// exp(-stat/2); this uses the chi-squared survival function itself. It
// returns 1 (no evidence of drift) when fewer than two categories remain or
// either side is empty.
func chiSquaredPValue(base, cur map[string]float64) float64 {
	keys := make([]string, 0, len(base))
	var expSum, obsSum float64
	for k, v := range base {
		if v > 0 {
			keys = append(keys, k)
			expSum += v
			obsSum += cur[k]
		}
	}
	if !(expSum > 0) || !(obsSum > 0) {
		return 1
	}
	slices.Sort(keys)
	exp := make([]float64, len(keys))
	obs := make([]float64, len(keys))
	for i, k := range keys {
		exp[i] = base[k] / expSum * obsSum
		obs[i] = cur[k]
	}
	for len(exp) >= 2 {
		minExp, maxBelow := float64(chiCochranMin), 0
		if len(exp) > 2 {
			minExp, maxBelow = chiYatesMin, int(chiYatesMaxFrac*float64(len(exp)))
		}
		below := 0
		for _, e := range exp {
			if e < minExp {
				below++
			}
		}
		if below <= maxBelow {
			break
		}
		i := argmin(exp, -1)
		j := argmin(exp, i)
		exp[j] += exp[i]
		obs[j] += obs[i]
		exp = slices.Delete(exp, i, i+1)
		obs = slices.Delete(obs, i, i+1)
	}
	if len(exp) < 2 {
		return 1
	}
	var stat float64
	for i, e := range exp {
		stat += (obs[i] - e) * (obs[i] - e) / e
	}
	return chiSquaredSurvival(stat, float64(len(exp)-1))
}

// argmin is the index of the smallest value, skipping index skip (the first
// one on ties, so the folding order is deterministic).
func argmin(v []float64, skip int) int {
	best := -1
	for i, x := range v {
		if i != skip && (best < 0 || x < v[best]) {
			best = i
		}
	}
	return best
}

// chiSquaredSurvival is P(X >= x) for X chi-squared with k degrees of
// freedom: the regularized upper incomplete gamma Q(k/2, x/2).
func chiSquaredSurvival(x, k float64) float64 {
	if !(x > 0) {
		return 1
	}
	return upperGammaQ(k/2, x/2)
}

// upperGammaQ is the regularized upper incomplete gamma function Q(a, x),
// by its power series when x < a+1 and by Lentz's continued fraction
// otherwise (each converges fast on its side).
func upperGammaQ(a, x float64) float64 {
	const (
		maxIter = 500
		eps     = 1e-15
		tiny    = 1e-300
	)
	lg, _ := math.Lgamma(a)
	front := math.Exp(-x + a*math.Log(x) - lg)
	if x < a+1 {
		// P(a, x) = e^-x x^a / Gamma(a) * sum x^n / (a (a+1) ... (a+n))
		sum, term := 1/a, 1/a
		for n := 1; n < maxIter; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*eps {
				break
			}
		}
		return min(max(1-front*sum, 0), 1)
	}
	// Q(a, x) = e^-x x^a / Gamma(a) * 1 / (x + 1 - a - 1(1-a)/(x + 3 - a - ...))
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < maxIter; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return min(max(front*h, 0), 1)
}
