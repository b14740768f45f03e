// Package quality measures a model's quality against ground truth in
// SageMaker Model Monitor's model-quality formats: statistics.json
// (binary_classification_metrics, regression_metrics), constraints.json
// and constraint_violations.json. It makes no AWS calls and opens no
// files (io.Reader and io.Writer only). Its accumulators are bounded and
// mergeable, because the same code runs in the stream per period and
// merges across workers: no row is kept, and AUC and the curves come from
// a fixed per-class histogram of the scores.
//
// What it owns:
//   - Binary (binary.go, binary_stats.go): the confusion counts at the
//     threshold (score >= Threshold is positive), one histogram of scores
//     over [0, 1] per class, the Brier score's sums in 128-bit fixed
//     point. Add allocates nothing; Merge is exact (the merged state is
//     byte for byte the state of one accumulator fed every row).
//   - Regression (regression.go): count and Welford means and squared
//     deviations of the actual values, absolute errors and squared errors,
//     merged by Chan's formula (exact counts; moments to float rounding).
//   - the accumulators' own JSON state (state.go), a worker's part of a
//     period; statistics.json (statistics.go, metrics.go: the metric
//     table, one home for each metric's names, range and suggested
//     constraint); constraints.json and Suggest (constraints.go); Check
//     and constraint_violations.json (check.go); standard errors
//     (stderr.go).
//
// Verified against Model Monitor's own outputs:
//   - AWS, "Model quality metrics and Amazon CloudWatch monitoring": the
//     field names and nesting of both blocks, every metric as
//     {"value", "standard_deviation"}, "NaN" (a string) for a standard
//     deviation, which Model Monitor gives only from 200 rows, computed
//     over five random 80% samples; the curves' shapes: the ROC curve
//     from (0, 0), one point per threshold, then (1, 1) appended, the
//     precision-recall curve from recall 0 with the first threshold's
//     precision (Spark's BinaryClassificationMetrics.roc and pr).
//     testdata/modelmonitor_doc_*.json hold the page's examples.
//   - Amazon's model-quality churn notebook as run in May 2021
//     (amazon-sagemaker-examples, sagemaker_model_monitor/model_quality/
//     model_quality_churn_sdk.ipynb in the repository's history; today's
//     copy has no outputs): its baseline's confusion matrix {"0": {"0":
//     173, "1": 0}, "1": {"0": 12, "1": 16}} with recall 16/28 and
//     precision 1 fixes the outer key as the actual label and the inner
//     one as the predicted; its best constant classifier has recall 0 and
//     accuracy 173/201, so it predicts the majority class; its suggested
//     constraints are the eleven Suggest writes, LessThanThreshold but for
//     the false positive and negative rates (GreaterThanThreshold), each
//     threshold the baseline's value itself; its violations have the
//     operator as constraint_check_type, the rates' metric_name in camel
//     case (truePositiveRate) where the constraints say
//     true_positive_rate, and descriptions "Metric f2 with 0.1363... +/-
//     0.0030... was LessThanThreshold '0.625'" with Java's Double.toString
//     numbers. TestSuggestMatchesModelMonitor and
//     TestCheckMatchesModelMonitor reproduce them word for word, and
//     TestModelMonitorChurnBaseline its values.
//   - SageMaker Python SDK's model-quality dashboard: the CloudWatch
//     metric au_prc, the area under the precision-recall curve, which the
//     2021 files do not hold; it is written here and optional on read.
//
// Where Model Monitor is silent or contradicts itself, our choices:
//   - standard_deviation is analytic, since an accumulator has no rows to
//     resample: the metric's standard error times ½, the spread of a
//     statistic over 80% samples drawn without replacement
//     (√((1-0.8)/0.8)), so it means what Model Monitor's means; twice it
//     is the standard error. Rates, precision, accuracy and the F-scores
//     are ratios of confusion counts: delta method under the multinomial
//     (exactly binomial for the rates). AUC: DeLong's variance, exact on
//     the binned scores (a better fit than Hanley-McNeil, which was 20%
//     high on binormal scores in TestStandardDeviations). au_prc: Boyd et
//     al.'s binomial √(a(1-a)/positives). Brier, MAE, MSE: the standard
//     error of a mean; RMSE by the delta method; R² as MSE's over the
//     actual values' variance, taken as known. Against the churn
//     notebook's bootstrapped values these come out 1.0 to 1.4 times
//     theirs, five 80% samples estimating a deviation to about ±35%;
//     against 400 bootstrap resamples, within 4% of the standard error.
//   - the best constant classifier: the majority class, the positive one
//     on a tie. The AWS page's examples (recall 1, precision 0.25 with one
//     positive in four) contradict the notebook's real output and the
//     page's own curves (steps of a quarter, four positives); the real
//     output wins.
//   - a ratio with a zero denominator is 0 (scikit-learn's zero_division
//     default, Spark's for precision with no predicted positive); AUC and
//     au_prc without both classes are NaN ("NaN" in the file), and Check
//     lists such metrics in Report.NotEvaluated instead of judging them.
//   - item_count counts the rows in the metrics; num_missing (ours)
//     counts rows left out for a NaN or infinite score or prediction.
//     Model Monitor's dataset block in the published outputs holds
//     item_count only: no evaluation_time is written.
//   - brier_score is ours: the calibration metric.
//   - scores outside [0, 1] are read as the nearest end (histogram and
//     Brier); with the threshold in (0, 1] that never changes the
//     predicted class.
//   - regression constraints: Model Monitor's suggestions are not in its
//     published outputs; Suggest applies the binary rule (fire when the
//     metric gets worse than the baseline): mae, mse, rmse
//     GreaterThanThreshold, r2 LessThanThreshold.
//   - the OrEqualTo operators (CloudWatch's names) are accepted in a
//     user's constraints; a multiclass file is refused with its field
//     named.
//
// The histogram: DefaultBins = 1000 bins of width 0.001 (16 KB), scores
// outside clamped into the end bins. AUC is the Mann-Whitney statistic
// with a positive and a negative row in one bin counted as a tie (½), so
// it differs from the exact AUC only through pairs that share a bin, by
// at most Binary.AUCErrorBound = ½·Σ pos_i·neg_i / (P·N), about ½·∫f₁f₀
// / Bins for score densities f₁, f₀; the actual error is smaller, the
// pairs of a bin being about half concordant anyway. On the 3,000-row
// fixture of full-precision scores the AUC is 6.9e-6 from
// scikit-learn's, the bound 1.5e-4, both far below the AUC's own standard
// error at that size (3.2e-3); scores written with two or three
// decimals each have their bin and match exactly. The curves keep one
// point per non-empty bin, at most 200 (Spark's downsampling: equal
// groups of consecutive thresholds, each keeping its last).
package quality
