#!/usr/bin/env bash
# The CPU performance numbers in the README, back to back on one machine:
#   fno (every one-device mode) and neuraloperator at s = 256, 1024, 8192, twice each,
#   under the same allocator setting (GLIBC_TUNABLES=glibc.malloc.hugetlb=1, fno's default).
#
#   PEER_PYTHON=$(../shared/peer/setup.sh)/bin/python benchmarks/cpu_suite.sh
#
# Writes benchmarks/results/cpu_*.json (one JSON record per line). The peer is skipped when
# PEER_PYTHON is unset. Run on an otherwise idle machine: timings drift +-20% with load.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
peer_script=${PEER_SCRIPT:-../shared/peer/peer_neuralop.py}
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1
: > "$out/cpu_steps.jsonl"
for round in 1 2; do
  for s in 256 1024 8192; do
    steps=$((s >= 8192 ? 4 : 10))
    if [[ -n "${PEER_PYTHON:-}" ]]; then
      "$PEER_PYTHON" "$peer_script" --resolution "$s" --batch 20 --steps "$steps" --repeats 7 \
        --threads 2 --n-modes 31 2>/dev/null | tail -n 1 >> "$out/cpu_steps.jsonl"
    fi
    for mode in basic scan; do
      python -m fno.benchmark --config="configs/$mode.py" --config.data.resolution="$s" \
        --steps="$steps" --repeats=7 --output=/tmp/fno_bench.json >/dev/null 2>&1
      python -c "import json; r = json.load(open('/tmp/fno_bench.json')); r['impl'] = 'fno_$mode'; \
print(json.dumps(r))" >> "$out/cpu_steps.jsonl"
    done
  done
done
# The other one-device modes at the paper size (pmap and mesh on a single device).
for mode in pmap pmap_scan mesh mesh_scan; do
  python -m fno.benchmark --config="configs/$mode.py" --steps=10 --repeats=7 \
    --output=/tmp/fno_bench.json >/dev/null 2>&1
  python -c "import json; r = json.load(open('/tmp/fno_bench.json')); r['impl'] = 'fno_$mode'; \
print(json.dumps(r))" >> "$out/cpu_steps.jsonl"
done
# Spectral convolution: FFT against truncated-DFT matmuls.
for s in 1024 8192; do
  python -m fno.benchmark --config=configs/basic.py --config.data.resolution="$s" \
    --config.model.spectral_impl=fft --steps=4 --repeats=5 --output=/tmp/fno_bench.json \
    >/dev/null 2>&1
  python -c "import json; r = json.load(open('/tmp/fno_bench.json')); r['impl'] = 'fno_basic_fft'; \
print(json.dumps(r))" >> "$out/cpu_steps.jsonl"
done
# Without the allocator tunable, for the record.
FNO_MALLOC_TUNING=0 GLIBC_TUNABLES= python -m fno.benchmark --config=configs/basic.py --steps=10 \
  --repeats=7 --output=/tmp/fno_bench.json >/dev/null 2>&1
python -c "import json; r = json.load(open('/tmp/fno_bench.json')); r['impl'] = 'fno_basic_no_thp'; \
print(json.dumps(r))" >> "$out/cpu_steps.jsonl"
python benchmarks/summarize.py "$out/cpu_steps.jsonl"
