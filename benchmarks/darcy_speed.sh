#!/usr/bin/env bash
# The 2D step-time table in docs/performance.md: fno's FNO-2D (basic and scan) against
# neuraloperator's 2D FNO, set up as the paper's Darcy model (width 32, 12 x 12 modes, 4 layers,
# batch 20, summed relative L2 loss), at s = 85, 141 and 421, back to back, twice.
#
#   PEER_PYTHON=$(benchmarks/peer/setup.sh)/bin/python benchmarks/darcy_speed.sh
#
# Writes benchmarks/results/darcy_steps.jsonl (OUT_JSONL=<file> elsewhere) and prints the
# summary (benchmarks/summarize.py). RESOLUTIONS="85" limits the rounds. The peer is skipped
# when PEER_PYTHON is unset. Needs about 14 GB of memory at s = 421. Run on an otherwise idle
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1
results=${OUT_JSONL:-benchmarks/results/darcy_steps.jsonl}
: > "$results"
for _ in 1 2; do
  for s in ${RESOLUTIONS:-85 141 421}; do
    # Fewer timed steps where one step takes seconds; scan calls hold 10 steps at 85 and 141.
    case $s in
      85) steps=10 repeats=7 k=10 ;;
      141) steps=10 repeats=3 k=10 ;;
      *) steps=2 repeats=3 k=2 ;;
    esac
    if [[ -n "${PEER_PYTHON:-}" ]]; then
      "$PEER_PYTHON" benchmarks/peer_step2d.py --resolution="$s" --batch=20 \
        --steps="$((steps < 3 ? 1 : steps / 3))" --repeats="$repeats" --warmup=1 --threads=2 \
        2>/dev/null | tail -n 1 >> "$results"
    fi
    for mode in basic scan; do
      python benchmarks/step_timing.py --config="configs/darcy_paper.py:$s" --config.mode="$mode" \
        --config.steps_per_call="$k" --steps="$steps" --repeats="$repeats" \
        --output=/tmp/fno_bench2d.json >/dev/null 2>&1
      python -c "import json, sys; r = json.load(open('/tmp/fno_bench2d.json')); \
r['impl'] = 'fno_' + sys.argv[1]; print(json.dumps(r))" "$mode" >> "$results"
    done
  done
done
python benchmarks/summarize.py "$results"
