"""Train the reference library's FNO on fno's own Burgers or Darcy data with the released recipe.

Runs in the peer environment (``V=$(benchmarks/peer/setup.sh)``: CPU PyTorch and
neuraloperator), not fno's, and imports only numpy, torch and neuralop:

    $V/bin/python benchmarks/peer_accuracy.py \
        --data_dir=~/.cache/fno/burgers_n2048_s8192_nu0.1_t1_seed0 --resolution=256 --seed=0

The model is neuraloperator's ``FNO`` set up as the paper's FNO1d (the options of
benchmarks/peer/peer_neuralop.py's "paper" preset: 16 kept modes, width 64, 4 layers,
projection 64 -> 128 -> 1, the grid linspace(0, 1, s) as the second input channel). The
recipe is the released ``fourier_1d.py``'s: the first ``num_train`` samples for training and
the last ``num_test`` for test (fno's split), every ``sub``-th point, batch 20 reshuffled every
epoch, Adam(lr 1e-3, weight_decay 1e-4), StepLR halving every 50 epochs, and the per-sample
relative L2 error summed over the batch as the loss.

A Darcy directory (a.npy, u.npy: ``[N, 421, 421]``, vertex grid) gets the released
``fourier_2d.py``'s model and recipe instead: neuraloperator's 2D ``FNO`` with width 32,
4 layers and 12 x 12 kept modes in both low-frequency corners (``n_modes=(24, 23)``: 24
around zero along x, 23 // 2 + 1 = 12 along y), inputs (a, x, y), projection 32 -> 128 -> 1,
the point-wise Gaussian normaliser of the training inputs and outputs (fitted on the stored
grid and subsampled, as fno does), the loss on decoded outputs, StepLR halving every
``--step_size`` epochs (100 for Darcy), the first ``num_train`` samples for training and the
last ``num_test`` for test, every r-th point with both ends kept (S - 1 = r (s - 1)).

Prints one JSON line: the mean test relative L2 at every evaluated resolution, the wall time
and the versions.
"""

import argparse
import json
import os
import time

import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data_dir", required=True,
                    help="fno dataset directory (u0.npy, u1.npy or a.npy, u.npy)")
parser.add_argument("--resolution", type=int, default=256)
parser.add_argument("--eval_resolutions", default="", help="comma-separated, zero-shot")
parser.add_argument("--num_train", type=int, default=1000)
parser.add_argument("--num_test", type=int, default=None, help="200 Burgers, 100 Darcy")
parser.add_argument("--epochs", type=int, default=500)
parser.add_argument("--batch", type=int, default=20)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--weight_decay", type=float, default=1e-4)
parser.add_argument("--step_size", type=int, default=None, help="50 Burgers, 100 Darcy")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--threads", type=int, default=os.cpu_count())
args = parser.parse_args()

import neuralop  # noqa: E402
import torch  # noqa: E402
from peer_models import num_params, paper_fno, relative_l2  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
np.random.seed(args.seed)

data_dir = os.path.expanduser(args.data_dir)
darcy = os.path.exists(os.path.join(data_dir, "a.npy"))
inputs = np.load(os.path.join(data_dir, "a.npy" if darcy else "u0.npy"), mmap_mode="r")
targets = np.load(os.path.join(data_dir, "u.npy" if darcy else "u1.npy"), mmap_mode="r")
n, full = inputs.shape[:2]
num_test = args.num_test or (100 if darcy else 200)
step_size = args.step_size or (100 if darcy else 50)
train_rows, test_rows = slice(0, args.num_train), slice(n - num_test, n)


def fit(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point-wise mean and unbiased std over the training samples (UnitGaussianNormalizer)."""
    rows = array[train_rows]
    mean = rows.mean(axis=0, dtype=np.float64)
    std = np.sqrt(((rows - mean) ** 2).sum(axis=0) / (len(rows) - 1))
    return mean.astype(np.float32), std.astype(np.float32)


EPS = 1e-5
if darcy:
    a_mean, a_std = fit(inputs)
    u_mean, u_std = fit(targets)


def step(resolution: int) -> int:
    if darcy:
        if (full - 1) % (resolution - 1):
            raise SystemExit(f"error: resolution {resolution} is not a subgrid of {full}")
        return (full - 1) // (resolution - 1)
    if full % resolution:
        raise SystemExit(f"error: resolution {resolution} does not divide {full}")
    return full // resolution


def split(resolution: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs (Burgers [n, 2, s]: u0 and the grid; Darcy [n, 3, s, s]: the normalised
    coefficient and the two coordinates) and raw targets ([n, s] or [n, s, s])."""
    sub = step(resolution)
    index = (rows, slice(None, None, sub)) + (slice(None, None, sub),) * darcy
    a = np.ascontiguousarray(inputs[index], dtype=np.float32)
    u = torch.from_numpy(np.ascontiguousarray(targets[index], dtype=np.float32))
    grid = torch.linspace(0, 1, resolution)
    if not darcy:
        return torch.stack([torch.from_numpy(a), grid.expand(len(a), resolution)], dim=1), u
    a = torch.from_numpy((a - a_mean[::sub, ::sub]) / (a_std[::sub, ::sub] + EPS))
    x, y = torch.meshgrid(grid, grid, indexing="ij")
    shape = (len(a), resolution, resolution)
    return torch.stack([a, x.expand(shape), y.expand(shape)], dim=1), u


def decode(out: torch.Tensor, resolution: int) -> torch.Tensor:
    """The model's output as a field: [n, s] (Burgers) or decoded [n, s, s] (Darcy)."""
    if not darcy:
        return out.reshape(len(out), resolution)
    sub = step(resolution)
    mean = torch.from_numpy(np.ascontiguousarray(u_mean[::sub, ::sub]))
    std = torch.from_numpy(np.ascontiguousarray(u_std[::sub, ::sub]))
    return out.reshape(len(out), resolution, resolution) * (std + EPS) + mean


x_train, y_train = split(args.resolution, train_rows)
resolutions = [args.resolution] + [int(r) for r in args.eval_resolutions.split(",") if r]
tests = {r: split(r, test_rows) for r in resolutions}

model = paper_fno(2 if darcy else 1)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.5)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train),
                                     batch_size=args.batch, shuffle=True)

start = time.perf_counter()
curve = []
for epoch in range(args.epochs):
    model.train()
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = relative_l2(decode(model(x), args.resolution), y).sum()
        loss.backward()
        optimizer.step()
        total += float(loss)
    scheduler.step()
    if (epoch + 1) % step_size == 0 or epoch + 1 == args.epochs:
        curve.append({"epoch": epoch + 1, "train_rel_l2": total / args.num_train})
train_s = time.perf_counter() - start

model.eval()
metrics = {}
with torch.inference_mode():
    for r, (x, y) in tests.items():
        errors = torch.cat([relative_l2(decode(model(x[i:i + 10]), r), y[i:i + 10])
                            for i in range(0, len(x), 10)])
        metrics[f"test_rel_l2_s{r}"] = float(errors.mean())
print(json.dumps({
    "implementation": "neuraloperator", "seed": args.seed, "resolution": args.resolution,
    "test_rel_l2": metrics[f"test_rel_l2_s{args.resolution}"], **metrics,
    "train_s": round(train_s, 1), "epochs": args.epochs, "curve": curve,
    "n_params": num_params(model),
    "torch": torch.__version__, "neuralop": getattr(neuralop, "__version__", "?"),
    "data_dir": data_dir, "num_train": args.num_train, "num_test": num_test,
}))
