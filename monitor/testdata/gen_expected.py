#!/usr/bin/python3
"""Generate baseline.csv and its expected statistics with numpy, once.

Run from the repository root with Debian's python (numpy 1.24):

    /usr/bin/python3 monitor/testdata/gen_expected.py

The Go test (TestStatisticsMatchNumpy) reads baseline.csv through the CSV
path (ObserveText) and compares what Statistics() renders with
baseline_expected.json. Floats are written with repr, the shortest text
that reads back to the same float64, so both sides see identical values.
"""
import csv
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = 3000
rng = np.random.default_rng(20260514)


def with_missing(values, rate):
    out = [repr(float(v)) if isinstance(v, (float, np.floating)) else str(v) for v in values]
    for i in np.nonzero(rng.random(len(values)) < rate)[0]:
        out[i] = ""
    return out


cols = {}
# a plain fractional feature with 3% missing
cols["normal"] = with_missing(rng.normal(10.0, 3.0, ROWS), 0.03)
# heavy tail, no missing
cols["lognormal"] = with_missing(rng.lognormal(0.0, 1.5, ROWS), 0.0)
# an integral count with 10% missing
cols["count"] = with_missing(rng.poisson(4.0, ROWS), 0.10)
# a large offset with a small spread: the naive sum-of-squares variance
# loses every digit here, Welford's does not
cols["big"] = with_missing(1e9 + rng.normal(0.0, 0.5, ROWS), 0.01)
# negative integers mixed with fractions: infers Fractional
mix = rng.integers(-50, 50, ROWS).astype(object)
frac = rng.random(ROWS) < 0.2
mix[frac] = [float(x) + 0.25 for x in mix[frac]]
cols["mixed_numbers"] = with_missing(mix, 0.05)
# categorical
cols["color"] = with_missing(rng.choice(["red", "green", "blue", "teal"], ROWS, p=[0.5, 0.3, 0.15, 0.05]), 0.02)
# booleans
cols["flag"] = with_missing(rng.choice(["true", "false"], ROWS, p=[0.3, 0.7]), 0.0)
# integers with a few words: infers String
words = rng.integers(0, 5, ROWS).astype(object)
words[rng.random(ROWS) < 0.01] = "n/a"
cols["ints_and_words"] = with_missing(words, 0.0)
# always missing
cols["empty"] = [""] * ROWS

names = list(cols)
with open(os.path.join(HERE, "baseline.csv"), "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(names)
    for i in range(ROWS):
        w.writerow([cols[n][i] for n in names])

numeric = {"normal": "Fractional", "lognormal": "Fractional", "count": "Integral",
           "big": "Fractional", "mixed_numbers": "Fractional"}
strings = {"color": "String", "flag": "Boolean", "ints_and_words": "String", "empty": "Unknown"}

features = []
for n in names:
    cells = cols[n]
    present = [c for c in cells if c != ""]
    feat = {"name": n, "num_present": len(present), "num_missing": ROWS - len(present)}
    if n in numeric:
        x = np.array([float(c) for c in present], dtype=np.float64)
        feat.update(inferred_type=numeric[n], mean=float(np.mean(x)), sum=float(np.sum(x)),
                    std_dev=float(np.std(x)),  # ddof=0: the population std, as Deequ's
                    min=float(np.min(x)), max=float(np.max(x)),
                    quantiles={str(q): float(np.quantile(x, q, method="inverted_cdf"))
                               for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)})
    else:
        values, counts = np.unique(np.array(present, dtype=object).astype(str), return_counts=True)
        feat.update(inferred_type=strings[n], distinct_count=len(values),
                    categories={str(v): int(c) for v, c in zip(values, counts)})
    features.append(feat)

with open(os.path.join(HERE, "baseline_expected.json"), "w") as f:
    json.dump({"generator": "numpy " + np.__version__, "item_count": ROWS, "features": features}, f, indent=2)
    f.write("\n")
