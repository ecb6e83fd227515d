"""neuraloperator's FNO set up as the paper's models, and the released relative L2 loss.

Shared by benchmarks/peer_accuracy.py and benchmarks/peer_step2d.py; imports only torch and
neuralop (the peer environment has no fno).
"""

import platform
import resource
import statistics
import time
from collections.abc import Callable

import neuralop
import torch
from neuralop.models import FNO

# The paper's FNO layer without neuraloperator's extras (benchmarks/peer/peer_neuralop.py's
# "paper" preset): a 1x1 lifting, a linear skip, no channel MLP, norm or padding.
_PAPER = dict(n_layers=4, out_channels=1, positional_embedding=None, lifting_channel_ratio=0,
              use_channel_mlp=False, fno_skip="linear", norm=None, factorization=None,
              domain_padding=None, preactivation=False, fno_block_precision="full")


def paper_fno(grid_rank: int) -> FNO:
    """1D: 16 kept modes, width 64, projection 128, inputs (u0, x). 2D: 12 x 12 modes in both
    corners (``n_modes=(24, 23)``; neuraloperator keeps n // 2 + 1 along the last axis),
    width 32, projection 128, inputs (a, x, y)."""
    if grid_rank == 1:
        return FNO(n_modes=(31,), in_channels=2, hidden_channels=64,
                   projection_channel_ratio=2, **_PAPER)
    return FNO(n_modes=(24, 23), in_channels=3, hidden_channels=32,
               projection_channel_ratio=4, **_PAPER)


def navier_stokes_fno(model: str, input_steps: int = 10, output_steps: int = 40) -> FNO:
    """The released Navier-Stokes models, width 20, projection 128, coordinates as extra input
    channels. ``2d`` (fourier_2d_time.py): 12 x 12 modes in both corners, the last
    ``input_steps`` snapshots and (x, y) in, one snapshot out. ``3d`` (fourier_3d.py): 8 modes
    per axis in the four corners (``n_modes=(16, 16, 15)``), the snapshots and (x, y, t) in,
    the time axis padded by 6 cells as released (neuraloperator 2.0 pads a fraction of an
    axis on both sides: 3 + 3 cells, the same padded size)."""
    if model == "2d":
        return FNO(n_modes=(24, 23), in_channels=input_steps + 2, hidden_channels=20,
                   projection_channel_ratio=128 / 20, **_PAPER)
    settings = {**_PAPER, "domain_padding": [0.0, 0.0, 3 / output_steps]}
    return FNO(n_modes=(16, 16, 15), in_channels=input_steps + 3, hidden_channels=20,
               projection_channel_ratio=128 / 20, **settings)


def relative_l2(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ||pred - y|| / ||y|| over the grid."""
    dims = tuple(range(1, y.ndim))
    return (torch.linalg.vector_norm(pred - y, dim=dims)
            / torch.linalg.vector_norm(y, dim=dims))


def num_params(model: torch.nn.Module) -> int:
    """Real parameters (a complex weight counts twice, as fno's real/imaginary pairs)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def time_steps(step: Callable[[int], None], warmup: int, steps: int,
               repeats: int) -> dict:
    """Run ``step(i)`` once plus ``warmup`` times untimed, then ``repeats`` x ``steps`` timed:
    benchmarks.step_timing's keys (median ms/step over repeats, min, max, all)."""
    t0 = time.perf_counter()
    for i in range(1 + warmup):
        step(i)
    warm_s = time.perf_counter() - t0
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        ms.append((time.perf_counter() - t0) * 1e3 / steps)
    return {"ms_per_step": round(statistics.median(ms), 4), "ms_min": round(min(ms), 4),
            "ms_max": round(max(ms), 4), "ms_all": [round(v, 4) for v in ms],
            "warmup_s": round(warm_s, 3)}


def environment(model: torch.nn.Module) -> dict:
    """What a peer timing record says about the model and the process that ran it."""
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "n_params": num_params(model), "torch": torch.__version__,
            "neuralop": getattr(neuralop, "__version__", "?"),
            "python": platform.python_version()}
