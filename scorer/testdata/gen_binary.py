#!/usr/bin/python3
"""Generate the XGBoost legacy binary-format fixtures for scorer tests.

SageMaker's built-in XGBoost container (1.x) saves its model with
Booster.save_model("xgboost-model"): without a .json or .ubj extension
XGBoost 1.x writes its legacy binary format. This script trains small models
with XGBoost (Debian's python3-xgboost 1.7), saves each as NAME.model (binary),
NAME.tar.gz (a SageMaker model.tar.gz holding xgboost-model in binary) and
NAME.json.tar.gz (the same model as JSON, member model.json, compressed to
keep the fixtures small), and writes the test inputs with the
predictions and margins XGBoost gives after loading the binary file back, in
the layout of testdata/fidelity (gen.py), whose input and threshold helpers
it reuses. The models are trained without feature names, as SageMaker trains
from CSV or libsvm, so XGBoost names the features f0, f1, ...
Run from the repository root:

    apt-get install -y python3-xgboost
    /usr/bin/python3 scorer/testdata/gen_binary.py

The output is deterministic for a given XGBoost version.
"""
import gzip
import io
import json
import os
import sys
import tarfile
import warnings

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen  # noqa: E402  (data, labels, boundary_rows, write_csv)

OUT = os.path.join(HERE, "binary")
NF = len(gen.NAMES)
FEATURES = ["f%d" % i for i in range(NF)]
N_TRAIN, N_TEST = 1500, 80
CONTRIB_ROWS = 16
CONTRIB_MODELS = ("binary_logistic", "multi_softprob", "missing")

MODELS = [
    # name, objective, extra params, rounds, early stopping
    ("binary_logistic", "binary:logistic", {}, 8, False),
    ("reg_squarederror", "reg:squarederror", {"base_score": 0.3}, 8, False),
    ("multi_softprob", "multi:softprob", {"num_class": 3}, 4, False),
    ("count_poisson", "count:poisson", {}, 4, False),
    ("early_stopping", "binary:logistic", {"eta": 0.9, "base_score": 0.35, "max_depth": 3}, 60, True),
    # Missing values carry signal of their own, so XGBoost learns default
    # directions both ways (missing f0 rows go with high values, missing f1
    # rows with low ones).
    ("missing", "reg:squarederror", {}, 6, False),
    # The other boosters: dart's binary body is gbtree's plus weight_drop,
    # gblinear's a weight vector (feature-major, one column per class).
    ("dart", "binary:logistic", {"booster": "dart", "rate_drop": 0.3, "skip_drop": 0,
                                 "max_depth": 3, "seed": 11}, 6, False),
    ("gblinear", "multi:softprob", {"booster": "gblinear", "num_class": 3,
                                    "updater": "coord_descent"}, 10, False),
]
# Tiny models seed the fuzzer (large seeds make fuzzing crawl).
FUZZ_SEEDS = [
    ("fuzz_tiny", {"objective": "binary:logistic", "max_depth": 2}, 2),
    ("fuzz_tiny_dart", {"objective": "binary:logistic", "max_depth": 1, "booster": "dart",
                        "rate_drop": 0.5, "skip_drop": 0}, 2),
    ("fuzz_tiny_gblinear", {"objective": "reg:squarederror", "booster": "gblinear"}, 2),
]


def missing_data(rng, n):
    x = gen.data(rng, n)
    x[:, 0:4][rng.random(size=(n, 4)) < 0.3] = np.nan
    return x


def missing_labels(x, rng):
    s = gen.signal(x) + rng.normal(scale=0.3, size=len(x))
    return s + 3.0 * np.isnan(x[:, 0]) - 3.0 * np.isnan(x[:, 1])


def dmatrix(x, y=None):
    return xgb.DMatrix(x, label=y, missing=np.nan)


def targz(member, raw):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tf:
            ti = tarfile.TarInfo(member)
            ti.size = len(raw)
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(raw))
    return buf.getvalue()


def save_binary(bst, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "deprecated binary format"
        bst.save_model(path)
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:4] == b"binf", "XGBoost %s did not write its binary format" % xgb.__version__
    return raw


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261217)
    manifest = []
    for name, obj, extra, rounds, early in MODELS:
        params = {"objective": obj, "max_depth": 4, "eta": 0.3, "tree_method": "hist",
                  "seed": 7, "nthread": 1}
        params.update(extra)
        if params.get("booster") == "gblinear":
            for k in ("max_depth", "tree_method"):
                params.pop(k)
        if name == "missing":
            xtr, xva, xte = missing_data(rng, N_TRAIN), None, missing_data(rng, N_TEST)
            ytr = missing_labels(xtr, rng)
        else:
            xtr, xva, xte = gen.data(rng, N_TRAIN), gen.data(rng, 400), gen.data(rng, N_TEST)
            ytr = gen.labels(obj, xtr, rng)
        kw = {}
        if early:
            dva = dmatrix(xva, gen.labels(obj, xva, rng))
            kw = {"evals": [(dva, "val")], "early_stopping_rounds": 3, "verbose_eval": False}
        bst = xgb.train(params, dmatrix(xtr, ytr), rounds, **kw)
        x = gen.boundary_rows(xte, bst, rng)

        path = os.path.join(OUT, name + ".model")
        raw = save_binary(bst, path)
        with open(os.path.join(OUT, name + ".tar.gz"), "wb") as f:
            f.write(targz("xgboost-model", raw))
        # The same model as JSON, compressed to keep the fixtures small.
        with open(os.path.join(OUT, name + ".json.tar.gz"), "wb") as f:
            f.write(targz("model.json", bytes(bst.save_raw("json"))))

        # The expected scores are XGBoost's for the binary file as it loads
        # it, limited to best_iteration as the JSON fixtures are.
        loaded = xgb.Booster(model_file=path)
        best = int(loaded.attr("best_iteration"))
        it = (0, best + 1)
        dte = dmatrix(x)
        pred = loaded.predict(dte, iteration_range=it)
        margin = loaded.predict(dte, iteration_range=it, output_margin=True)
        assert np.array_equal(pred, bst.predict(dte, iteration_range=it))
        pred = pred.reshape(len(x), -1)
        margin = margin.reshape(len(x), -1)
        ph = ["pred"] if pred.shape[1] == 1 else ["pred_%d" % k for k in range(pred.shape[1])]
        mh = ["margin"] if margin.shape[1] == 1 else ["margin_%d" % k for k in range(margin.shape[1])]
        gen.write_csv(os.path.join(OUT, name + ".input.csv"), FEATURES, x)
        gen.write_csv(os.path.join(OUT, name + ".expected.csv"), ph + mh,
                      np.hstack([pred.astype(np.float64), margin.astype(np.float64)]))
        if name in CONTRIB_MODELS:
            c = loaded.predict(dmatrix(x[:CONTRIB_ROWS]), iteration_range=it,
                               pred_contribs=True, approx_contribs=True)
            c = c.reshape(CONTRIB_ROWS, -1)  # groups x (features + bias), group-major
            cols = FEATURES + ["bias"]
            groups = c.shape[1] // len(cols)
            ch = cols if groups == 1 else ["%s_%d" % (n, k) for k in range(groups) for n in cols]
            gen.write_csv(os.path.join(OUT, name + ".contribs.csv"), ch, c.astype(np.float64))
        booster = params.get("booster", "gbtree")
        entry = {"name": name, "objective": obj, "booster": booster}
        if booster != "gblinear":  # gblinear has no trees, and no iterations to limit
            groups = max(1, extra.get("num_class", 1))
            entry.update(trees_used=(best + 1) * groups, best_iteration=best,
                         total_trees=len(bst.get_dump()))
        manifest.append(entry)
        if early:
            # Only best_ntree_limit, as a writer that sets no best_iteration
            # leaves it: XGBoost's ntree_limit gives the same predictions.
            bst.set_attr(best_iteration=None)
            p2 = os.path.join(OUT, name + ".ntree_limit.model")
            raw2 = save_binary(bst, p2)
            nl = xgb.Booster(model_file=p2)
            os.remove(p2)  # kept only as a model.tar.gz, to stay small
            with open(os.path.join(OUT, name + ".ntree_limit.tar.gz"), "wb") as f:
                f.write(targz("xgboost-model", raw2))
            assert nl.attr("best_iteration") is None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ntree_limit is deprecated
                p = nl.predict(dte, ntree_limit=int(nl.attr("best_ntree_limit")))
            assert np.array_equal(p.reshape(len(x), -1), pred)
    xs = gen.data(rng, 200)[:, :3]
    ys = (np.nan_to_num(xs[:, 0]) > 0).astype(float)
    for name, params, rounds in FUZZ_SEEDS:
        params = dict(params, seed=7, nthread=1)
        if params.get("booster") != "gblinear":
            params["tree_method"] = "hist"
        bst = xgb.train(params, dmatrix(xs, ys), rounds)
        save_binary(bst, os.path.join(OUT, name + ".model"))
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"xgboost": xgb.__version__, "models": manifest}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
