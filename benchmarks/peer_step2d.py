"""Time neuraloperator's 2D FNO training step, set up as the paper's Darcy FNO-2D.

Runs in the peer environment (``V=$(benchmarks/peer/setup.sh)``) and imports only numpy,
torch and neuralop:

    $V/bin/python benchmarks/peer_step2d.py --resolution=85 --batch=20 --threads=2

The model and loss are benchmarks/peer_accuracy.py's Darcy set-up (width 32, 4 layers,
12 x 12 kept modes in both corners, inputs (a, x, y), projection 32 -> 128 -> 1, the
per-sample relative L2 summed over the batch on decoded outputs, Adam with weight decay), on
random data of the configured shape. Prints one JSON line with benchmarks.step_timing's keys
(median ms/step over repeats, min, max, samples/s); the model is fno's FNO-2D, so
ms/step compare directly.
"""

import argparse
import json
import os

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

import torch  # noqa: E402
from peer_models import environment, paper_fno, relative_l2, time_steps  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
s, b = args.resolution, args.batch
model = paper_fno(2)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
mean, std = torch.rand(s, s), torch.rand(s, s) + 0.5
batches = [(torch.randn(b, 3, s, s), torch.randn(b, s, s)) for _ in range(2)]


def step(i: int) -> None:
    x, y = batches[i % 2]
    optimizer.zero_grad(set_to_none=True)
    out = model(x).reshape(b, s, s) * (std + 1e-5) + mean
    loss = relative_l2(out, y).sum()
    loss.backward()
    optimizer.step()


timed = time_steps(step, args.warmup, args.steps, args.repeats)
print(json.dumps({
    "impl": "neuraloperator_2d", "resolution": s, "batch": b, "threads": args.threads, **timed,
    "samples_per_s": round(b * 1e3 / timed["ms_per_step"], 2), **environment(model),
}), flush=True)
