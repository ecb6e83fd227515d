"""Train neuraloperator's FNO on fno's Navier-Stokes trajectories with the released recipes.

Runs in the peer environment (``V=$(benchmarks/peer/setup.sh)``) and imports only numpy,
torch and neuralop:

    $V/bin/python benchmarks/peer_accuracy_ns.py --model=2d --epochs=500 \
        --data_dir=~/.cache/fno/navier_stokes_n1200_s64_nu0.001_t50_rec1_seed0

The windows are fno's ``configs/ns_paper.py``: trajectories ``w.npy`` ``[N, 64, 64, T+1]``
(t = 0 first), input the snapshots t = 1..10, target the 40 after them; the first
``num_train`` trajectories train, the last ``num_test`` test. ``2d`` (fourier_2d_time.py):
benchmarks/peer_models.py's FNO-2D of the last 10 snapshots and (x, y), rolled out over the
40 steps in a Python loop, the per-sample relative L2 error of each step summed over steps
and batch, batch 20. ``3d`` (fourier_3d.py): its FNO-3D over (x, y, t), the point-wise
Gaussian normaliser of inputs and targets, one relative L2 error per sample over the window
on decoded outputs, batch 10. Both: Adam(lr 1e-3, weight_decay 1e-4), StepLR halving every
100 epochs, batches reshuffled every epoch. Prints one JSON line: the test relative L2 over
the window (the paper's metric), the error of every step, the wall time and the versions.
"""

import argparse
import json
import os
import time

import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data_dir", required=True, help="fno Navier-Stokes directory (w.npy)")
parser.add_argument("--model", choices=("2d", "3d"), default="2d")
parser.add_argument("--first_step", type=int, default=1)
parser.add_argument("--input_steps", type=int, default=10)
parser.add_argument("--output_steps", type=int, default=40)
parser.add_argument("--num_train", type=int, default=1000)
parser.add_argument("--num_test", type=int, default=200)
parser.add_argument("--epochs", type=int, default=500)
parser.add_argument("--batch", type=int, default=None, help="default: 20 (2d), 10 (3d)")
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--weight_decay", type=float, default=1e-4)
parser.add_argument("--step_size", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--threads", type=int, default=os.cpu_count())
args = parser.parse_args()

import neuralop  # noqa: E402
import torch  # noqa: E402
from peer_models import navier_stokes_fno, num_params, relative_l2  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
np.random.seed(args.seed)

data_dir = os.path.expanduser(args.data_dir)
w = np.load(os.path.join(data_dir, "w.npy"), mmap_mode="r")
n, s = w.shape[:2]
t_in, t_out, first = args.input_steps, args.output_steps, args.first_step
batch = args.batch or (20 if args.model == "2d" else 10)


def window(rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [n, t_in, s, s] and targets [n, t_out, s, s] (time as channels, first)."""
    block = np.ascontiguousarray(w[rows, :, :, first:first + t_in + t_out], dtype=np.float32)
    block = torch.from_numpy(block).permute(0, 3, 1, 2)
    return block[:, :t_in].contiguous(), block[:, t_in:].contiguous()


x_train, y_train = window(slice(0, args.num_train))
x_test, y_test = window(slice(n - args.num_test, n))
line = torch.linspace(0, 1, s)
EPS = 1e-5


def fit(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Point-wise mean and unbiased std over the training samples (UnitGaussianNormalizer)."""
    return a.mean(0), a.std(0)


if args.model == "3d":
    x_mean, x_std = fit(x_train)
    y_mean, y_std = fit(y_train)


def predict(model, x: torch.Tensor, y: torch.Tensor | None = None):
    """The window ``[b, t_out, s, s]`` predicted from ``x``; with ``y``, also the loss."""
    b = len(x)
    if args.model == "2d":
        coords = torch.stack(torch.meshgrid(line, line, indexing="ij"))[None].expand(b, 2, s, s)
        outs, current, loss = [], x, 0.0
        for t in range(t_out):
            out = model(torch.cat([current, coords], 1))
            outs.append(out)
            if y is not None:
                loss = loss + relative_l2(out[:, 0], y[:, t]).sum()
            current = torch.cat([current[:, 1:], out], 1)
        return torch.cat(outs, 1), loss
    time_line = torch.linspace(0, 1, t_out)
    coords = torch.stack(torch.meshgrid(line, line, time_line, indexing="ij"))
    encoded = ((x - x_mean) / (x_std + EPS))[..., None].expand(b, t_in, s, s, t_out)
    out = model(torch.cat([encoded, coords[None].expand(b, 3, s, s, t_out)], 1))[:, 0]
    out = out.permute(0, 3, 1, 2) * (y_std + EPS) + y_mean  # [b, t_out, s, s]
    return out, (relative_l2(out, y).sum() if y is not None else 0.0)


model = navier_stokes_fno(args.model, t_in, t_out)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=0.5)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train),
                                     batch_size=batch, shuffle=True)
start = time.perf_counter()
curve = []
for epoch in range(args.epochs):
    model.train()
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        _, loss = predict(model, x, y)
        loss.backward()
        optimizer.step()
        total += float(loss)
    scheduler.step()
    curve.append({"epoch": epoch + 1, "train_loss": total / args.num_train})
train_s = time.perf_counter() - start

model.eval()
with torch.inference_mode():
    preds = torch.cat([predict(model, x_test[i:i + 10])[0] for i in range(0, len(x_test), 10)])
window_error = relative_l2(preds, y_test)
step_error = torch.stack([relative_l2(preds[:, t], y_test[:, t]) for t in range(t_out)], 1)
print(json.dumps({
    "implementation": "neuraloperator", "model": args.model, "seed": args.seed,
    "test_rel_l2": float(window_error.mean()),
    "test_rel_l2_step": [round(float(v), 6) for v in step_error.mean(0)],
    "train_s": round(train_s, 1), "epochs": args.epochs, "batch": batch, "curve": curve,
    "n_params": num_params(model),
    "torch": torch.__version__, "neuralop": getattr(neuralop, "__version__", "?"),
    "data_dir": data_dir, "num_train": args.num_train, "num_test": args.num_test,
}))
