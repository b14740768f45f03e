#!/usr/bin/python3
"""Bench helper for compare.sh: trains the benchmark models and times
XGBoost's own C++ predictor on them.

  xgb_bench.py gen DIR           train models and write rows (DIR/rows.f64),
                                 and DIR/t300_d6.lgb.txt: t300_d6's trees
                                 written as a LightGBM text model
  xgb_bench.py time MODEL ROWS BATCH SECONDS
                                 print XGBoost inplace_predict rows per CPU-second
                                 and per wall-clock second, one thread
"""
import json
import math
import sys
import time

import numpy as np
import xgboost as xgb

FEATURES = 30
NAN_RATE = 0.05
# name, trees, depth, extra training parameters
MODELS = [("t100_d6", 100, 6, {}), ("t300_d6", 300, 6, {}), ("t500_d8", 500, 8, {}),
          ("dart_t100_d6", 100, 6, {"booster": "dart", "rate_drop": 0.1, "skip_drop": 0.5})]


def gen(out):
    rng = np.random.default_rng(42)
    n = 20000
    x = rng.normal(size=(n, FEATURES))
    w = rng.normal(size=FEATURES)
    s = x @ w + np.sin(3 * x[:, 0]) * 2 + (x[:, 1] * x[:, 2])
    y = (s + rng.normal(scale=1.0, size=n) > 0).astype(float)
    x[rng.random(size=x.shape) < NAN_RATE] = np.nan
    d = xgb.DMatrix(x, label=y, missing=np.nan)
    for name, trees, depth, extra in MODELS:
        p = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1,
             "tree_method": "hist", "nthread": 2, "seed": 1}
        p.update(extra)
        bst = xgb.train(p, d, trees)
        bst.save_model("%s/%s.json" % (out, name))
    as_lightgbm("%s/t300_d6.json" % out, "%s/t300_d6.lgb.txt" % out)
    rows = rng.normal(size=(4096 * 16, FEATURES))
    rows[rng.random(size=rows.shape) < NAN_RATE] = np.nan
    rows.astype("<f8").tofile("%s/rows.f64" % out)


def as_lightgbm(src, dst):
    """Writes an XGBoost binary:logistic JSON model's trees as a LightGBM
    text model (objective binary, sigmoid 1): splits and leaves numbered
    breadth first, "x < c" as "x <= the double below c", missing values the
    XGBoost node's default way. The base margin (0 for base_score 0.5) is
    dropped; the two models score alike up to LightGBM's double-precision
    sums."""
    with open(src) as f:
        learner = json.load(f)["learner"]
    nf = int(learner["learner_model_param"]["num_feature"])
    blocks = []
    for ti, t in enumerate(learner["gradient_booster"]["model"]["trees"]):
        left, right = t["left_children"], t["right_children"]
        inner, leaf, queue = {}, {}, [0]
        for node in queue:
            if left[node] == -1:
                leaf[node] = len(leaf)
            else:
                inner[node] = len(inner)
                queue += [left[node], right[node]]

        def child(node):
            return inner[node] if node in inner else ~leaf[node]

        feat, thr, dec, lc, rc = [], [], [], [], []
        for node in queue:
            if node not in inner:
                continue
            feat.append(str(t["split_indices"][node]))
            # The float32 XGBoost compares against, as a double, then the
            # double below it.
            thr.append(repr(math.nextafter(float(np.float32(t["split_conditions"][node])), -math.inf)))
            dec.append(str(2 << 2 | (2 if t["default_left"][node] else 0)))  # missing NaN, default left
            lc.append(str(child(left[node])))
            rc.append(str(child(right[node])))
        leaves = [repr(float(np.float32(t["split_conditions"][n]))) for n in sorted(leaf, key=leaf.get)]
        body = ("num_leaves=%d\nnum_cat=0\nsplit_feature=%s\nthreshold=%s\ndecision_type=%s\n"
                "left_child=%s\nright_child=%s\nleaf_value=%s\nis_linear=0\nshrinkage=1"
                % (len(leaves), " ".join(feat), " ".join(thr), " ".join(dec),
                   " ".join(lc), " ".join(rc), " ".join(leaves)))
        blocks.append("Tree=%d\n%s\n\n" % (ti, body))
    names = " ".join("f%d" % j for j in range(nf))
    with open(dst, "w") as f:
        f.write("tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
                "max_feature_idx=%d\nobjective=binary sigmoid:1\nfeature_names=%s\nfeature_infos=%s\n"
                "tree_sizes=%s\n\n" % (nf - 1, names, " ".join(["[-10:10]"] * nf),
                                         " ".join(str(len(b)) for b in blocks)))
        f.write("".join(blocks))
        f.write("end of trees\n\nparameters:\n[boosting: gbdt]\nend of parameters\n\npandas_categorical:null\n")


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
