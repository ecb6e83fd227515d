#!/usr/bin/env bash
# The Navier-Stokes step-time table in docs/performance.md: fno's FNO-2D in time (the whole
# 40-step rollout, scan) and FNO-3D at 64 x 64 x 40 (configs/ns_paper.py:2d and :3d) against
# neuraloperator's FNO set up as the released scripts (benchmarks/peer_step_ns.py), back to
# back, twice.
#
#   PEER_PYTHON=$(benchmarks/peer/setup.sh)/bin/python benchmarks/ns_speed.sh
#
# Writes benchmarks/results/ns_steps.jsonl (OUT_JSONL=<file> elsewhere). MODELS="2d" limits
# the models. The peer is skipped when PEER_PYTHON is unset. Run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1
results=${OUT_JSONL:-benchmarks/results/ns_steps.jsonl}
: > "$results"
for _ in 1 2; do
  for model in ${MODELS:-2d 3d}; do
    if [[ -n "${PEER_PYTHON:-}" ]]; then
      "$PEER_PYTHON" benchmarks/peer_step_ns.py --model="$model" --steps=2 --repeats=3 \
        --warmup=1 --threads=2 2>/dev/null | tail -n 1 >> "$results"
    fi
    python benchmarks/step_timing.py --config="configs/ns_paper.py:$model" --config.mode=basic \
      --steps=2 --repeats=3 --warmup=1 --output=/tmp/fno_bench_ns.json >/dev/null 2>&1
    python -c "import json, sys; r = json.load(open('/tmp/fno_bench_ns.json')); \
r['impl'] = 'fno_ns' + sys.argv[1]; r['model'] = sys.argv[1]; print(json.dumps(r))" \
      "$model" >> "$results"
  done
done
cat "$results"
