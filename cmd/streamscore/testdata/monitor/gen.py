#!/usr/bin/python3
"""Makes the fixtures of cmd/streamscore/monitor_test.go (run from this directory).

baseline.csv   2,000 rows of a machine's readings: temperature ~ N(70, 5),
               vibration ~ Gamma(2, 0.5) with exactly 40 cells empty,
               rpm ~ round(N(1500, 100)), machine in press/lathe/mill (.5/.3/.2)
resample.csv   the same distributions, other draws (no drift)
shifted.csv    the same, but temperature moved by +2.5, half a standard deviation
modelmonitor/  a baseline of baseline.csv as SageMaker Model Monitor lays it out,
               computed by numpy (so its statistics.json is also what ours must
               say of baseline.csv), without sketch data: buckets only (10 equal-width between min and
               max, numpy.histogram's counts), constraints with completeness,
               is_non_negative, the categorical domain and a Robust comparison at 0.1

Needs numpy (Debian: apt-get install python3-numpy).
"""
import csv
import json
import os

import numpy as np

N = 2000
MISSING = 40
MACHINES = ["press", "lathe", "mill"]


def sample(seed, shift=0.0):
    rng = np.random.default_rng(seed)
    temperature = np.round(rng.normal(70.0, 5.0, N) + shift, 2)
    vibration = np.round(rng.gamma(2.0, 0.5, N), 3)
    vib_missing = np.zeros(N, dtype=bool)
    vib_missing[rng.choice(N, MISSING, replace=False)] = True
    rpm = np.round(rng.normal(1500.0, 100.0, N)).astype(np.int64)
    machine = rng.choice(MACHINES, N, p=[0.5, 0.3, 0.2])
    return temperature, vibration, vib_missing, rpm, machine


def write_csv(name, data):
    temperature, vibration, vib_missing, rpm, machine = data
    with open(name, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["temperature", "vibration", "rpm", "machine"])
        for i in range(N):
            w.writerow([
                "%.2f" % temperature[i],
                "" if vib_missing[i] else "%.3f" % vibration[i],
                "%d" % rpm[i],
                machine[i],
            ])


def numeric(name, kind, values, missing):
    # Model Monitor's std_dev is the population standard deviation (ddof=0).
    lo, hi = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=10, range=(lo, hi))
    return {
        "name": name,
        "inferred_type": kind,
        "numerical_statistics": {
            "common": {"num_present": int(values.size), "num_missing": int(missing)},
            "mean": float(values.mean()),
            "sum": float(values.sum()),
            "std_dev": float(values.std()),
            "min": lo,
            "max": hi,
            "distribution": {"kll": {"buckets": [
                {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
                for i in range(10)
            ]}},
        },
    }


def main():
    base = sample(1)
    write_csv("baseline.csv", base)
    write_csv("resample.csv", sample(2))
    write_csv("shifted.csv", sample(3, shift=2.5))

    # Statistics of the values as written (rounded), read back from the file.
    with open("baseline.csv") as f:
        rows = list(csv.DictReader(f))
    temperature = np.array([float(r["temperature"]) for r in rows])
    vib = [r["vibration"] for r in rows]
    vibration = np.array([float(v) for v in vib if v != ""])
    rpm = np.array([int(r["rpm"]) for r in rows], dtype=np.float64)
    machine = [r["machine"] for r in rows]
    values, counts = np.unique(machine, return_counts=True)

    features = [
        numeric("temperature", "Fractional", temperature, 0),
        numeric("vibration", "Fractional", vibration, len(vib) - vibration.size),
        numeric("rpm", "Integral", rpm, 0),
        {
            "name": "machine",
            "inferred_type": "String",
            "string_statistics": {
                "common": {"num_present": len(machine), "num_missing": 0},
                "distinct_count": float(len(values)),
                "distribution": {"categorical": {"buckets": [
                    {"value": str(v), "count": int(c)} for v, c in zip(values, counts)
                ]}},
            },
        },
    ]
    stats = {"version": 0.0, "dataset": {"item_count": len(rows)}, "features": features}
    os.makedirs("modelmonitor", exist_ok=True)
    with open("modelmonitor/statistics.json", "w") as f:
        json.dump(stats, f, indent=2)
        f.write("\n")
    constraints = {
        "version": 0.0,
        "features": [
            {"name": "temperature", "inferred_type": "Fractional", "completeness": 1.0,
             "num_constraints": {"is_non_negative": True}},
            {"name": "vibration", "inferred_type": "Fractional",
             "completeness": vibration.size / len(vib), "num_constraints": {"is_non_negative": True}},
            {"name": "rpm", "inferred_type": "Integral", "completeness": 1.0,
             "num_constraints": {"is_non_negative": True}},
            {"name": "machine", "inferred_type": "String", "completeness": 1.0,
             "string_constraints": {"domains": [str(v) for v in values]}},
        ],
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
            },
        },
    }
    with open("modelmonitor/constraints.json", "w") as f:
        json.dump(constraints, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
