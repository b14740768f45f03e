package monitor

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol || math.IsNaN(got) {
		t.Errorf("%s = %.12g, want %.12g (±%g)", what, got, want, tol)
	}
}

// ones returns n weights of 1.
func ones(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

func TestDistancesTwoPointMasses(t *testing.T) {
	// Everything at 0 against everything at 3: the CDFs differ by 1 on
	// [0, 3), so L-infinity and KS are 1 and Wasserstein-1 is 3; the
	// baseline's deciles are all 0, so the bins are (-inf, 0] and (0, inf)
	// with the two sides in opposite bins: JS 1, PSI in closed form.
	base := stepCDF([]float64{0, 0, 0}, ones(3))
	cur := stepCDF([]float64{3, 3}, ones(2))
	d := numericalDistances(base, cur)
	near(t, "linf", d.linfSimple, 1, 0)
	near(t, "wasserstein", d.wasserstein, 3, 1e-12)
	near(t, "js", d.js, 1, 1e-12)
	e := psiEpsilon
	near(t, "psi", d.psi, 2/(1+2*e)*math.Log((1+e)/e), 1e-9)
}

func TestDistancesIdentical(t *testing.T) {
	xs := []float64{1, 2, 2, 3, 5, 8, 13}
	d := numericalDistances(stepCDF(xs, ones(len(xs))), stepCDF(xs, ones(len(xs))))
	for name, v := range map[string]float64{"linf": d.linfSimple, "psi": d.psi, "js": d.js, "wasserstein": d.wasserstein} {
		near(t, name, v, 0, 1e-12)
	}
}

func TestWassersteinOfAShiftIsTheShift(t *testing.T) {
	// Translating a distribution by s moves every unit of mass by s.
	const n, s = 1000, 37.25
	a, b := make([]float64, n), make([]float64, n)
	for i := range a {
		a[i] = float64(i) * 0.1
		b[i] = a[i] + s
	}
	near(t, "W1(a, a+s)", wasserstein1(stepCDF(a, ones(n)), stepCDF(b, ones(n))), s, 1e-9)
	near(t, "W1(a+s, a)", wasserstein1(stepCDF(b, ones(n)), stepCDF(a, ones(n))), s, 1e-9)
}

func TestDistancesFromBuckets(t *testing.T) {
	// Uniform on [0, 1] against uniform on [0.5, 1.5], as ten buckets each:
	// the CDFs differ by at most 0.5 (on [0.5, 1]) and the mass moves 0.5.
	lo, hi, cnt := make([]float64, 10), make([]float64, 10), make([]float64, 10)
	lo2, hi2 := make([]float64, 10), make([]float64, 10)
	for i := range lo {
		lo[i], hi[i], cnt[i] = float64(i)/10, float64(i+1)/10, 100
		lo2[i], hi2[i] = lo[i]+0.5, hi[i]+0.5
	}
	a, b := bucketCDF(lo, hi, cnt), bucketCDF(lo2, hi2, cnt)
	near(t, "linf", linf(a, b), 0.5, 1e-12)
	near(t, "wasserstein", wasserstein1(a, b), 0.5, 1e-12)
	near(t, "F(0.25)", a.at(0.25, false), 0.25, 1e-12)
	near(t, "quantile(0.35)", a.quantile(0.35), 0.35, 1e-12)
	// Deciles of the uniform are 0.1..0.9: each bin holds a tenth.
	p, _ := decileMasses(a, b)
	if len(p) != 10 {
		t.Fatalf("%d decile bins, want 10", len(p))
	}
	for i, v := range p {
		near(t, "decile mass "+string(rune('0'+i)), v, 0.1, 1e-12)
	}
}

func TestLinfStepAgainstBuckets(t *testing.T) {
	// A point mass at 0.5 against uniform [0, 1]: just left of 0.5 the
	// step CDF is 0 and the linear one 0.5; just right, 1 against 0.5.
	step := stepCDF([]float64{0.5}, []float64{4})
	lin := bucketCDF([]float64{0}, []float64{1}, []float64{4})
	near(t, "linf", linf(step, lin), 0.5, 1e-12)
	// |F - G| is a triangle of height 0.5 each side of 0.5: area 0.25.
	near(t, "wasserstein", wasserstein1(step, lin), 0.25, 1e-12)
}

func TestRobustSubtractsTheKSCriticalValue(t *testing.T) {
	// Deequ: max(0, D - 1.8 sqrt((n+m)/(n m))).
	near(t, "robust(0.5, 100, 100)", robust(0.5, 100, 100), 0.5-1.8*math.Sqrt(0.02), 1e-15)
	near(t, "robust(0.2, 100, 100)", robust(0.2, 100, 100), 0, 0)
	near(t, "robust(0.2, 0, 100)", robust(0.2, 0, 100), 0.2, 0)
}

func TestCategoricalDistances(t *testing.T) {
	base := map[string]float64{"a": 50, "b": 50}
	cur := map[string]float64{"a": 80, "b": 20}
	d, n, m := categoricalDistances(base, cur)
	near(t, "n", n, 100, 0)
	near(t, "m", m, 100, 0)
	near(t, "linf", d.linfSimple, 0.3, 1e-12)
	kl := func(p, q []float64) float64 {
		var s float64
		for i := range p {
			s += p[i] * math.Log2(p[i]/q[i])
		}
		return s
	}
	P, Q, M := []float64{0.5, 0.5}, []float64{0.8, 0.2}, []float64{0.65, 0.35}
	near(t, "js", d.js, math.Sqrt(kl(P, M)/2+kl(Q, M)/2), 1e-12)
	sm := func(x float64) float64 { return (x + psiEpsilon) / (1 + 2*psiEpsilon) }
	near(t, "psi", d.psi, (sm(0.8)-sm(0.5))*math.Log(sm(0.8)/sm(0.5))+(sm(0.2)-sm(0.5))*math.Log(sm(0.2)/sm(0.5)), 1e-12)

	// A category only one side has counts fully in L-infinity.
	d, _, _ = categoricalDistances(map[string]float64{"a": 10}, map[string]float64{"b": 10})
	near(t, "disjoint linf", d.linfSimple, 1, 0)
	near(t, "disjoint js", d.js, 1, 1e-12)
}

func TestChiSquaredSurvivalClosedForms(t *testing.T) {
	// k = 1: erfc(sqrt(x/2)); k = 2: exp(-x/2); k = 4: exp(-x/2)(1 + x/2).
	for _, x := range []float64{0.01, 0.5, 1, 3.841458820694124, 10, 40} {
		near(t, "sf(x, 1)", chiSquaredSurvival(x, 1), math.Erfc(math.Sqrt(x/2)), 1e-12)
		near(t, "sf(x, 2)", chiSquaredSurvival(x, 2), math.Exp(-x/2), 1e-12)
		near(t, "sf(x, 4)", chiSquaredSurvival(x, 4), math.Exp(-x/2)*(1+x/2), 1e-12)
	}
	near(t, "sf(0, 3)", chiSquaredSurvival(0, 3), 1, 0)
}

func TestChiSquaredPValue(t *testing.T) {
	// 60/40 against an even baseline: expected 50/50, statistic 4, 1 dof.
	p := chiSquaredPValue(map[string]float64{"a": 500, "b": 500}, map[string]float64{"a": 60, "b": 40})
	near(t, "p", p, math.Erfc(math.Sqrt(2)), 1e-12)

	// Two categories with an expected count under Cochran's 10: folded into
	// one, nothing left to test.
	p = chiSquaredPValue(map[string]float64{"a": 500, "b": 500}, map[string]float64{"a": 15, "b": 3})
	near(t, "p after folding", p, 1, 0)

	// Three categories, one rare: "c" (expected 1) is folded into "b",
	// leaving a two-category test of a 50/50 split; then statistic
	// (30-25)^2/25 * 2 = 2 on 1 dof. A category the baseline never saw is
	// left to categorical_values_check.
	p = chiSquaredPValue(
		map[string]float64{"a": 490, "b": 470, "c": 20},
		map[string]float64{"a": 30, "b": 19, "c": 1, "new": 1000})
	near(t, "p with folding", p, math.Erfc(1), 1e-12)
}
