#!/usr/bin/env bash
# The remaining CPU studies of docs/performance.md, on an idle machine:
# modes against basic (round-robin), loop vs scan, full loop vs bare step, a 2,000-step RSS
# leak check, and 2 processes x 2 devices against 1 process x 4 devices (mesh mode; batch 20
# must divide over the devices).
#
#   benchmarks/cpu_extra.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
python benchmarks/step_timing.py --config=configs/basic.py --compare_modes --steps=10 --repeats=9 \
  --output=$out/modes_cpu.json 2>/dev/null
python benchmarks/step_timing.py --config=configs/basic.py --config.data.resolution=256 --sweep \
  --sweep_batches=1,4,16,64 --sweep_ks=1,4,16,64 --output=$out/scan_sweep_cpu.json 2>/dev/null
python benchmarks/step_timing.py --config=configs/basic.py --loop_overhead --loop_steps=600 \
  --output=$out/loop_overhead_cpu.json 2>/dev/null
python benchmarks/step_timing.py --config=configs/basic.py --leak_check_steps=2000 --steps=10 --repeats=3 \
  --output=$out/leak_check_cpu.json 2>/dev/null
# Multi-process: the paper config in mesh mode, 300 steps, samples/s after the first window.
common=(--config=configs/mesh.py --config.num_train_steps=300 --config.log_every_steps=50
  --config.eval_every_steps=0 --config.checkpoint_every_steps=0 --config.num_plot_samples=0
  --config.data.eval_resolutions="()")
rm -rf /tmp/fno_mp_bench_1 /tmp/fno_mp_bench_2
XLA_FLAGS=--xla_force_host_platform_device_count=4 python main.py "${common[@]}" \
  --workdir=/tmp/fno_mp_bench_1 >/dev/null 2>&1
NUM_PROCESSES=2 DEVICES_PER_PROCESS=2 launch/local.sh "${common[@]}" \
  --workdir=/tmp/fno_mp_bench_2 >/dev/null 2>&1
python - <<'PY' > $out/multiprocess_cpu.json
import json, statistics
rates = {}
for name, path in (("1x4", "/tmp/fno_mp_bench_1"), ("2x2", "/tmp/fno_mp_bench_2")):
    lines = [json.loads(l) for l in open(f"{path}/metrics.jsonl")]
    r = [l["samples_per_s"] for l in lines if "samples_per_s" in l][1:]
    rates[name] = {"samples_per_s": round(statistics.median(r), 1),
                   "ms_per_step": round(20e3 / statistics.median(r), 2)}
print(json.dumps(rates, indent=1))
PY
cat $out/multiprocess_cpu.json
