"""Time neuraloperator's training step for the paper's Navier-Stokes models: FNO-2D rolled out
in time (``--model=2d``) and FNO-3D over space and time (``--model=3d``).

Runs in the peer environment (``V=$(benchmarks/peer/setup.sh)``) and imports only numpy,
torch and neuralop:

    $V/bin/python benchmarks/peer_step_ns.py --model=2d --batch=20 --threads=2
    $V/bin/python benchmarks/peer_step_ns.py --model=3d --batch=10 --threads=2

Set up as the released scripts and as fno's ``configs/ns_paper.py``: 10 input snapshots at
64 x 64, 40 output steps, width 20, 4 layers, projection 20 -> 128 -> 1, the coordinates as
extra input channels. 2D: 12 x 12 kept modes in both corners, the next snapshot from the last
10, rolled out over the 40 steps in a Python loop (as ``fourier_2d_time.py``), the relative L2
error of each step summed over steps and batch. 3D: 8 modes per axis in the four corners, the
input repeated along a 40-point time axis padded by 6 cells, one relative L2 error over the
window per sample, summed over the batch. Adam with weight decay; random data of those shapes.
Prints one JSON line with benchmarks.step_timing's keys.
"""

import argparse
import json
import os

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", choices=("2d", "3d"), default="2d")
parser.add_argument("--resolution", type=int, default=64)
parser.add_argument("--batch", type=int, default=None, help="default: 20 (2d), 10 (3d)")
parser.add_argument("--input-steps", type=int, default=10)
parser.add_argument("--output-steps", type=int, default=40)
parser.add_argument("--steps", type=int, default=2, help="timed steps per repeat")
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--warmup", type=int, default=1)
parser.add_argument("--threads", type=int, default=os.cpu_count())
args = parser.parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import torch  # noqa: E402
from peer_models import environment, navier_stokes_fno, relative_l2, time_steps  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
s, t_in, t_out = args.resolution, args.input_steps, args.output_steps
b = args.batch or (20 if args.model == "2d" else 10)
model = navier_stokes_fno(args.model, t_in, t_out)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
line = torch.linspace(0, 1, s)
if args.model == "2d":
    coords = torch.stack(torch.meshgrid(line, line, indexing="ij"))[None].expand(b, 2, s, s)
else:
    time_line = torch.linspace(0, 1, t_out)
    coords = torch.stack(torch.meshgrid(line, line, time_line, indexing="ij"))
    coords = coords[None].expand(b, 3, s, s, t_out)
batches = [(torch.randn(b, t_in, s, s), torch.randn(b, t_out, s, s)) for _ in range(2)]


def loss_2d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss, window = 0.0, x
    for t in range(t_out):
        out = model(torch.cat([window, coords], 1))  # [b, 1, s, s]
        loss = loss + relative_l2(out[:, 0], y[:, t]).sum()
        window = torch.cat([window[:, 1:], out], 1)
    return loss


def loss_3d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    repeated = x[..., None].expand(b, t_in, s, s, t_out)
    out = model(torch.cat([repeated, coords], 1))[:, 0]  # [b, s, s, t]
    return relative_l2(out, y.permute(0, 2, 3, 1)).sum()


loss_fn = loss_2d if args.model == "2d" else loss_3d


def step(i: int) -> None:
    x, y = batches[i % 2]
    optimizer.zero_grad(set_to_none=True)
    loss_fn(x, y).backward()
    optimizer.step()


timed = time_steps(step, args.warmup, args.steps, args.repeats)
print(json.dumps({
    "impl": f"neuraloperator_ns{args.model}", "model": args.model, "resolution": s, "batch": b,
    "input_steps": t_in, "output_steps": t_out, "threads": args.threads, **timed,
    "samples_per_s": round(b * 1e3 / timed["ms_per_step"], 3), **environment(model),
}), flush=True)
