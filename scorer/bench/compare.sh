#!/usr/bin/env bash
# Side-by-side throughput of streamscore's embedded scorer and XGBoost 1.7's
# own C++ predictor (python3-xgboost inplace_predict, one thread), on the same
# models and rows: 30 features, 5% NaN, batches of 4,096, binary:logistic
# models of 100 trees depth 6, 300 depth 6 and 500 depth 8 (gbtree), and a
# dart model of 100 trees depth 6 against XGBoost's own dart predictor.
#
# This machine has no LightGBM library, so the LightGBM row scores the
# 300-tree model's trees written as a LightGBM text model (t300_d6.lgb.txt)
# through streamscore's LightGBM path, against the same trees through its
# XGBoost gbtree path (gobench -same-as first checks that both score every
# row alike).
#
# The two sides run alternately, ROUNDS times each, and the medians are
# compared, so that noise from a shared machine hits both sides alike.
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
GOAL=3

if ! "$PY" -c 'import xgboost' 2>/dev/null; then
	echo "compare.sh: $PY cannot import xgboost; run: apt-get install -y python3-xgboost" >&2
	exit 1
fi
mkdir -p "$WORK"
for f in rows.f64 t100_d6.json t300_d6.json t500_d8.json dart_t100_d6.json t300_d6.lgb.txt; do
	if [ ! -f "$WORK/$f" ]; then
		echo "training benchmark models into $WORK (a few minutes: dart trains slowly) ..." >&2
		"$PY" "$ROOT/scorer/bench/xgb_bench.py" gen "$WORK"
		break
	fi
done
(cd "$ROOT" && go build -o "$WORK/gobench" ./scorer/bench/gobench)

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}'; }
xgb() { taskset -c 0 "$PY" "$ROOT/scorer/bench/xgb_bench.py" time "$WORK/$1" "$WORK/rows.f64" 4096 "$SECS"; }
gob() { taskset -c 0 "$WORK/gobench" -model "$WORK/$1" -rows "$WORK/rows.f64" -batch 4096 -seconds "$SECS"; }
# probe MODEL [FLAG...]: loads and scores the rows once, untimed.
probe() { "$WORK/gobench" -model "$WORK/$1" -rows "$WORK/rows.f64" -seconds 0.001 "${@:2}" >/dev/null; }

# row NAME LABEL_A A_CMD A_ARG B_ARG: alternates "A_CMD A_ARG" with gobench on
# B_ARG, ROUNDS times, and prints the medians and B's ratio to A. It sets
# ratio; a model gobench refuses as unsupported prints "not supported yet".
row() {
	local name=$1 acmd=$2 aarg=$3 barg=$4 as=() aw=() bs=() bw=() bl=() c w l err
	ratio=""
	if ! err=$(probe "$barg" 2>&1); then
		if grep -q "unsupported model" <<<"$err"; then
			read -r c w < <($acmd "$aarg")
			printf "%-16s %24s %24s %7s %9s\n" "$name" "$c ($w)" "not supported yet" "-" "-"
			return
		fi
		echo "compare.sh: $barg: $err" >&2
		exit 1
	fi
	for _ in $(seq "$ROUNDS"); do
		read -r c w < <($acmd "$aarg")
		as+=("$c") aw+=("$w")
		read -r c w l < <(gob "$barg")
		bs+=("$c") bw+=("$w") bl+=("$l")
	done
	local a b awm bwm lm
	a=$(printf "%s\n" "${as[@]}" | median) awm=$(printf "%s\n" "${aw[@]}" | median)
	b=$(printf "%s\n" "${bs[@]}" | median) bwm=$(printf "%s\n" "${bw[@]}" | median)
	lm=$(printf "%s\n" "${bl[@]}" | sort -n | head -1)
	ratio=$(awk -v b="$b" -v a="$a" 'BEGIN {printf "%.2f", b/a}')
	printf "%-16s %24s %24s %6sx %9s\n" "$name" "$a ($awm)" "$b ($bwm)" "$ratio" "$lm"
}
# gobench's output without the load time, as the A side of a row.
gob_a() { read -r c w _ < <(gob "$1"); echo "$c $w"; }

# Rows per CPU-second of the one pinned core (wall-clock rates in brackets),
# medians of ROUNDS alternating runs; load = streamscore's model load time.
printf "%-16s %24s %24s %7s %9s\n" model "xgboost rows/s (wall)" "streamscore (wall)" ratio "load ms"
worst=""
for m in t100_d6 t300_d6 t500_d8; do
	row "$m" xgb "$m.json" "$m.json"
	if [ -z "$worst" ] || awk -v r="$ratio" -v w="$worst" 'BEGIN {exit !(r < w)}'; then worst=$ratio; fi
done
row dart_t100_d6 xgb dart_t100_d6.json dart_t100_d6.json
echo "lowest gbtree ratio: ${worst}x (goal: >= ${GOAL}x)"
echo
probe t300_d6.lgb.txt -same-as "$WORK/t300_d6.json"
printf "%-16s %24s %24s %7s %9s\n" "same trees" "gbtree path (wall)" "lightgbm path (wall)" ratio "load ms"
row t300_d6.lgb.txt gob_a t300_d6.json t300_d6.lgb.txt
