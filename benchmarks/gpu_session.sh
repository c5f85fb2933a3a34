#!/usr/bin/env bash
# The device calls of a lent-GPU session (DEVELOPERS.md, "Training on a lent GPU"), one verb a call:
#
#   1. carry [.carry/train.part1-of-2.D]: bash benchmarks/gpu_session.sh stash
#   2. carry [.carry/train.part2-of-2.D]: bash benchmarks/gpu_session.sh train DEADLINE_S
#        assembles the training set and starts `nets.batch train --from-shipped` in a session of its own
#        (setsid: it outlives the call, the machine stays warm while calls follow), then reports its first
#        seconds: the training overlaps calls 3 and 4 and the CUDA tests instead of waiting for them.
#   3. carry [.whl/site.part1-of-2.D]:   bash benchmarks/gpu_session.sh stash
#   4. carry [.whl/site.part2-of-2.D]:   STYLECAM_GIT_REVISION=SHA bash benchmarks/gpu_session.sh finish BENCH_S
#        assembles the packages, runs `pytest -m gpu` beside the training, waits for the training, moves
#        its weights (parts of at most 15 MiB) to $OUT, then runs the CUDA benchmark on the quiet GPU for at
#        most BENCH_S seconds (it writes its JSON after every section) and packs the results and every log
#        into $OUT/results.tar.gz.
#
# Knobs: NAMES (all paintings), STYLE_WEIGHT_FACTOR (1: each net's shipped style weight); for a dry run on
# a CPU: DEVICE (cuda), JOBS (10), BATCH (8), STEPS (100000), WORK.
set -u
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/stylecam-gpu}
DEVICE=${DEVICE:-cuda}

case "${1:-}" in
stash)
  python3 -m nets.carry stash
  ;;
train)
  deadline=${2:?train needs the deadline in seconds}
  python3 -m nets.carry assemble train --into "$WORK/train" || exit 1
  rm -rf "$WORK/repo" "$WORK/out" "$WORK/done" && mkdir -p "$WORK/repo" "$WORK/out"
  # the training runs from its own copy: later calls re-send the tree under it
  tar --exclude=./.git --exclude=./.carry --exclude=./.whl --exclude=./.stash -cf - . | tar -xf - -C "$WORK/repo"
  date +%s >"$WORK/started"
  echo "$deadline" >"$WORK/deadline"
  (cd "$WORK/repo" && OMP_NUM_THREADS=1 PYTHONPATH=. PYTHONUNBUFFERED=1 setsid nohup bash -c \
    "python3 -m nets.batch train --carry '$WORK/train' --from-shipped --arch full --device $DEVICE \
       --jobs ${JOBS:-10} --batch ${BATCH:-8} --steps ${STEPS:-100000} --warmup 100 --deadline $deadline \
       --style-weight-factor ${STYLE_WEIGHT_FACTOR:-1} ${NAMES:+--names $NAMES} --out '$WORK/out/full'; echo \"batch rc=\$?\"; touch '$WORK/done'" \
    >"$WORK/batch.log" 2>&1 </dev/null &)
  sleep "${WATCH:-45}"
  echo "--- after ${WATCH:-45} s:"
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
  tail -n 3 /tmp/stylecam-batch-*/*.log 2>/dev/null | cut -c1-300
  ls /tmp/stylecam-batch-*/runs 2>/dev/null | head -20
  cat "$WORK/batch.log"
  ;;
finish)
  bench_s=${2:?finish needs the benchmark limit in seconds}
  python3 -m nets.carry assemble site --into "$WORK/site" || exit 1
  export PYTHONPATH="$WORK/site:." PYTHONUNBUFFERED=1
  mkdir -p "$WORK/results"
  timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_benchmarks.py tests/test_nets_adain.py \
    tests/test_nets_transformer.py tests/test_realtime_stylize.py tests/test_styles.py >"$WORK/results/gpu_tests.log" 2>&1
  echo "gpu tests rc=$?"; tail -n 5 "$WORK/results/gpu_tests.log"
  # nets.batch stops its trainings at the deadline, gives their exports --grace (60 s), interrupts the rest
  limit=$(($(cat "$WORK/started" 2>/dev/null || date +%s) + $(cat "$WORK/deadline" 2>/dev/null || echo 0) + 150))
  while [ -f "$WORK/started" ] && [ ! -f "$WORK/done" ] && [ "$(date +%s)" -lt "$limit" ]; do sleep 2; done
  if [ -f "$WORK/started" ] && [ ! -f "$WORK/done" ]; then  # the benchmark needs a quiet GPU
    echo "training still running at its limit: stopped"; pkill -INT -f 'nets.(batch|cli) train'; sleep 5
  fi
  cp "$WORK/batch.log" "$WORK/results/" 2>/dev/null
  tail -n 40 "$WORK/batch.log" 2>/dev/null | grep -E '"rc"|batch rc' | head -12
  for f in "$WORK"/out/full.part*; do [ -f "$f" ] && mv "$f" "$OUT/"; done
  timeout "$bench_s" python3 -m benchmarks --device "$DEVICE" --section network --section pipeline \
    --section baselines --section precision --size 640x480 --size 1920x1080 --seconds 1 --live-seconds 2 \
    --name "gpu-${GPU_NAME:-h200}" --out "$WORK/results" >"$WORK/results/bench.log" 2>&1
  echo "benchmark rc=$?"
  grep -E '^goal ' "$WORK/results/bench.log" || tail -n 8 "$WORK/results/bench.log"
  # any painting as a style (nets.adain): the net alone on CUDA fp32/fp16 and on the CPU
  timeout 90 python3 -m benchmarks.any_painting --sizes 640x480 1920x1080 --name "any_painting-gpu-${GPU_NAME:-h200}" \
    >"$WORK/results/any_painting.log" 2>&1
  echo "any_painting rc=$?"; cp benchmarks/results/any_painting-gpu-*.* "$WORK/results/" 2>/dev/null
  tar -C "$WORK" -czf "$OUT/results.tar.gz" results
  ls -la "$OUT"
  ;;
*)
  echo "usage: $0 stash | train DEADLINE_S | finish BENCH_S" >&2
  exit 2
  ;;
esac
