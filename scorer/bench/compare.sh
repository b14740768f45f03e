#!/usr/bin/env bash
# Side-by-side throughput of streamscore's embedded scorer and XGBoost 1.7's
# own C++ predictor (python3-xgboost inplace_predict, one thread), on the same
# models and rows: 30 features, 5% NaN, batches of 4,096, binary:logistic
# models of 100 trees depth 6, 300 depth 6 and 500 depth 8.
#
# The two run alternately, ROUNDS times each, and the medians are compared, so
# that noise from a shared machine hits both sides alike.
#
#   scorer/bench/compare.sh            # from the repository root
#   ROUNDS=5 SECONDS_PER_RUN=3 scorer/bench/compare.sh
#
# Needs Debian's python3-xgboost (apt-get install -y python3-xgboost); uses
# /usr/bin/python3 on purpose, since that is where Debian installs it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-2}
PY=/usr/bin/python3
WORK=${BENCH_DIR:-${TMPDIR:-/tmp}/streamscore-bench}

if ! "$PY" -c 'import xgboost' 2>/dev/null; then
	echo "compare.sh: $PY cannot import xgboost; run: apt-get install -y python3-xgboost" >&2
	exit 1
fi
mkdir -p "$WORK"
if [ ! -f "$WORK/rows.f64" ] || [ ! -f "$WORK/t500_d8.json" ]; then
	echo "training benchmark models into $WORK ..." >&2
	"$PY" "$ROOT/scorer/bench/xgb_bench.py" gen "$WORK"
fi
(cd "$ROOT" && go build -o "$WORK/gobench" ./scorer/bench/gobench)

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# Rows per CPU-second of the one pinned core (wall-clock rates in brackets),
# medians of ROUNDS alternating runs; load = streamscore's model load time.
printf "%-10s %24s %24s %7s %9s\n" model "xgboost rows/s (wall)" "streamscore (wall)" ratio "load ms"
worst=""
for m in t100_d6 t300_d6 t500_d8; do
	xs=() xw=() gs=() gw=() gl=()
	for _ in $(seq "$ROUNDS"); do
		read -r c w < <(taskset -c 0 "$PY" "$ROOT/scorer/bench/xgb_bench.py" time "$WORK/$m.json" "$WORK/rows.f64" 4096 "$SECS")
		xs+=("$c") xw+=("$w")
		read -r c w l < <(taskset -c 0 "$WORK/gobench" -model "$WORK/$m.json" -rows "$WORK/rows.f64" -batch 4096 -seconds "$SECS")
		gs+=("$c") gw+=("$w") gl+=("$l")
	done
	x=$(printf "%s\n" "${xs[@]}" | median) xwm=$(printf "%s\n" "${xw[@]}" | median)
	g=$(printf "%s\n" "${gs[@]}" | median) gwm=$(printf "%s\n" "${gw[@]}" | median)
	lm=$(printf "%s\n" "${gl[@]}" | sort -n | head -1)
	r=$(awk -v g="$g" -v x="$x" 'BEGIN {printf "%.2f", g/x}')
	printf "%-10s %24s %24s %6sx %9s\n" "$m" "$x ($xwm)" "$g ($gwm)" "$r" "$lm"
	if [ -z "$worst" ] || awk -v r="$r" -v w="$worst" 'BEGIN {exit !(r < w)}'; then worst=$r; fi
done
echo "lowest ratio: ${worst}x (goal: >= 1.5x)"
