#!/usr/bin/env bash
# Wall time of the benchmark with the local executor vs a private local Ray, interleaved pairs, each run cold
# (its own SIM2REAL_CACHE and --out under $OUT). Timing on shared machines is noisy: read the medians and the
# ratio, never a single pair.   usage: perf/executor_speed.sh [PROFILE=quick] [PAIRS=4] [OUT=/tmp/executor_speed]
set -u
cd "$(dirname "$0")/.."
PROFILE=${1:-quick}; PAIRS=${2:-4}; OUT=${3:-/tmp/executor_speed}
REAL=${SIM2REAL_SHARED_REAL:-../shared/real}/aruco_cube
mkdir -p "$OUT"
for i in $(seq "$PAIRS"); do
  for ex in local ray; do
    rm -rf "$OUT/$ex$i" "$OUT/cache_$ex$i"
    s=$(date +%s.%N)
    SIM2REAL_CACHE="$OUT/cache_$ex$i" python3 cli.py benchmark --real aruco-cube --from "$REAL" --profile "$PROFILE" \
      --executor "$ex" --out "$OUT/$ex$i" > "$OUT/$ex$i.log" 2>&1
    rc=$?
    e=$(date +%s.%N)
    echo "$ex $i rc=$rc wall_s=$(python3 -c "print(round($e - $s, 1))") load=$(cut -d' ' -f1 /proc/loadavg)"
  done
done | tee "$OUT/times.txt"
python3 - "$OUT/times.txt" <<'PY'
import statistics, sys
t = {"local": [], "ray": []}
for line in open(sys.argv[1]):
    ex, _, rc, wall, _ = line.split()
    if rc == "rc=0":
        t[ex].append(float(wall.split("=")[1]))
m = {k: statistics.median(v) for k, v in t.items() if v}
if len(m) == 2:
    print(f"median local {m['local']:.1f} s, ray {m['ray']:.1f} s, ray/local {m['ray'] / m['local']:.3f}")
PY
