package quality

import "math"

// maxCurveThresholds caps the threshold points of each curve: enough to
// draw it (a point per half percent of the thresholds at most), few
// enough to keep a period's statistics.json near 25 KB (the state of the
// accumulator behind it, 6 KB with 1000 bins). The curves' end points
// come on top.
const maxCurveThresholds = 200

// Statistics renders the accumulated rows as Model Monitor's model-quality
// statistics.json. Metrics that divide by zero are 0 (scikit-learn's
// zero_division default; recall with no positive row, precision with no
// predicted positive); the AUC without both classes is NaN.
func (b *Binary) Statistics() *Statistics {
	n := b.Count()
	c := cells{float64(b.tp), float64(b.fp), float64(b.fn), float64(b.tn)}
	m := func(r ratio, c cells) Metric {
		v, se := r.eval(c)
		return metricOf(v, se, n)
	}
	p, neg := float64(b.tp+b.fn), float64(b.fp+b.tn)
	// The best constant classifier predicts the majority class for every
	// row: all its rows are predicted positive, or all negative.
	bcc := cells{0, 0, p, neg}
	if p >= neg && n > 0 {
		bcc = cells{p, neg, 0, 0}
	}
	auc, aucErr := b.auc()
	out := &BinaryMetrics{
		ConfusionMatrix: ConfusionMatrix{TrueNegatives: b.tn, FalsePositives: b.fp,
			FalseNegatives: b.fn, TruePositives: b.tp},
		Recall:                          m(recallRatio, c),
		Precision:                       m(precisionRatio, c),
		Accuracy:                        m(accuracyRatio, c),
		RecallBestConstantClassifier:    m(recallRatio, bcc),
		PrecisionBestConstantClassifier: m(precisionRatio, bcc),
		AccuracyBestConstantClassifier:  m(accuracyRatio, bcc),
		TruePositiveRate:                m(recallRatio, c),
		TrueNegativeRate:                m(tnrRatio, c),
		FalsePositiveRate:               m(fprRatio, c),
		FalseNegativeRate:               m(fnrRatio, c),
		AUC:                             metricOf(auc, aucErr, n),
		F0_5:                            m(f05Ratio, c),
		F1:                              m(f1Ratio, c),
		F2:                              m(f2Ratio, c),
		F0_5BestConstantClassifier:      m(f05Ratio, bcc),
		F1BestConstantClassifier:        m(f1Ratio, bcc),
		F2BestConstantClassifier:        m(f2Ratio, bcc),
	}
	points := b.thresholdPoints()
	out.ROC, out.PR = curves(points, p, neg)
	auprc := areaUnderPR(points, p)
	// The binomial interval of Boyd et al. (ECML PKDD 2013) for the area
	// under the precision-recall curve: √(a(1-a)/positives).
	auprcErr := math.NaN()
	if p > 0 {
		auprcErr = math.Sqrt(auprc * (1 - auprc) / p)
	}
	a := metricOf(auprc, auprcErr, n)
	out.AUPRC = &a
	brier, brierSq := math.NaN(), math.NaN()
	if n > 0 {
		brier, brierSq = b.sq.float()/float64(n), b.quad.float()/float64(n)
	}
	bs := metricOf(brier, meanStdErr(brier, brierSq, n), n)
	out.BrierScore = &bs
	return &Statistics{
		Dataset: Dataset{ItemCount: n, NumMissing: b.missing},
		Binary:  out,
	}
}

// auc is the Mann-Whitney statistic over the bins, a pair of a positive and
// a negative row in one bin counting one half, as a tied pair does in
// scikit-learn's roc_auc_score and Spark's areaUnderROC: the area under
// the ROC curve through every bin edge. NaN without both classes.
//
// stdErr is DeLong's (DeLong, DeLong and Clarke-Pearson, Biometrics 1988),
// exact for the binned scores: a positive row's placement (the share of
// negatives below it, ties one half) is the same for every positive row
// of a bin, and so is a negative row's, so the placements' variances come
// from the histograms. It needs two rows of each class.
func (b *Binary) auc() (auc, stdErr float64) {
	p, n := float64(b.tp+b.fn), float64(b.fp+b.tn)
	if p == 0 || n == 0 {
		return math.NaN(), math.NaN()
	}
	// below: negatives in lower bins; above: positives in higher ones.
	var below, above float64 = 0, p
	var sumPos, sumPos2, sumNeg2 float64
	for i := range b.pos {
		pi, ni := float64(b.pos[i]), float64(b.neg[i])
		above -= pi
		v10 := (below + ni/2) / n // placement of a positive row of this bin
		v01 := (above + pi/2) / p // placement of a negative row of this bin
		sumPos += pi * v10
		sumPos2 += pi * v10 * v10
		sumNeg2 += ni * v01 * v01
		below += ni
	}
	auc = sumPos / p
	if p < 2 || n < 2 {
		return auc, math.NaN()
	}
	s10 := max(sumPos2-p*auc*auc, 0) / (p - 1)
	s01 := max(sumNeg2-n*auc*auc, 0) / (n - 1)
	return auc, math.Sqrt(s10/p + s01/n)
}

// point is a threshold's cumulative counts: the rows at or above it.
type point struct{ tp, fp float64 }

// thresholdPoints returns one point per non-empty bin, thresholds (bin
// lower edges) decreasing, as Spark's curves have one per distinct score.
func (b *Binary) thresholdPoints() []point {
	var out []point
	var tp, fp float64
	for i := b.bins - 1; i >= 0; i-- {
		if b.pos[i] == 0 && b.neg[i] == 0 {
			continue
		}
		tp += float64(b.pos[i])
		fp += float64(b.neg[i])
		out = append(out, point{tp, fp})
	}
	return out
}

// curves builds the ROC curve, (0, 0), the threshold points, then (1, 1)
// as Spark's BinaryClassificationMetrics.roc appends it, and the
// precision-recall curve, (0, precision of the first point), then the
// threshold points, as Spark's pr. Past maxCurveThresholds points, the
// points are taken in equal groups of consecutive thresholds and each
// group keeps its last, so the lowest threshold (every row) is always
// there: Spark's downsampling by numBins.
func curves(points []point, p, n float64) (ROCCurve, PRCurve) {
	if k := len(points); k > maxCurveThresholds {
		step := (k + maxCurveThresholds - 1) / maxCurveThresholds
		kept := points[:0:0]
		for i := step - 1; i < k; i += step {
			kept = append(kept, points[i])
		}
		if (k-1)%step != step-1 {
			kept = append(kept, points[k-1])
		}
		points = kept
	}
	rate := func(x, of float64) float64 {
		if of == 0 {
			return 0
		}
		return x / of
	}
	roc := ROCCurve{
		FalsePositiveRates: make([]float64, 0, len(points)+2),
		TruePositiveRates:  make([]float64, 0, len(points)+2),
	}
	pr := PRCurve{
		Precisions: make([]float64, 0, len(points)+1),
		Recalls:    make([]float64, 0, len(points)+1),
	}
	roc.FalsePositiveRates = append(roc.FalsePositiveRates, 0)
	roc.TruePositiveRates = append(roc.TruePositiveRates, 0)
	for i, pt := range points {
		precision := pt.tp / (pt.tp + pt.fp) // a point holds at least one row
		if i == 0 {
			pr.Precisions = append(pr.Precisions, precision)
			pr.Recalls = append(pr.Recalls, 0)
		}
		roc.FalsePositiveRates = append(roc.FalsePositiveRates, rate(pt.fp, n))
		roc.TruePositiveRates = append(roc.TruePositiveRates, rate(pt.tp, p))
		pr.Precisions = append(pr.Precisions, precision)
		pr.Recalls = append(pr.Recalls, rate(pt.tp, p))
	}
	roc.FalsePositiveRates = append(roc.FalsePositiveRates, 1)
	roc.TruePositiveRates = append(roc.TruePositiveRates, 1)
	return roc, pr
}

// areaUnderPR is Spark's areaUnderPR on the full-resolution curve: the
// trapezoids under its precision-recall curve, from (0, first precision)
// through every threshold point. NaN without a positive row.
func areaUnderPR(points []point, p float64) float64 {
	if p == 0 || len(points) == 0 {
		return math.NaN()
	}
	prevR, prevP := 0.0, points[0].tp/(points[0].tp+points[0].fp)
	var area float64
	for _, pt := range points {
		r, prec := pt.tp/p, pt.tp/(pt.tp+pt.fp)
		area += (r - prevR) * (prec + prevP) / 2
		prevR, prevP = r, prec
	}
	return area
}
