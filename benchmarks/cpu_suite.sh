#!/usr/bin/env bash
# The CPU performance numbers in docs/performance.md, back to back on one machine:
#   fno (every one-device mode) and neuraloperator at s = 256, 1024, 8192, twice each,
#   under the same allocator setting (GLIBC_TUNABLES=glibc.malloc.hugetlb=1, fno's default).
#
#   PEER_PYTHON=$(benchmarks/peer/setup.sh)/bin/python [BASELINE_REV=<git rev>] benchmarks/cpu_suite.sh
#
# Writes benchmarks/results/cpu_steps.jsonl (one JSON record per line; OUT_JSONL=<file>
# elsewhere). The peer is skipped when PEER_PYTHON is unset. RESOLUTIONS="1024" limits the
# rounds to those s; ROUNDS_ONLY=1 stops after the rounds (a quick before/after check). BASELINE_REV also times fno basic as of that commit (from a git
# worktree under /tmp) in the same rounds, for before/after comparisons. Run on an otherwise
# idle machine: timings drift +-20% with load.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
peer_script=${PEER_SCRIPT:-benchmarks/peer/peer_neuralop.py}
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1
results=${OUT_JSONL:-$out/cpu_steps.jsonl}
: > "$results"
record() {  # record IMPL: append /tmp/fno_bench.json, tagged, to the results
  python -c "import json, sys; r = json.load(open('/tmp/fno_bench.json')); r['impl'] = sys.argv[1]; \
print(json.dumps(r))" "$1" >> "$results"
}
if [[ -n "${BASELINE_REV:-}" ]]; then
  baseline=/tmp/fno_baseline_$(git rev-parse --short "$BASELINE_REV")
  [[ -d $baseline ]] || git worktree add --detach "$baseline" "$BASELINE_REV" >/dev/null
fi
for _ in 1 2; do
  for s in ${RESOLUTIONS:-256 1024 8192}; do
    steps=$((s >= 8192 ? 4 : 10))
    if [[ -n "${PEER_PYTHON:-}" ]]; then
      "$PEER_PYTHON" "$peer_script" --resolution "$s" --batch 20 --steps "$steps" --repeats 7 \
        --threads 2 --n-modes 31 2>/dev/null | tail -n 1 >> "$results"
    fi
    for mode in basic scan; do
      python benchmarks/step_timing.py --config="configs/$mode.py" --config.data.resolution="$s" \
        --steps="$steps" --repeats=7 --output=/tmp/fno_bench.json >/dev/null 2>&1
      record "fno_$mode"
    done
    if [[ -n "${BASELINE_REV:-}" ]]; then
      (cd "$baseline" && python benchmarks/step_timing.py --config=configs/basic.py \
        --config.data.resolution="$s" --steps="$steps" --repeats=7 \
        --output=/tmp/fno_bench.json >/dev/null 2>&1)
      record "fno_basic_at_${baseline##*_}"
    fi
  done
done
if [[ -n "${ROUNDS_ONLY:-}" ]]; then
  python benchmarks/summarize.py "$results"
  exit 0
fi
# The other one-device modes at the paper size (pmap and mesh on a single device).
for mode in pmap pmap_scan mesh mesh_scan; do
  python benchmarks/step_timing.py --config="configs/$mode.py" --steps=10 --repeats=7 \
    --output=/tmp/fno_bench.json >/dev/null 2>&1
  record "fno_$mode"
done
# Spectral convolution: FFT against truncated-DFT matmuls.
for s in 1024 8192; do
  python benchmarks/step_timing.py --config=configs/basic.py --config.data.resolution="$s" \
    --config.model.spectral_impl=fft --steps=4 --repeats=5 --output=/tmp/fno_bench.json \
    >/dev/null 2>&1
  record fno_basic_fft
done
# bfloat16 compute (model.dtype): for accelerators; on CPU, for the record.
python benchmarks/step_timing.py --config=configs/basic.py --config.model.dtype=bfloat16 --steps=10 \
  --repeats=5 --output=/tmp/fno_bench.json >/dev/null 2>&1
record fno_basic_bf16
# Without the allocator tunable, for the record.
FNO_MALLOC_TUNING=0 GLIBC_TUNABLES="" python benchmarks/step_timing.py --config=configs/basic.py --steps=10 \
  --repeats=7 --output=/tmp/fno_bench.json >/dev/null 2>&1
record fno_basic_no_thp
python benchmarks/summarize.py "$results"
