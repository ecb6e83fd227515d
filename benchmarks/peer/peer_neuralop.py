"""neuraloperator (neuralop.models.FNO) 1D Burgers-config CPU benchmark.

Preset 'paper' (default) = the options closest to the FNO paper's FNO1d:
  FNO(n_modes=(NM,), in_channels=2, out_channels=1, hidden_channels=64, n_layers=4,
      positional_embedding=None   # the grid is fed as the 2nd input channel, like the paper
      lifting_channel_ratio=0     # lifting = one 1x1 conv 2->64 (paper: fc0 Linear 2->64)
      projection_channel_ratio=2  # projection 64->128->1 with GELU (paper: fc1, fc2)
      use_channel_mlp=False       # paper has no channel MLP inside the Fourier layers
      fno_skip='linear'           # 1x1 conv skip (paper: Conv1d w); neuralop: no bias here,
                                  # the per-channel bias lives in SpectralConv instead
      norm=None, factorization=None (dense complex weight [in, out, modes]),
      domain_padding=None, preactivation=False, fno_block_precision='full')
  Known remaining differences: neuralop 2.0 keeps n_modes//2+1 rfft modes, so
  n_modes=(16,) keeps 9 modes and n_modes=(31,) keeps the paper's 16 (use --n-modes);
  with use_channel_mlp=False neuralop's FNOBlocks applies GELU twice per non-last
  layer; fft_norm='forward'.
Preset 'default' = library defaults for everything but n_modes, in/out channels,
  hidden_channels, n_layers (grid embedding, 2x lifting MLP, channel MLP, soft gating).

Loss: neuralop.losses.LpLoss(d=1, p=2, reduction='mean') (relative L2 per sample,
averaged over the batch). Adam lr 1e-3. float32. Random data. Prints one JSON line.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common as bc  # noqa: E402

parser = bc.base_parser(__doc__)
parser.add_argument("--n-modes", type=int, default=16,
                    help="value passed as n_modes=(NM,); kept rfft modes = NM//2+1")
parser.add_argument("--preset", choices=["paper", "default"], default="paper")
parser.add_argument("--profile", type=str, default="",
                    help="write a torch.profiler op table for a few steps to this file")
args = parser.parse_args()
args.threads = bc.setup_threads(args.threads)

import warnings  # noqa: E402

warnings.filterwarnings("ignore")
import neuralop  # noqa: E402
import torch  # noqa: E402
from neuralop.losses import LpLoss  # noqa: E402
from neuralop.models import FNO  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

common = dict(n_modes=(args.n_modes,), in_channels=2, out_channels=1,
              hidden_channels=64, n_layers=4)
if args.preset == "paper":
    model = FNO(**common, positional_embedding=None, lifting_channel_ratio=0,
                projection_channel_ratio=2, use_channel_mlp=False, fno_skip="linear",
                norm=None, factorization=None, domain_padding=None,
                preactivation=False, fno_block_precision="full")
else:
    model = FNO(**common)

loss_fn = LpLoss(d=1, p=2, reduction="mean")
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def make_batches(n, b, pool=4):
    grid = torch.linspace(0, 1, n).reshape(1, 1, n).expand(b, 1, n)
    xs, ys = [], []
    for _ in range(pool):
        u0 = torch.randn(b, 1, n)
        xs.append(torch.cat([u0, grid], dim=1).contiguous())  # [B, 2, N]
        ys.append(torch.randn(b, 1, n))
    return xs, ys


xs, ys = make_batches(args.resolution, args.batch)
k = [0]


def train_step():
    i = k[0] % len(xs)
    k[0] += 1
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(xs[i]), ys[i])
    loss.backward()
    opt.step()
    return loss


def infer_step():
    i = k[0] % len(xs)
    k[0] += 1
    with torch.inference_mode():
        return model(xs[i])


step = train_step if args.mode == "train" else infer_step


def run_block(s):
    for _ in range(s):
        step()


t0 = time.perf_counter()
step()
first_s = time.perf_counter() - t0
for _ in range(args.warmup):
    step()
warm_s = time.perf_counter() - t0

ms = bc.time_repeats(run_block, args.steps, args.repeats)

if args.profile:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_block(args.steps)
    with open(args.profile, "w") as f:
        f.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))

kept = model.fno_blocks.convs[0].n_modes[-1]
bc.report(f"neuralop_{args.preset}_nm{args.n_modes}", args, ms, warm_s,
          extra={"first_step_s": round(first_s, 3), "torch": torch.__version__,
                 "neuralop": getattr(neuralop, "__version__", "?"),
                 "n_params": sum(p.numel() * (2 if p.is_complex() else 1)
                                 for p in model.parameters()),
                 "kept_modes": kept})
