"""Train the reference library's FNO on fno's own Burgers data with the released recipe.

Runs in the peer environment (``V=$(../shared/peer/setup.sh)``: CPU PyTorch and
neuraloperator), not fno's, and imports only numpy, torch and neuralop:

    $V/bin/python benchmarks/peer_accuracy.py \
        --data_dir=~/.cache/fno/burgers_n2048_s8192_nu0.1_t1_seed0 --resolution=256 --seed=0

The model is neuraloperator's ``FNO`` set up as the paper's FNO1d (the options of
../shared/peer/peer_neuralop.py's "paper" preset: 16 kept modes, width 64, 4 layers,
projection 64 -> 128 -> 1, the grid linspace(0, 1, s) as the second input channel). The
recipe is the released ``fourier_1d.py``'s: the first ``num_train`` samples for training and
the last ``num_test`` for test (fno's split), every ``sub``-th point, batch 20 reshuffled every
epoch, Adam(lr 1e-3, weight_decay 1e-4), StepLR halving every 50 epochs, and the per-sample
relative L2 error summed over the batch as the loss. Prints one JSON line: the mean test
relative L2 at every evaluated resolution, the wall time and the versions.
"""

import argparse
import json
import os
import time

import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data_dir", required=True, help="fno dataset directory (u0.npy, u1.npy)")
parser.add_argument("--resolution", type=int, default=256)
parser.add_argument("--eval_resolutions", default="", help="comma-separated, zero-shot")
parser.add_argument("--num_train", type=int, default=1000)
parser.add_argument("--num_test", type=int, default=200)
parser.add_argument("--epochs", type=int, default=500)
parser.add_argument("--batch", type=int, default=20)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--weight_decay", type=float, default=1e-4)
parser.add_argument("--step_size", type=int, default=50)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--threads", type=int, default=os.cpu_count())
args = parser.parse_args()

import neuralop  # noqa: E402
import torch  # noqa: E402
from neuralop.models import FNO  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
np.random.seed(args.seed)

data_dir = os.path.expanduser(args.data_dir)
u0 = np.load(os.path.join(data_dir, "u0.npy"), mmap_mode="r")
u1 = np.load(os.path.join(data_dir, "u1.npy"), mmap_mode="r")
n, full = u0.shape


def split(resolution: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [n, 2, s] (u0 and the grid) and targets [n, s] at ``resolution``."""
    if full % resolution:
        raise SystemExit(f"error: resolution {resolution} does not divide {full}")
    sub = full // resolution
    a = torch.from_numpy(np.ascontiguousarray(u0[rows, ::sub], dtype=np.float32))
    u = torch.from_numpy(np.ascontiguousarray(u1[rows, ::sub], dtype=np.float32))
    grid = torch.linspace(0, 1, resolution).expand(len(a), resolution)
    return torch.stack([a, grid], dim=1), u


def relative_l2(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ||pred - y|| / ||y|| over the grid."""
    return torch.linalg.vector_norm(pred - y, dim=-1) / torch.linalg.vector_norm(y, dim=-1)


x_train, y_train = split(args.resolution, slice(0, args.num_train))
test_rows = slice(n - args.num_test, n)
resolutions = [args.resolution] + [int(r) for r in args.eval_resolutions.split(",") if r]
tests = {r: split(r, test_rows) for r in resolutions}

model = FNO(n_modes=(31,), in_channels=2, out_channels=1, hidden_channels=64, n_layers=4,
            positional_embedding=None, lifting_channel_ratio=0, projection_channel_ratio=2,
            use_channel_mlp=False, fno_skip="linear", norm=None, factorization=None,
            domain_padding=None, preactivation=False, fno_block_precision="full")
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=0.5)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train),
                                     batch_size=args.batch, shuffle=True)

start = time.perf_counter()
curve = []
for epoch in range(args.epochs):
    model.train()
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = relative_l2(model(x).reshape(len(x), -1), y).sum()
        loss.backward()
        optimizer.step()
        total += float(loss)
    scheduler.step()
    if (epoch + 1) % 50 == 0 or epoch + 1 == args.epochs:
        curve.append({"epoch": epoch + 1, "train_rel_l2": total / args.num_train})
train_s = time.perf_counter() - start

model.eval()
metrics = {}
with torch.inference_mode():
    for r, (x, y) in tests.items():
        errors = torch.cat([relative_l2(model(x[i:i + 100]).reshape(-1, r), y[i:i + 100])
                            for i in range(0, len(x), 100)])
        metrics[f"test_rel_l2_s{r}"] = float(errors.mean())
print(json.dumps({
    "implementation": "neuraloperator", "seed": args.seed, "resolution": args.resolution,
    "test_rel_l2": metrics[f"test_rel_l2_s{args.resolution}"], **metrics,
    "train_s": round(train_s, 1), "epochs": args.epochs, "curve": curve,
    "n_params": sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()),
    "torch": torch.__version__, "neuralop": getattr(neuralop, "__version__", "?"),
    "data_dir": data_dir, "num_train": args.num_train, "num_test": args.num_test,
}))
