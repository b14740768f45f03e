#!/usr/bin/python3
"""Bench helper for compare.sh: trains the benchmark models and times
XGBoost's own C++ predictor on them.

  xgb_bench.py gen DIR           train models and write rows (DIR/rows.f64)
  xgb_bench.py time MODEL ROWS BATCH SECONDS
                                 print XGBoost inplace_predict rows per CPU-second
                                 and per wall-clock second, one thread
"""
import sys
import time

import numpy as np
import xgboost as xgb

FEATURES = 30
NAN_RATE = 0.05
# name, trees, depth
MODELS = [("t100_d6", 100, 6), ("t300_d6", 300, 6), ("t500_d8", 500, 8)]


def gen(out):
    rng = np.random.default_rng(42)
    n = 20000
    x = rng.normal(size=(n, FEATURES))
    w = rng.normal(size=FEATURES)
    s = x @ w + np.sin(3 * x[:, 0]) * 2 + (x[:, 1] * x[:, 2])
    y = (s + rng.normal(scale=1.0, size=n) > 0).astype(float)
    x[rng.random(size=x.shape) < NAN_RATE] = np.nan
    d = xgb.DMatrix(x, label=y, missing=np.nan)
    for name, trees, depth in MODELS:
        p = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1,
             "tree_method": "hist", "nthread": 2, "seed": 1}
        bst = xgb.train(p, d, trees)
        bst.save_model("%s/%s.json" % (out, name))
    rows = rng.normal(size=(4096 * 16, FEATURES))
    rows[rng.random(size=rows.shape) < NAN_RATE] = np.nan
    rows.astype("<f8").tofile("%s/rows.f64" % out)


def time_predict(model, rows, batch, seconds):
    bst = xgb.Booster(model_file=model)
    bst.set_param({"nthread": 1})
    x = np.fromfile(rows, dtype="<f8").reshape(-1, FEATURES).astype(np.float32)
    batches = [x[i:i + batch] for i in range(0, len(x) - batch + 1, batch)]
    for b in batches[:2]:  # warm up
        bst.inplace_predict(b, missing=np.nan)
    done, start, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        for b in batches:
            bst.inplace_predict(b, missing=np.nan)
            done += len(b)
        el = time.perf_counter() - start
        if el >= seconds:
            break
    cpu = time.process_time() - cpu0
    # rows per CPU-second, rows per wall-clock second
    print("%.0f %.0f" % (done / cpu, done / el))


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        time_predict(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
