"""Time neuraloperator's 2D FNO training step, set up as the paper's Darcy FNO-2D.

Runs in the peer environment (``V=$(../shared/peer/setup.sh)``) and imports only numpy,
torch and neuralop:

    $V/bin/python benchmarks/peer_step2d.py --resolution=85 --batch=20 --threads=2

The model and loss are benchmarks/peer_accuracy.py's Darcy set-up (width 32, 4 layers,
12 x 12 kept modes in both corners, inputs (a, x, y), projection 32 -> 128 -> 1, the
per-sample relative L2 summed over the batch on decoded outputs, Adam with weight decay), on
random data of the configured shape. Prints one JSON line with fno.benchmark's keys
(median ms/step over repeats, min, max, samples/s, analytic GFLOP/s by fno's FLOP count).
"""

import argparse
import json
import math
import os
import platform
import resource
import statistics
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--resolution", type=int, default=85)
parser.add_argument("--batch", type=int, default=20)
parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
parser.add_argument("--repeats", type=int, default=7)
parser.add_argument("--warmup", type=int, default=3)
parser.add_argument("--threads", type=int, default=os.cpu_count())
args = parser.parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import neuralop  # noqa: E402
import torch  # noqa: E402
from neuralop.models import FNO  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
s, b = args.resolution, args.batch
model = FNO(n_modes=(24, 23), in_channels=3, out_channels=1, hidden_channels=32, n_layers=4,
            positional_embedding=None, lifting_channel_ratio=0, projection_channel_ratio=4,
            use_channel_mlp=False, fno_skip="linear", norm=None, factorization=None,
            domain_padding=None, preactivation=False, fno_block_precision="full")
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
mean, std = torch.rand(s, s), torch.rand(s, s) + 0.5
batches = [(torch.randn(b, 3, s, s), torch.randn(b, s, s)) for _ in range(2)]


def step(i: int) -> None:
    x, y = batches[i % 2]
    optimizer.zero_grad(set_to_none=True)
    out = model(x).reshape(b, s, s) * (std + 1e-5) + mean
    loss = (torch.linalg.vector_norm(out - y, dim=(1, 2))
            / torch.linalg.vector_norm(y, dim=(1, 2))).sum()
    loss.backward()
    optimizer.step()


t0 = time.perf_counter()
for i in range(1 + args.warmup):
    step(i)
warm_s = time.perf_counter() - t0
ms = []
for _ in range(args.repeats):
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(i)
    ms.append((time.perf_counter() - t0) * 1e3 / args.steps)
median = statistics.median(ms)
# fno.benchmark.forward_flops for grid rank 2, width 32, 12 modes, 4 layers, projection 128.
n, width, modes = s * s, 32, 12
forward = (2 * b * n * 3 * width
           + 4 * (2 * 5 * n * math.log2(n) * b * width + 8 * b * width * width * 2 * modes**2
                  + 2 * b * n * width * width)
           + 2 * b * n * (width * 128 + 128))
print(json.dumps({
    "impl": "neuraloperator_2d", "resolution": s, "batch": b, "threads": args.threads,
    "ms_per_step": round(median, 4), "ms_min": round(min(ms), 4), "ms_max": round(max(ms), 4),
    "ms_all": [round(v, 4) for v in ms], "samples_per_s": round(b * 1e3 / median, 2),
    "gflop_per_step": round(3 * forward / 1e9, 4),
    "achieved_gflop_s": round(3 * forward / (median * 1e-3) / 1e9, 2),
    "warmup_s": round(warm_s, 3),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "n_params": sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()),
    "torch": torch.__version__, "neuralop": getattr(neuralop, "__version__", "?"),
    "python": platform.python_version(),
}), flush=True)
