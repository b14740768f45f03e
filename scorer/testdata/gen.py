#!/usr/bin/python3
"""Generate the XGBoost fidelity fixtures for scorer tests.

Trains small models with XGBoost (Debian's python3-xgboost 1.7), saves them
as JSON, UBJSON, a 3.x-style JSON and a SageMaker model.tar.gz, and writes the
test inputs with XGBoost's own predictions and margins, so the Go tests need
no Python. For some models it also writes XGBoost's path (Saabas) feature
contributions, predict(pred_contribs=True, approx_contribs=True), for the
first rows. It does the same for dart and gblinear models (other_boosters),
and writes tiny dart and gblinear seeds for FuzzParseModel. Run from the
repository root:

    apt-get install -y python3-xgboost
    /usr/bin/python3 scorer/testdata/gen.py

The output is deterministic for a given XGBoost version.
"""
import gzip
import io
import json
import os
import tarfile

import numpy as np
import xgboost as xgb

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fidelity")
NAMES = ["temp", "vib", "rpm", "load", "volt", "hum", "cat_small", "cat_big"]
CAT_TYPES = ["q", "q", "q", "q", "q", "q", "c", "c"]
NUM_TYPES = ["q"] * len(NAMES)
N_TRAIN, N_TEST = 2000, 160
NAN_RATE = 0.05
# Contribution fixtures: the first rows of the test input (they include the
# all-missing row, negative zeros and values at split thresholds).
CONTRIB_ROWS = 40
CONTRIB_MODELS = ("binary_logistic", "reg_squarederror", "multi_softprob", "categorical", "early_stopping")


def data(rng, n):
    x = rng.normal(size=(n, len(NAMES)))
    x[:, 2] = rng.gamma(2.0, 500.0, size=n)        # large-ish magnitudes
    x[:, 3] = rng.uniform(-1, 1, size=n) * 1e-3     # tiny magnitudes
    x[:, 6] = rng.integers(0, 3, size=n)            # 3 categories: one-hot splits
    x[:, 7] = rng.integers(0, 12, size=n)           # 12 categories: partition splits
    x[rng.random(size=x.shape) < NAN_RATE] = np.nan
    # Six significant digits keep the fixtures small; boundary_rows adds
    # full-precision values where they matter.
    return np.vectorize(lambda v: float("%.6g" % v))(x)


def signal(x):
    z = np.nan_to_num(x)
    s = 1.3 * z[:, 0] - 0.8 * z[:, 1] ** 2 + 0.001 * z[:, 2] + 400 * z[:, 3]
    s += np.isin(z[:, 7], [1, 4, 5, 9]) * 1.5 - (z[:, 6] == 2) * 1.0
    return s


def labels(obj, x, rng):
    s = signal(x) + rng.normal(scale=0.5, size=len(x))
    if obj.startswith("binary:"):
        return (s > np.median(s)).astype(float)
    if obj == "reg:logistic":
        return 1 / (1 + np.exp(-s))
    if obj == "count:poisson":
        return rng.poisson(np.exp(np.clip(s / 3, -3, 3)))
    if obj.startswith("multi:"):
        return np.digitize(s, np.quantile(s, [0.33, 0.66])).astype(float)
    return s


def thresholds(booster):
    """Split conditions per feature index, from the model itself."""
    gb = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]
    if gb["name"] == "gblinear":
        return {}
    if gb["name"] == "dart":
        gb = gb["gbtree"]
    out = {}
    for t in gb["model"]["trees"]:
        for lc, fi, c, st in zip(t["left_children"], t["split_indices"],
                                 t["split_conditions"], t["split_type"]):
            if lc != -1 and st == 0:
                out.setdefault(fi, set()).add(c)
    return out


def boundary_rows(x, booster, rng):
    """Put values exactly at split conditions, and float64 values just below
    them that round to the same float32, so the float32 compare is tested."""
    x = x.copy()
    th = thresholds(booster)
    for i in range(0, len(x), 3):
        for fi, conds in th.items():
            if rng.random() < 0.5:
                c = float(np.float32(sorted(conds)[rng.integers(len(conds))]))
                mode = rng.integers(3)
                if mode == 0:
                    x[i, fi] = c
                elif mode == 1:   # rounds to c in float32, but is < c in float64
                    x[i, fi] = c - abs(c) * 2.0 ** -30
                else:             # one float32 ulp below c
                    x[i, fi] = float(np.nextafter(np.float32(c), np.float32(-np.inf)))
    x[1, :] = np.nan              # a row with every value missing
    x[2, 0:6] = -0.0
    return x


def write_csv(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in r) + "\n")


def dmatrix(x, y=None, cat=False):
    return xgb.DMatrix(x, label=y, missing=np.nan, feature_names=NAMES,
                       feature_types=CAT_TYPES if cat else NUM_TYPES,
                       enable_categorical=cat)


MODELS = [
    # name, objective, extra params, rounds, categorical, early stopping
    ("binary_logistic", "binary:logistic", {}, 8, False, False),
    ("binary_logitraw", "binary:logitraw", {}, 6, False, False),
    ("reg_squarederror", "reg:squarederror", {"base_score": 0.3}, 8, False, False),
    ("reg_logistic", "reg:logistic", {}, 6, False, False),
    ("count_poisson", "count:poisson", {}, 8, False, False),
    ("multi_softprob", "multi:softprob", {"num_class": 3}, 4, False, False),
    ("multi_softmax", "multi:softmax", {"num_class": 3}, 4, False, False),
    ("categorical", "binary:logistic", {"max_cat_to_onehot": 4}, 8, True, False),
    ("early_stopping", "binary:logistic", {"eta": 0.9}, 60, False, True),
]


# The other boosters, with their own random stream so that adding them
# leaves the gbtree fixtures above byte for byte as they were. Every
# gblinear model reads the same input, gblinear_shared.input.csv (it has
# no split thresholds to put values at).
#   name, objective, extra params, rounds, early stopping, outputs
#   (c: contributions, u: UBJSON copy, i: inplace_predict margins)
BOOSTERS = [
    # rate_drop makes weight_drop differ from 1; early stopping makes
    # best_iteration limit prediction (with the final weights, as XGBoost
    # does).
    ("dart_binary_logistic", "binary:logistic",
     {"booster": "dart", "rate_drop": 0.3, "eta": 0.4, "max_depth": 3}, 30, True, "cui"),
    ("dart_multi_softprob", "multi:softprob",
     {"booster": "dart", "num_class": 3, "rate_drop": 0.25, "normalize_type": "forest",
      "sample_type": "weighted", "max_depth": 3}, 5, False, "cui"),
    ("gblinear_binary_logistic", "binary:logistic", {"booster": "gblinear"}, 8, False, "cu"),
    ("gblinear_reg_squarederror", "reg:squarederror",
     {"booster": "gblinear", "base_score": 0.3, "updater": "coord_descent"}, 8, False, "cu"),
    ("gblinear_multi_softprob", "multi:softprob",
     {"booster": "gblinear", "num_class": 3, "lambda": 0.1}, 8, False, "cu"),
    ("gblinear_multi_softmax", "multi:softmax", {"booster": "gblinear", "num_class": 3}, 4, False, ""),
    ("gblinear_binary_logitraw", "binary:logitraw", {"booster": "gblinear"}, 4, False, ""),
    ("gblinear_reg_logistic", "reg:logistic", {"booster": "gblinear"}, 4, False, ""),
    ("gblinear_count_poisson", "count:poisson",
     {"booster": "gblinear", "eta": 0.1, "base_score": 2.0}, 4, False, ""),
]
BOOSTER_TEST_ROWS = 100


def write_predictions(bst, name, x, it, cat=False):
    """NAME.expected.csv: XGBoost's predictions and margins with a DMatrix
    (what Booster.predict and SageMaker's container do)."""
    dte = dmatrix(x, None, cat)
    pred = bst.predict(dte, iteration_range=it).reshape(len(x), -1)
    margin = bst.predict(dte, iteration_range=it, output_margin=True).reshape(len(x), -1)
    ph = ["pred"] if pred.shape[1] == 1 else ["pred_%d" % k for k in range(pred.shape[1])]
    mh = ["margin"] if margin.shape[1] == 1 else ["margin_%d" % k for k in range(margin.shape[1])]
    write_csv(os.path.join(OUT, name + ".expected.csv"), ph + mh,
              np.hstack([pred.astype(np.float64), margin.astype(np.float64)]))
    return mh


def write_contribs(bst, name, x, it, cat=False):
    """NAME.contribs.csv: XGBoost's contributions for the first rows (path
    attribution for trees; weight times value for gblinear, whose
    approx_contribs flag changes nothing)."""
    c = bst.predict(dmatrix(x[:CONTRIB_ROWS], None, cat), iteration_range=it,
                    pred_contribs=True, approx_contribs=True)
    c = c.reshape(CONTRIB_ROWS, -1)  # groups x (features + bias), group-major
    cols = NAMES + ["bias"]
    groups = c.shape[1] // len(cols)
    ch = cols if groups == 1 else ["%s_%d" % (n, k) for k in range(groups) for n in cols]
    write_csv(os.path.join(OUT, name + ".contribs.csv"), ch, c.astype(np.float64))


def other_boosters():
    rng = np.random.default_rng(20270117)
    xtr = data(rng, N_TRAIN // 2)
    xva = data(rng, 400)
    xte = data(rng, BOOSTER_TEST_ROWS)
    linear_input = None
    for name, obj, extra, rounds, early, outputs in BOOSTERS:
        params = {"objective": obj, "eta": 0.3, "seed": 7, "nthread": 1}
        linear = extra["booster"] == "gblinear"
        if not linear:
            params["tree_method"] = "hist"
        params.update(extra)
        dtr = dmatrix(xtr, labels(obj, xtr, rng))
        kw = {}
        if early:
            dva = dmatrix(xva, labels(obj, xva, rng))
            kw = {"evals": [(dva, "val")], "early_stopping_rounds": 3, "verbose_eval": False}
        bst = xgb.train(params, dtr, rounds, **kw)
        if early:
            assert bst.best_iteration + 1 < bst.num_boosted_rounds(), "early stopping did not stop"
        x = boundary_rows(xte, bst, rng)
        if linear:
            if linear_input is None:
                linear_input = x
                write_csv(os.path.join(OUT, "gblinear_shared.input.csv"), NAMES, x)
            assert np.array_equal(x, linear_input, equal_nan=True)
        else:
            write_csv(os.path.join(OUT, name + ".input.csv"), NAMES, x)
        # gblinear ignores iteration ranges; trees stop at best_iteration.
        it = (0, 0) if linear else (0, bst.best_iteration + 1)
        mh = write_predictions(bst, name, x, it)
        bst.save_model(os.path.join(OUT, name + ".json"))
        if "c" in outputs:
            write_contribs(bst, name, x, it)
        if "u" in outputs:
            bst.save_model(os.path.join(OUT, name + ".ubj"))
        if "i" in outputs:
            # Booster.inplace_predict (the scikit-learn interface's path)
            # rounds dart's weighting differently, (base + leaf - base) * w,
            # so its margins differ from predict's in the last bits.
            m = bst.inplace_predict(x, iteration_range=it, predict_type="margin")
            write_csv(os.path.join(OUT, name + ".inplace.csv"), mh,
                      m.reshape(len(x), -1).astype(np.float64))


def go_bytes_literal(b):
    """b as Go source: []byte("..."), the form a fuzz corpus file holds."""
    out = []
    for c in bytes(b):
        if 0x20 <= c < 0x7f and c not in (0x22, 0x5c):
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return '[]byte("' + "".join(out) + '")'


def fuzz_seeds():
    """Tiny dart and gblinear models (JSON and UBJSON) in FuzzParseModel's
    seed corpus: small seeds keep the fuzzer fast."""
    rng = np.random.default_rng(20270118)
    x = data(rng, 300)
    y = labels("binary:logistic", x, rng)
    d = xgb.DMatrix(x[:, :2], label=y, missing=np.nan, feature_names=NAMES[:2])
    corpus = os.path.join(OUT, "..", "fuzz", "FuzzParseModel")
    os.makedirs(corpus, exist_ok=True)
    base = {"objective": "binary:logistic", "seed": 7, "nthread": 1}
    dart = xgb.train(dict(base, booster="dart", rate_drop=0.5, one_drop=1, max_depth=1,
                          tree_method="hist"), d, 2)
    lin = xgb.train(dict(base, booster="gblinear"), d, 2)
    for name, bst in (("dart_tiny", dart), ("gblinear_tiny", lin)):
        for enc in ("json", "ubj"):
            raw = bst.save_raw("json" if enc == "json" else "ubj")
            with open(os.path.join(corpus, "%s_%s" % (name, enc)), "w") as f:
                f.write("go test fuzz v1\n" + go_bytes_literal(raw) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261124)
    xtr = data(rng, N_TRAIN)
    xva = data(rng, 400)
    xte = data(rng, N_TEST)
    manifest = []
    for name, obj, extra, rounds, cat, early in MODELS:
        params = {"objective": obj, "max_depth": 4, "eta": 0.3, "tree_method": "hist",
                  "seed": 7, "nthread": 1}
        params.update(extra)
        ytr = labels(obj, xtr, rng)
        dtr = dmatrix(xtr, ytr, cat)
        kw = {}
        if early:
            dva = dmatrix(xva, labels(obj, xva, rng), cat)
            kw = {"evals": [(dva, "val")], "early_stopping_rounds": 3, "verbose_eval": False}
        bst = xgb.train(params, dtr, rounds, **kw)
        x = boundary_rows(xte, bst, rng)
        dte = dmatrix(x, None, cat)
        it = (0, bst.best_iteration + 1)
        pred = bst.predict(dte, iteration_range=it)
        margin = bst.predict(dte, iteration_range=it, output_margin=True)
        bst.save_model(os.path.join(OUT, name + ".json"))
        pred = pred.reshape(len(x), -1)
        margin = margin.reshape(len(x), -1)
        ph = ["pred"] if pred.shape[1] == 1 else ["pred_%d" % k for k in range(pred.shape[1])]
        mh = ["margin"] if margin.shape[1] == 1 else ["margin_%d" % k for k in range(margin.shape[1])]
        write_csv(os.path.join(OUT, name + ".input.csv"), NAMES, x)
        write_csv(os.path.join(OUT, name + ".expected.csv"), ph + mh,
                  np.hstack([pred.astype(np.float64), margin.astype(np.float64)]))
        if name in CONTRIB_MODELS:
            c = bst.predict(dmatrix(x[:CONTRIB_ROWS], None, cat), iteration_range=it,
                            pred_contribs=True, approx_contribs=True)
            c = c.reshape(CONTRIB_ROWS, -1)  # groups x (features + bias), group-major
            cols = NAMES + ["bias"]
            groups = c.shape[1] // len(cols)
            ch = cols if groups == 1 else ["%s_%d" % (n, k) for k in range(groups) for n in cols]
            write_csv(os.path.join(OUT, name + ".contribs.csv"), ch, c.astype(np.float64))
        manifest.append({"name": name, "objective": obj, "trees_used": int(it[1]) *
                         max(1, extra.get("num_class", 1)), "best_iteration": bst.best_iteration})
        if name == "binary_logistic":
            bst.save_model(os.path.join(OUT, name + ".ubj"))
            small = xgb.train(params, dtr, 1)
            with open(os.path.join(OUT, "legacy_binary.model"), "wb") as f:
                f.write(small.save_raw("deprecated"))
            # Tiny models seed the fuzzers (large seeds make fuzzing crawl).
            tiny = xgb.train(dict(params, max_depth=2), dtr, 2)
            tiny.save_model(os.path.join(OUT, "..", "fuzz_tiny.json"))
            tiny.save_model(os.path.join(OUT, "..", "fuzz_tiny.ubj"))
        if name in ("categorical", "multi_softprob"):
            bst.save_model(os.path.join(OUT, name + ".ubj"))
        if name in ("binary_logistic", "multi_softprob", "count_poisson"):
            # XGBoost 3.1 writes base_score as a list and records
            # iteration_indptr; the trees are unchanged, so the same
            # predictions apply.
            doc = json.loads(bst.save_raw("json"))
            lp = doc["learner"]["learner_model_param"]
            lp["base_score"] = "[" + lp["base_score"] + "]"
            gm = doc["learner"]["gradient_booster"]["model"]
            per_iter = max(1, int(lp["num_class"]))
            gm["iteration_indptr"] = list(range(0, len(gm["trees"]) + 1, per_iter))
            gm["gbtree_model_param"].pop("size_leaf_vector", None)
            doc["version"] = [3, 1, 0]
            with open(os.path.join(OUT, name + ".v3.json"), "w") as f:
                json.dump(doc, f, separators=(",", ":"))
        if name == "binary_logistic":
            raw = bst.save_raw("json")
            buf = io.BytesIO()
            with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
                with tarfile.open(fileobj=gz, mode="w") as tf:
                    ti = tarfile.TarInfo("xgboost-model")
                    ti.size = len(raw)
                    ti.mtime = 0
                    tf.addfile(ti, io.BytesIO(bytes(raw)))
            with open(os.path.join(OUT, "model.tar.gz"), "wb") as f:
                f.write(buf.getvalue())
    other_boosters()
    fuzz_seeds()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"xgboost": xgb.__version__, "models": manifest}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
