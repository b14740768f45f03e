#!/usr/bin/python3
"""Train an example model on windows computed by streamscore itself.

The training rows come from `streamscore loadtest dataset`, which runs the
load generator's traffic through the pipeline's own decoder and window
operator, so the model sees exactly the features it will score. Uses Debian's
python3-xgboost (1.7, the version SageMaker's built-in XGBoost container runs)
and numpy; nothing else.

Retrain every example model with `make models` (see the Makefile), or one:

  bin/streamscore loadtest dataset --scenario factory-demo \
      --config examples/demo/factory.yaml --seed 1 --out /tmp/train.csv
  bin/streamscore loadtest dataset --scenario factory-demo \
      --config examples/demo/factory.yaml --seed 2 --out /tmp/test.csv
  /usr/bin/python3 examples/models/train.py --train /tmp/train.csv --test /tmp/test.csv \
      --features vibration_mean,vibration_max,... --out examples/models/factory-demo.json

It prints the model's quality on the held-out seed: per window (precision and
recall at the threshold) and per entity (did some window of a failing machine
score above the threshold before it failed; how early; did healthy machines
stay quiet).
"""
import argparse
import csv
import json
import sys
from datetime import datetime

import numpy as np
import xgboost as xgb


def load(path, features):
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        cols = rows.fieldnames
        missing = [c for c in features if c not in cols]
        if missing:
            sys.exit(f"{path}: no column(s) {', '.join(missing)}; columns are {', '.join(cols)}")
        entity = cols[0]
        X, y, ent, end, outcome = [], [], [], [], []
        for r in rows:
            X.append([float(r[c]) if r[c] != "" else np.nan for c in features])
            y.append(int(r["label"]))
            ent.append(r[entity])
            end.append(parse_time(r["window_end"]))
            outcome.append(parse_time(r["outcome_at"]) if r["outcome_at"] else None)
    return np.array(X, dtype=np.float32), np.array(y), ent, end, outcome


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def entity_report(scores, ent, end, outcome, threshold, fire_after):
    """Alerts as the alert rule raises them: fire_after consecutive windows
    (per entity, in window order) at or above the threshold."""
    order = sorted(range(len(ent)), key=lambda i: (ent[i], end[i]))
    first_alert, streak, failing = {}, {}, {}
    for i in order:
        e = ent[i]
        if outcome[i] is not None:
            failing[e] = outcome[i]
        if scores[i] >= threshold:
            streak[e] = streak.get(e, 0) + 1
            if streak[e] >= fire_after and e not in first_alert:
                first_alert[e] = end[i]
        else:
            streak[e] = 0
    entities = set(ent)
    tp = [e for e in failing if e in first_alert and first_alert[e] < failing[e]]
    fp = [e for e in first_alert if e not in failing or first_alert[e] >= failing[e]]
    leads = sorted((failing[e] - first_alert[e]).total_seconds() for e in tp)
    precision = len(tp) / max(len(tp) + len(fp), 1)
    recall = len(tp) / max(len(failing), 1)
    return {
        "entities": len(entities),
        "failing": len(failing),
        "alerted": len(first_alert),
        "true_positives": len(tp),
        "false_positives": len(fp),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "median_lead_seconds": leads[len(leads) // 2] if leads else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--features", required=True, help="comma-separated feature columns, in model order")
    ap.add_argument("--out", required=True, help="model file (.json)")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--fire-after", type=int, default=2)
    ap.add_argument("--report", help="write the held-out quality as JSON here")
    a = ap.parse_args()
    features = a.features.split(",")

    Xtr, ytr, *_ = load(a.train, features)
    Xte, yte, ent, end, outcome = load(a.test, features)
    pos = max(int(ytr.sum()), 1)
    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": a.depth,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 2,
        "scale_pos_weight": (len(ytr) - pos) / pos,
        "eval_metric": "aucpr",
        "nthread": 1,
        "seed": 1,
    }
    dtrain = xgb.DMatrix(Xtr, label=ytr, feature_names=features, missing=np.nan)
    booster = xgb.train(params, dtrain, num_boost_round=a.trees)
    booster.save_model(a.out)

    scores = booster.inplace_predict(Xte, missing=np.nan)
    pred = scores >= a.threshold
    tp = int((pred & (yte == 1)).sum())
    window = {
        "rows": int(len(yte)),
        "positives": int(yte.sum()),
        "precision": round(tp / max(int(pred.sum()), 1), 4),
        "recall": round(tp / max(int(yte.sum()), 1), 4),
    }
    report = {
        "model": a.out,
        "features": features,
        "threshold": a.threshold,
        "fire_after": a.fire_after,
        "train_rows": int(len(ytr)),
        "train_positives": int(ytr.sum()),
        "test_windows": window,
        "test_entities": entity_report(scores, ent, end, outcome, a.threshold, a.fire_after),
        "xgboost": xgb.__version__,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if a.report:
        with open(a.report, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
