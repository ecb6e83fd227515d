"""Viscous Burgers data: a float64 JAX solver and an atomic dataset writer with a CLI.

PDE: u_t + (u^2 / 2)_x = nu u_xx on the periodic interval [0, 1), solved from u0 to t_final.

Solver. Pseudo-spectral ETDRK4 (Cox–Matthews; Kassam–Trefethen form) in float64: the diffusion
is integrated exactly in Fourier space, the nonlinear term is 2/3-dealiased (modes
k <= (grid - 1) // 3 are kept). Because u0 is rough (its spectrum decays only like k^-2) the
early transient limits a uniform-step ETDRK4 to about second order; steps on the graded time
grid t_n = t_final (n / steps)^2 restore clean fourth-order convergence.

Reduced grid. Viscosity damps mode k by exp(-nu (2 pi k)^2 t), so the dynamics that matter at
t_final live in a few hundred modes. The solver therefore truncates u0 to the modes of a small
``grid``, solves there, and returns the result on the requested points by Fourier zero-padding.
The automatic rule (:func:`solver_settings`), validated against Cole–Hopf and against
8192-point solves for nu in [0.0025, 0.2] (the error is below ~2e-9 relative L2 there):

    grid  = smallest power of two >= max(256, 2.56 / nu, 3 k_damp + 1),
            k_damp = sqrt(36 / (nu t_final)) / (2 pi)  (modes above k_damp decay by e^-36),
    steps = ceil(max(200, 8 / nu) * max(1, t_final)).

At nu = 0.1, t_final = 1 this gives grid 256 and 200 steps. Below ``NU_MIN`` the rule is
unvalidated and :func:`solver_settings` refuses unless both ``grid`` and ``steps`` are given.

float64 is switched on only inside ``jax.enable_x64(True)`` contexts, which are thread-local;
the rest of the project keeps running in float32.

Dataset layout (see :func:`generate_dataset`): ``DIR/u0.npy``, ``DIR/u1.npy`` (float32
[N, S]) and ``DIR/meta.json``; a directory is complete exactly when it exists under its final
name, because it is written elsewhere and renamed into place (:mod:`fno.data.dataset_dir`,
shared with the Darcy generator).

    python -m fno.data.burgers --output_dir=DIR [--num_samples=2048 --resolution=8192
        --seed=0 --nu=0.1 --t_final=1 --sigma=25 --tau=5 --gamma=2 --grid=G --steps=T
        --chunk_size=256 --overwrite]

(``--grid`` and ``--steps`` unset: the automatic rule; fno.data.generator_cli.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging

import fno
from fno.data import dataset_dir, etdrk4, generator_cli, grf

DEFAULT_NUM_SAMPLES = 2048
DEFAULT_RESOLUTION = 8192
DEFAULT_SEED = 0
DEFAULT_NU = 0.1
DEFAULT_T_FINAL = 1.0
DEFAULT_CHUNK_SIZE = 256
# Rows per compiled solver call. Fixed so that every sample goes through the same compiled
# program in a full batch, which keeps the output bytes independent of the chunk size.
DEFAULT_BATCH_SIZE = 64

MIN_GRID = 256
NU_MIN = 0.0025
TIME_GRADING = 2.0
FILES = ("u0.npy", "u1.npy")


# --------------------------------------------------------------------------------------------
# Solver settings and ETDRK4 coefficients
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SolverSettings:
    """Reduced grid size, number of time steps and time-grid grading exponent."""

    grid: int
    steps: int
    grading: float = TIME_GRADING


def _next_pow2(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(x)))


def solver_settings(nu: float, t_final: float, *, grid: int | None = None,
                    steps: int | None = None) -> SolverSettings:
    """The solver grid and step count: explicit values, or the rule in the module docstring.

    Raises ValueError for non-positive nu / t_final, a bad explicit setting, or nu < NU_MIN
    when the rule would be used (it was not validated there).
    """
    if not nu > 0 or not t_final > 0:
        raise ValueError(f"nu and t_final must be positive, got nu={nu}, t_final={t_final}")
    if (grid is None or steps is None) and nu < NU_MIN:
        raise ValueError(f"nu={nu} is below {NU_MIN}, where the automatic grid/steps rule is not "
                         "validated; pass both grid and steps explicitly")
    if grid is None:
        k_damp = math.sqrt(36.0 / (nu * t_final)) / (2.0 * math.pi)
        grid = _next_pow2(max(MIN_GRID, 2.56 / nu, 3.0 * k_damp + 1.0))
    if steps is None:
        steps = math.ceil(max(200.0, 8.0 / nu) * max(1.0, t_final))
    if grid < 8 or grid % 2:
        raise ValueError(f"grid must be an even integer >= 8, got {grid}")
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    return SolverSettings(grid=int(grid), steps=int(steps))


def time_grid(t_final: float, steps: int, grading: float = TIME_GRADING) -> np.ndarray:
    """Graded step times t_n = t_final (n / steps)^grading, n = 0 .. steps."""
    return t_final * (np.arange(steps + 1) / steps) ** grading


@functools.lru_cache(maxsize=16)
def _coefficient_table(nu: float, t_final: float, settings: SolverSettings) -> np.ndarray:
    k = np.arange(settings.grid // 2 + 1)
    lam = -nu * (2.0 * np.pi * k) ** 2
    hs = np.diff(time_grid(t_final, settings.steps, settings.grading))
    table = etdrk4.coefficients(hs[:, None], lam)  # [steps, 6, grid // 2 + 1]
    table.setflags(write=False)
    return table


# --------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("grid",))
def _solve_batch(u0: jax.Array, table: jax.Array, grid: int) -> jax.Array:
    """u(t_final) for a batch u0 [B, S] (float64), stepping ETDRK4 on ``grid`` points."""
    resolution = u0.shape[-1]
    kmax = min((grid - 1) // 3, resolution // 2 - 1)  # 2/3 rule, and no Nyquist of the input
    k = np.arange(grid // 2 + 1)
    # Fourier symbol of -(u^2 / 2)_x, zero outside the dealiased band.
    nonlinear_symbol = jnp.asarray(-1j * np.pi * k * (k <= kmax))

    def nonlinear(v):
        u = jnp.fft.irfft(v, grid, norm="forward")
        return nonlinear_symbol * jnp.fft.rfft(u * u, norm="forward")

    def step(v, c):
        return etdrk4.step(v, nonlinear, c), None

    spec = jnp.fft.rfft(u0, norm="forward")
    v = jnp.zeros((u0.shape[0], grid // 2 + 1), spec.dtype).at[:, :kmax + 1].set(
        spec[:, :kmax + 1])
    v, _ = jax.lax.scan(step, v, table)
    out = jnp.zeros_like(spec).at[:, :kmax + 1].set(v[:, :kmax + 1])
    return jnp.fft.irfft(out, resolution, norm="forward")


def solve_burgers(u0: np.ndarray, *, nu: float = DEFAULT_NU, t_final: float = DEFAULT_T_FINAL,
                  grid: int | None = None, steps: int | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """u(x, t_final) on the grid of ``u0`` ([S] or [B, S], x_j = j / S), float64.

    u0 is truncated to the dealiased band of ``grid`` and the result is returned on S points by
    Fourier interpolation. Rows are solved in zero-padded blocks of ``batch_size``.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    squeeze = u0.ndim == 1
    u0 = np.atleast_2d(u0)
    if u0.ndim != 2 or u0.shape[1] < 4 or u0.shape[1] % 2:
        raise ValueError(f"u0 must be [S] or [B, S] with S even >= 4, got shape {u0.shape}")
    settings = solver_settings(nu, t_final, grid=grid, steps=steps)
    table_np = _coefficient_table(float(nu), float(t_final), settings)
    out = np.empty_like(u0)
    with jax.enable_x64(True):
        table = jnp.asarray(table_np)
        for start in range(0, len(u0), batch_size):
            block = u0[start:start + batch_size]
            n = len(block)
            if n < batch_size:
                block = np.concatenate([block, np.zeros((batch_size - n, u0.shape[1]))])
            result = _solve_batch(jnp.asarray(block), table, grid=settings.grid)
            out[start:start + n] = np.asarray(result)[:n]
    return out[0] if squeeze else out


# --------------------------------------------------------------------------------------------
# Dataset generation
# --------------------------------------------------------------------------------------------


def generate_dataset(output_dir: str | os.PathLike, *, num_samples: int = DEFAULT_NUM_SAMPLES,
                     resolution: int = DEFAULT_RESOLUTION, seed: int = DEFAULT_SEED,
                     nu: float = DEFAULT_NU, t_final: float = DEFAULT_T_FINAL,
                     chunk_size: int = DEFAULT_CHUNK_SIZE, overwrite: bool = False,
                     sigma: float = grf.DEFAULT_SIGMA, tau: float = grf.DEFAULT_TAU,
                     gamma: float = grf.DEFAULT_GAMMA, **solver_kw: Any) -> pathlib.Path:
    """Generate ``num_samples`` (u0, u(t_final)) pairs on ``resolution`` points into a directory.

    The arrays and meta.json are written into a hidden temporary directory next to
    ``output_dir`` and renamed into place only when complete, so an interrupted run never
    leaves a complete-looking ``output_dir`` (a killed process may leave a ``.NAME.tmp-*``
    directory behind; an exception removes it). An existing non-empty ``output_dir`` is
    refused unless ``overwrite``. ``solver_kw``: ``grid`` and ``steps`` (default: the rule of
    :func:`solver_settings`). The bytes written depend only on the arguments, not on
    ``chunk_size``. Returns the absolute path of the dataset.
    """
    unknown = set(solver_kw) - {"grid", "steps"}
    if unknown:
        raise TypeError(f"unknown solver settings {sorted(unknown)}; expected grid, steps")
    dataset_dir.check_counts(num_samples, chunk_size, seed)
    grf.num_modes(resolution)  # validates the resolution
    settings = solver_settings(nu, t_final, **solver_kw)
    sampler = {"sigma": float(sigma), "tau": float(tau), "gamma": float(gamma)}
    logging.info("generating %d Burgers samples at s=%d (nu=%g, t=%g, grid=%d, steps=%d) -> %s",
                 num_samples, resolution, nu, t_final, settings.grid, settings.steps, output_dir)

    def solve(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        u0 = grf.sample_grf(seed, range(start, stop), resolution, **sampler)
        return u0, solve_burgers(u0, nu=nu, t_final=t_final, grid=settings.grid,
                                 steps=settings.steps)

    meta = {
        "pde": "burgers",
        "equation": "u_t + (u^2/2)_x = nu u_xx, x in [0, 1) periodic; u1 = u(., t_final)",
        "nu": float(nu),
        "t_final": float(t_final),
        "resolution": int(resolution),
        "num_samples": int(num_samples),
        "seed": int(seed),
        **sampler,
        "initial_condition": "sum_{k=1}^{S/2-1} lambda_k (xi_k cos 2 pi k x + eta_k sin "
                             "2 pi k x), lambda_k = sqrt(2) sigma / ((2 pi k)^2 + tau^2)^"
                             "(gamma/2); sample i from numpy default_rng([seed, i])",
        "solver": {"method": "etdrk4", "dealias": "2/3", "precision": "float64",
                   "grid": settings.grid, "steps": settings.steps,
                   "time_grading": settings.grading},
        "dtype": "float32",
        "fno_version": fno.__version__,
    }
    return dataset_dir.write_dataset(output_dir, files=FILES, shape=(num_samples, resolution),
                                     solve=solve, meta=meta, chunk_size=chunk_size,
                                     overwrite=overwrite)


# --------------------------------------------------------------------------------------------
# Command line (fno.data.generator_cli adds --output_dir, --num_samples, --resolution, --seed,
# --chunk_size and --overwrite)
# --------------------------------------------------------------------------------------------


def _define_flags() -> None:
    flags.DEFINE_float("nu", DEFAULT_NU, "Viscosity.")
    flags.DEFINE_float("t_final", DEFAULT_T_FINAL, "Time of the stored solution u1.")
    flags.DEFINE_float("sigma", grf.DEFAULT_SIGMA, "Initial-condition scale sigma.")
    flags.DEFINE_float("tau", grf.DEFAULT_TAU, "Initial-condition inverse length tau.")
    flags.DEFINE_float("gamma", grf.DEFAULT_GAMMA, "Initial-condition smoothness gamma.")
    flags.DEFINE_integer("grid", None, "Solver grid points (default: the automatic rule).")
    flags.DEFINE_integer("steps", None, "ETDRK4 time steps (default: the automatic rule).")


if __name__ == "__main__":
    generator_cli.run(generate_dataset, _define_flags)
