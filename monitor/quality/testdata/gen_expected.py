#!/usr/bin/python3
"""Generate the quality fixtures and scikit-learn's metrics on them, once.

Run from the repository root with Debian's python (python3-sklearn 1.2,
numpy 1.24):

    /usr/bin/python3 monitor/quality/testdata/gen_expected.py

It writes three row files and sklearn_expected.json. The Go test
(TestMatchesScikitLearn) feeds the rows to the accumulators and compares
what Statistics() renders with the expected values. Scores and values are
written with repr, the shortest text that reads back to the same float64,
so both sides see identical inputs; an empty score or prediction is a
missing one, which the accumulators leave out and scikit-learn never sees.

- binary_continuous.csv: scores of full precision (Beta(5,2) for
  positives, Beta(2,5) for negatives, 30% positives): several distinct
  scores share a histogram bin, so the Go AUC may differ from sklearn's by
  at most its AUCErrorBound.
- binary_ties.csv: the same kind of scores rounded to two decimals, with
  exact 0.0 and 1.0: many ties, each distinct score alone in its bin, so
  the AUC and the curves must match exactly.
- regression.csv: actual ~ N(50, 10), prediction = actual + N(1, 5).

au_prc is Spark's areaUnderPR, which sklearn has no function for: the
trapezoids under the curve through (0, precision at the highest score) and
one point per distinct score, thresholds decreasing, computed here with
numpy from the same rows.
"""
import csv
import json
import os

import numpy as np
from sklearn import metrics

HERE = os.path.dirname(os.path.abspath(__file__))
THRESHOLD = 0.5
rng = np.random.default_rng(20260515)


def binary_rows(n, decimals):
    labels = (rng.random(n) < 0.3).astype(int)
    scores = np.where(labels == 1, rng.beta(5, 2, n), rng.beta(2, 5, n))
    if decimals is not None:
        scores = np.round(scores, decimals)
        ends = rng.random(n)
        scores[ends < 0.01] = 0.0
        scores[ends > 0.99] = 1.0
    missing = rng.random(n) < 0.02
    return scores, labels, missing


def spark_curves(scores, labels):
    """Spark's roc and pr points, one per distinct score, descending."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct].astype(float)
    fps = np.cumsum(1 - y)[distinct].astype(float)
    p, n = tps[-1], fps[-1]
    precision = tps / (tps + fps)
    recall = tps / p
    pr_p = np.r_[precision[0], precision]
    pr_r = np.r_[0.0, recall]
    auprc = float(np.sum((pr_r[1:] - pr_r[:-1]) * (pr_p[1:] + pr_p[:-1]) / 2))
    return fps / n, tps / p, precision, recall, auprc


def binary_expected(scores, labels, with_curves):
    pred = (scores >= THRESHOLD).astype(int)
    tn, fp, fn, tp = metrics.confusion_matrix(labels, pred, labels=[0, 1]).ravel()
    fpr, tpr, _ = metrics.roc_curve(labels, scores, drop_intermediate=False)
    _, _, precision, recall, auprc = spark_curves(scores, labels)
    out = {
        "item_count": int(len(labels)),
        "confusion_matrix": [int(tn), int(fp), int(fn), int(tp)],
        "recall": metrics.recall_score(labels, pred),
        "precision": metrics.precision_score(labels, pred),
        "accuracy": metrics.accuracy_score(labels, pred),
        "true_negative_rate": tn / (tn + fp),
        "false_positive_rate": fp / (fp + tn),
        "false_negative_rate": fn / (fn + tp),
        "f0_5": metrics.fbeta_score(labels, pred, beta=0.5),
        "f1": metrics.f1_score(labels, pred),
        "f2": metrics.fbeta_score(labels, pred, beta=2),
        "auc": metrics.roc_auc_score(labels, scores),
        "brier_score": metrics.brier_score_loss(labels, scores),
        "au_prc": auprc,
    }
    if with_curves:
        # sklearn's ROC starts at (0, 0) for the threshold +inf, as the Go
        # curve does; the Go curve then appends (1, 1) as Spark's does.
        out["roc_false_positive_rates"] = [float(v) for v in fpr]
        out["roc_true_positive_rates"] = [float(v) for v in tpr]
        out["pr_precisions"] = [float(v) for v in precision]
        out["pr_recalls"] = [float(v) for v in recall]
    return out


def write_binary(name, with_curves, scores, labels, missing):
    with open(os.path.join(HERE, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["score", "label"])
        for s, y, m in zip(scores, labels, missing):
            w.writerow(["" if m else repr(float(s)), int(y)])
    keep = ~missing
    return binary_expected(scores[keep], labels[keep], with_curves)


def write_regression(name, n):
    actual = rng.normal(50.0, 10.0, n)
    pred = actual + rng.normal(1.0, 5.0, n)
    missing = rng.random(n) < 0.01
    with open(os.path.join(HERE, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["prediction", "actual"])
        for p, a, m in zip(pred, actual, missing):
            w.writerow(["" if m else repr(float(p)), repr(float(a))])
    keep = ~missing
    p, a = pred[keep], actual[keep]
    mse = metrics.mean_squared_error(a, p)
    return {
        "item_count": int(keep.sum()),
        "mae": metrics.mean_absolute_error(a, p),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "r2": metrics.r2_score(a, p),
    }


def floats(v):
    if isinstance(v, dict):
        return {k: floats(x) for k, x in v.items()}
    if isinstance(v, list):
        return [floats(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


expected = {
    "threshold": THRESHOLD,
    "binary_continuous.csv": write_binary("binary_continuous.csv", False, *binary_rows(3000, None)),
    "binary_ties.csv": write_binary("binary_ties.csv", True, *binary_rows(3000, 2)),
    "regression.csv": write_regression("regression.csv", 2000),
}
with open(os.path.join(HERE, "sklearn_expected.json"), "w") as f:
    json.dump(floats(expected), f, indent=1)
    f.write("\n")
