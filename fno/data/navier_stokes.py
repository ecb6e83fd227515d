"""2D Navier–Stokes data (vorticity form on the unit torus): a verified float64 JAX solver and an
atomic dataset writer with a CLI.

PDE (the FNO paper's time-dependent problem):

    w_t + u . grad w = nu Lap w + f,   u = (psi_y, -psi_x),   -Lap psi = w,   (x, y) in [0, 1)^2,
    f(x, y) = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)),

from a random initial vorticity w0 (:mod:`fno.data.grf2d_periodic`: N(0, sigma^2 (-Lap +
tau^2 I)^-alpha) with alpha = 2.5, tau = 7 and, by default, sigma = 7^1.5 as in the released
generator; see there for why not the paper text's 7^0.75). Arrays are indexed [i, j] at
(x_i, y_j) = (i / S, j / S), as the released ns_2d.py ('ij' meshgrid).

Solver. Fourier pseudo-spectral on an n x n grid (``solve_resolution``), float64, Galerkin-
truncated to the 2/3-rule band |k1|, |k2| <= (n - 1) // 3 (initial field included), so the
quadratic term is computed without aliasing. Time stepping: ETDRK4 (Cox–Matthews; the
coefficients of :func:`fno.data.etdrk4.coefficients`) with the viscous term
L = -nu 4 pi^2 |k|^2 integrated exactly and N(w) = f - u . grad w explicit. ETD schemes keep
every equilibrium of L w + N(w) = 0 exactly (so the forced steady state f / (8 pi^2 nu) is held
to rounding). ``scheme="cn_euler"`` is the released generator's first-order scheme (Crank–
Nicolson viscosity, explicit Euler advection and forcing), kept for comparison; it needs ``dt``.

Time step. Per sample and per record interval (``record_every``) the interval is split into

    steps = max(MIN_STEPS, ceil(record_every * max(n, ACCURACY_GRID) * U / cfl))

equal steps, U = max over the grid of |u| + |v| at the start of the interval: the CFL number
U dt n stays at or below ``cfl`` (default 0.5) as the flow speeds up or slows down, and on grids
coarser than ACCURACY_GRID = 128 the step is the 128-point one (there accuracy, not stability,
sets it). Stability: RK4's limit on the advective eigenvalues |k . u| <= 2 pi (n / 3) U is
U dt n <= 2 sqrt(2) 3 / (2 pi) (CFL_LIMIT). Flows accelerate within an interval, so the
default target leaves a wide margin below that bound (the realised numbers per preset are in
benchmarks/results/navier_stokes_convergence.json), targets above MAX_CFL are refused, and a
solve whose CFL number passes 1.35 at the start or end of any interval (an
explicit ``dt`` too large, or a flow accelerating past the margin) raises a ValueError, as does
a non-finite state. Each sample
chooses its own steps (samples that finish an interval first wait, masked), so a sample's bytes
never depend on the others in its batch.

Measured (float64; relative L2 on the stored 64 x 64 snapshots; two fields of seed 0;
benchmarks/results/navier_stokes_convergence.json): ETDRK4 is fourth order (the tests observe
4.03-4.06; cn_euler 1.03-1.05). nu = 1e-3, T = 50: the 64-point default solve against 256
points at half its step differs by <= 4.1e-8 at the worst snapshot (t = 1, the initial
transient) and 2.4e-9 at t = 50; the float32 storage rounding is 2.8e-8. Against the released
scheme at dt = 1e-4 (64 points, t <= 5, against ETDRK4 at cfl 1/16): cn_euler errs by 2-4e-6
and takes ~85x the time of the default ETDRK4 (4e-8).

Resolution. The stored S x S grid is every (n / S)-th point of the solver's grid: pointwise
values of the solver's trigonometric polynomial. Exception: the t = 0 snapshot is w0's exact
point values (all its modes, :func:`fno.data.grf2d_periodic.point_values`), not the solver's
band-limited copy, as the released data store w0 subsampled from the 256-point field.
``solve_resolution`` unset: :func:`default_solve_resolution` (64 points for nu >= 1e-3, else
256, the paper's). Measured on the stored 64-point grid, worst snapshot over the horizon:

    nu = 1e-3, T = 50:  64 vs 256 points 5e-9 (same step)
    nu = 1e-4, T = 30:  64 vs 256: 2.9e-2, 128 vs 256: 1.4e-3
    nu = 1e-5, T = 20:  64 vs 256: 7.4e-2, 128 vs 384: 2.3e-2, 256 vs 384: 2.4e-3

A resolution guard: the square root of the share of the band's enstrophy in its outer third
(max |k_i| > 2 kmax / 3, t >= record_every) tracked the error against the next finer grid
(0.35-1x it in the runs above: 0.07 / 0.031 / 0.0067 at 64 / 128 / 256 points for nu = 1e-5),
so a solve where it passes ``tail_limit`` (default 0.01) is refused as unresolved.

Dataset layout (see :func:`generate_dataset`), written atomically through
:mod:`fno.data.dataset_dir`:

* ``w0.npy`` float32 [N, S, S]: the initial vorticity (the pair's "input");
* ``w.npy`` float32 [N, S, S, T + 1]: the vorticity at t_j = j * record_every, j = 0 .. T,
  time on the LAST axis (the pair's "output"; ``w[..., 0] == w0``). Time last is the
  released files' layout (``u`` [N, 64, 64, T], t = 1 .. T there) and the readers' channel
  axis (:mod:`fno.data.sources` serves it as T + 1 output channels);
* ``t.npy`` float64 [T + 1]: the times; meta.json (every setting, ``"files"``, ``"time_axis"``,
  solver diagnostics, sha256 of all three arrays).

    python -m fno.data.navier_stokes --output_dir=DIR [--num_samples=1200 --resolution=64
        --nu=1e-3 --final_time=50 --record_every=1 --seed=0 --solve_resolution=n
        --cfl=0.5 --dt=... --scheme=etdrk4 --tail_limit=0.01 --sigma=18.52 --tau=7
        --alpha=2.5 --chunk_size=16 --overwrite]

Paper presets (``PRESETS``): nu = 1e-3 to T = 50, 1e-4 to T = 30, 1e-5 to T = 20, at S = 64.
"""

from __future__ import annotations

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
from fno.data import dataset_dir, etdrk4, generator_cli
from fno.data import grf2d_periodic as grf

DEFAULT_NUM_SAMPLES = 1200  # the paper's 1000 training + 200 test trajectories
DEFAULT_RESOLUTION = 64
DEFAULT_SEED = 0
DEFAULT_NU = 1e-3
DEFAULT_FINAL_TIME = 50.0
DEFAULT_RECORD_EVERY = 1.0
DEFAULT_CHUNK_SIZE = 16
# Rows per compiled solver call, fixed so that every sample goes through the same program.
DEFAULT_BATCH_SIZE = 16
PRESETS = {1e-3: 50.0, 1e-4: 30.0, 1e-5: 20.0}  # nu -> final time (the paper's)

FORCING_AMPLITUDE = 0.1
SCHEMES = ("etdrk4", "cn_euler")
DEFAULT_SCHEME = "etdrk4"
DEFAULT_CFL = 0.5
MAX_CFL = 0.8  # the largest target accepted (flows accelerate within an interval)
# Linear stability limit of the CFL number (|u| + |v|) dt n at the start of a step: RK4's
# 2 sqrt(2) on |k . u| <= 2 pi (n / 3) (|u| + |v|); explicit Euler (cn_euler) has none for pure
# advection (only the viscosity damps it), so 1 is a plain guard there.
CFL_LIMIT = {"etdrk4": 2.0 * math.sqrt(2.0) * 3.0 / (2.0 * math.pi), "cn_euler": 1.0}
MIN_STEPS = 4  # per record interval
# The CFL rule counts at least this many points per axis: on coarser solver grids the step is
# set by accuracy, not stability (module docstring).
ACCURACY_GRID = 128
# sqrt of the share of the band's enstrophy in its outer third (max |k_i| > 2 kmax / 3) above
# which a solve is refused as unresolved; measured against finer grids (module docstring).
DEFAULT_TAIL_LIMIT = 0.01
FILES = ("w0.npy", "w.npy")  # input (initial vorticity), output (trajectory, time last)
TIMES_FILE = "t.npy"


# --------------------------------------------------------------------------------------------
# Grid, forcing and settings
# --------------------------------------------------------------------------------------------


def band(grid: int) -> int:
    """The largest |k_i| the solver keeps on ``grid`` points: (grid - 1) // 3 (2/3 rule)."""
    return (grid - 1) // 3


def forcing(x: np.ndarray, y: np.ndarray, amplitude: float = FORCING_AMPLITUDE) -> np.ndarray:
    """f(x, y) = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)) (0.1: ``amplitude``)."""
    s = 2.0 * np.pi * (np.asarray(x) + np.asarray(y))
    return amplitude * (np.sin(s) + np.cos(s))


def grid_points(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """x, y [S, S] of the grid (i / S, j / S), 'ij' indexing."""
    t = np.arange(resolution) / resolution
    return np.meshgrid(t, t, indexing="ij")


def default_solve_resolution(nu: float, resolution: int) -> int:
    """The solver grid for ``nu``: the smallest multiple of ``resolution`` >= 64 points for
    nu >= 1e-3 (converged there), else >= 256 (the paper's); the measured errors are in
    docs/data.md."""
    floor = 64 if nu >= 1e-3 else 256
    return resolution * max(1, math.ceil(floor / resolution))


def check_settings(*, nu: float, final_time: float, record_every: float, resolution: int,
                   solve_resolution: int, scheme: str, cfl: float,
                   dt: float | None) -> int:
    """Validate the solver settings (one-line ValueErrors); returns the number of records."""
    if not nu > 0:
        raise ValueError(f"nu must be positive, got {nu}")
    if not (final_time > 0 and record_every > 0):
        raise ValueError(f"final_time and record_every must be positive, got {final_time}, "
                         f"{record_every}")
    records = round(final_time / record_every)
    if records < 1 or abs(records * record_every - final_time) > 1e-9 * final_time:
        raise ValueError(f"final_time={final_time} is not a multiple of "
                         f"record_every={record_every}")
    if not isinstance(resolution, int | np.integer) or resolution < 4 or resolution % 2:
        raise ValueError(f"resolution must be an even integer >= 4, got {resolution}")
    if (not isinstance(solve_resolution, int | np.integer) or solve_resolution < resolution
            or solve_resolution % resolution):
        raise ValueError(f"solve_resolution={solve_resolution} must be a multiple of "
                         f"resolution={resolution} (the stored grid is subsampled from it)")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if not 0 < cfl <= MAX_CFL:
        raise ValueError(f"cfl={cfl} is outside (0, {MAX_CFL}]: the flow accelerates within a "
                         f"record interval, so a larger target leaves no margin to the "
                         f"stability limit {CFL_LIMIT['etdrk4']:.2f}")
    if dt is not None and not 0 < dt <= record_every:
        raise ValueError(f"dt must lie in (0, record_every={record_every}], got {dt}")
    if scheme == "cn_euler" and dt is None:
        raise ValueError("scheme cn_euler (first order) takes an explicit dt, e.g. 1e-4 as the "
                         "released generator")
    return int(records)


# --------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------


def _symbols(grid: int) -> dict[str, np.ndarray]:
    """Wavenumber arrays in rfft2 layout [grid, grid // 2 + 1]."""
    kx = np.fft.fftfreq(grid, 1.0 / grid)[:, None]
    ky = np.arange(grid // 2 + 1)[None, :]
    k2 = 4.0 * np.pi**2 * (kx**2 + ky**2)
    kmax = band(grid)
    keep = (np.abs(kx) <= kmax) & (ky <= kmax)
    return {"ikx": 2j * np.pi * kx * np.ones_like(ky), "iky": 2j * np.pi * ky * np.ones_like(kx),
            "inv_k2": np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0),
            "mask": (keep & (k2 > 0)).astype(np.float64), "keep": keep, "lam": -k2,
            "tail": keep & (np.maximum(np.abs(kx), ky) > (2 * kmax) // 3),
            "weight": np.where((ky == 0) | (2 * ky == grid), 1.0, 2.0) * np.ones_like(kx)}


def forcing_coefficients(grid: int, amplitude: float = FORCING_AMPLITUDE) -> np.ndarray:
    """f in rfft2 layout (norm="forward") on ``grid`` points: complex128 [grid, grid//2 + 1]."""
    return np.fft.rfft2(forcing(*grid_points(grid), amplitude), norm="forward")


def _nonlinear(w: jax.Array, sym: dict[str, jax.Array], f_hat: jax.Array) -> jax.Array:
    """f - u . grad w in the dealiased band, for w [B, n, n//2 + 1] (rfft2, norm="forward")."""
    n = w.shape[-2]
    psi = w * sym["inv_k2"]
    fields = jnp.fft.irfft2(jnp.stack([sym["iky"] * psi, -sym["ikx"] * psi, sym["ikx"] * w,
                                       sym["iky"] * w], axis=1), s=(n, n), norm="forward")
    u, v, wx, wy = (fields[:, i] for i in range(4))
    return f_hat - sym["mask"] * jnp.fft.rfft2(u * wx + v * wy, norm="forward")


@functools.partial(jax.jit, static_argnames=("scheme",))
def _advance(w: jax.Array, table: jax.Array, steps: jax.Array, f_hat: jax.Array,
             scheme: str) -> jax.Array:
    """Sample b of w takes steps[b] steps with its coefficients table[b] ([B, C, n, m])."""
    sym = {k: jnp.asarray(v) for k, v in _symbols(w.shape[-2]).items()
           if k in ("ikx", "iky", "inv_k2", "mask")}

    def nonlinear(v):
        return _nonlinear(v, sym, f_hat)

    def step(v):
        if scheme == "cn_euler":
            return table[:, 0] * v + table[:, 1] * nonlinear(v)
        return etdrk4.step(v, nonlinear, jnp.moveaxis(table, 1, 0))

    def body(i, v):
        return jnp.where((i < steps)[:, None, None], step(v), v)

    return jax.lax.fori_loop(0, jnp.max(steps), body, w)


@functools.partial(jax.jit, static_argnames=("stride",))
def _observe(w: jax.Array, stride: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The field on every ``stride``-th point [B, n/stride, n/stride], max |u| + |v| [B] and
    the tail: sqrt of the share of the band's enstrophy in its outer third, max |k_i| >
    2 kmax / 3 [B] (a resolution diagnostic)."""
    n = w.shape[-2]
    sym = _symbols(n)
    psi = w * sym["inv_k2"]
    u, v, field = (jnp.fft.irfft2(x, s=(n, n), norm="forward") for x in (
        sym["iky"] * psi, -sym["ikx"] * psi, w))
    energy = sym["weight"] * jnp.abs(w) ** 2
    tail = jnp.sqrt(jnp.sum(jnp.where(sym["tail"], energy, 0.0), axis=(1, 2))
                    / jnp.maximum(jnp.sum(energy, axis=(1, 2)), 1e-300))
    return (field[:, ::stride, ::stride], jnp.max(jnp.abs(u) + jnp.abs(v), axis=(1, 2)), tail)


def _coefficient_table(scheme: str, h: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """[B, C, n, m] step coefficients for step sizes h [B] and eigenvalues lam [n, m]."""
    shape = lam.shape
    lam = lam.ravel()
    if scheme == "etdrk4":
        table = etdrk4.coefficients(h[:, None], lam)  # [B, 6, n m]
    else:
        z = h[:, None] * lam  # w' = (1 + z / 2) / (1 - z / 2) w + h / (1 - z / 2) N(w)
        table = np.stack([(1.0 + 0.5 * z) / (1.0 - 0.5 * z), h[:, None] / (1.0 - 0.5 * z)],
                         axis=1)
    return table.reshape(*table.shape[:2], *shape)


def step_counts(speed: np.ndarray, *, grid: int, record_every: float, cfl: float,
                dt: float | None) -> np.ndarray:
    """Steps per record interval for each sample: ceil(record_every / dt) when dt is given,
    else max(MIN_STEPS, ceil(record_every * max(grid, ACCURACY_GRID) * speed / cfl))."""
    speed = np.asarray(speed, dtype=np.float64)
    if dt is not None:
        return np.full(speed.shape, max(1, math.ceil(record_every / dt - 1e-9)), np.int64)
    points = max(grid, ACCURACY_GRID)
    return np.maximum(MIN_STEPS, np.ceil(record_every * points * speed / cfl)).astype(np.int64)


def solve_spectral(w_hat: np.ndarray, *, nu: float, final_time: float,
                   record_every: float = DEFAULT_RECORD_EVERY, stride: int = 1,
                   scheme: str = DEFAULT_SCHEME, cfl: float = DEFAULT_CFL,
                   dt: float | None = None, tail_limit: float | None = None,
                   forcing_amplitude: float = FORCING_AMPLITUDE,
                   batch_size: int = DEFAULT_BATCH_SIZE,
                   stats: dict | None = None) -> np.ndarray:
    """Vorticity snapshots at t_j = j record_every (j = 0 .. T) on every ``stride``-th point of
    the solver grid: float64 [B, n/stride, n/stride, T + 1], from rfft2 coefficients
    (norm="forward") w_hat [B, n, n//2 + 1] (truncated here to the 2/3 band).

    Rows are solved in zero-padded blocks of ``batch_size``. ValueError when a step would pass
    CFL_LIMIT, the state stops being finite, or (``tail_limit`` given) the enstrophy share of
    the band's outer third exceeds it. ``stats`` (a dict), when given, receives per-sample
    diagnostics: total steps, max CFL number, max |u| + |v|, max tail.
    """
    w_hat = np.asarray(w_hat, dtype=np.complex128)
    n = w_hat.shape[-2]
    if w_hat.ndim != 3 or w_hat.shape[-1] != n // 2 + 1 or n % 2 or n < 8 or n % stride:
        raise ValueError(f"w_hat must be [B, n, n // 2 + 1] with n even >= 8 and divisible by "
                         f"stride={stride}, got {w_hat.shape}")
    records = check_settings(nu=nu, final_time=final_time, record_every=record_every,
                             resolution=n // stride, solve_resolution=n, scheme=scheme, cfl=cfl,
                             dt=dt)
    sym = _symbols(n)
    lam = nu * sym["lam"]
    f_hat = forcing_coefficients(n, forcing_amplitude)
    num = len(w_hat)
    out = np.empty((num, n // stride, n // stride, records + 1))
    diag = {k: np.zeros(num) for k in ("steps", "max_cfl", "max_speed", "max_tail")}
    with jax.enable_x64(True):
        f_dev = jnp.asarray(f_hat)
        for start in range(0, num, batch_size):
            rows = min(batch_size, num - start)
            block = np.zeros((batch_size, n, n // 2 + 1), np.complex128)
            block[:rows] = np.where(sym["keep"], w_hat[start:start + rows], 0.0)
            w = jnp.asarray(block)
            active = np.arange(batch_size) < rows
            last_h = None
            for j in range(records + 1):
                field, speed, tail = (np.asarray(a) for a in _observe(w, stride=stride))
                out[start:start + rows, ..., j] = field[:rows]
                t = j * record_every
                if not (np.isfinite(field[:rows]).all() and np.isfinite(speed[:rows]).all()):
                    raise ValueError(f"the solution blew up (non-finite) by t={t:g}; lower dt "
                                     f"or cfl, or raise solve_resolution")
                stop = slice(start, start + rows)
                if last_h is not None:  # the last interval's steps at the speed it ended with
                    _check_cfl(speed[:rows] * last_h[:rows] * n, scheme, t)
                    diag["max_cfl"][stop] = np.maximum(diag["max_cfl"][stop],
                                                       speed[:rows] * last_h[:rows] * n)
                diag["max_speed"][stop] = np.maximum(diag["max_speed"][stop], speed[:rows])
                if j == 0:  # the tail of w0 itself is the data's, not a resolution issue
                    tail = np.zeros_like(tail)
                diag["max_tail"][stop] = np.maximum(diag["max_tail"][stop], tail[:rows])
                if tail_limit is not None and tail[:rows].max() > tail_limit:
                    raise ValueError(f"unresolved: at t={t:g} the outer third of the 2/3 band "
                                     f"holds {tail[:rows].max():.1e} of the vorticity norm "
                                     f"(limit {tail_limit:g}); raise solve_resolution")
                if j == records:
                    break
                steps = step_counts(speed, grid=n, record_every=record_every, cfl=cfl, dt=dt)
                h = record_every / steps
                _check_cfl(speed[:rows] * h[:rows] * n, scheme, t)
                diag["max_cfl"][stop] = np.maximum(diag["max_cfl"][stop],
                                                   speed[:rows] * h[:rows] * n)
                diag["steps"][stop] += steps[:rows]
                steps = np.where(active, steps, 0)
                table = _coefficient_table(scheme, h, lam)
                w = _advance(w, jnp.asarray(table), jnp.asarray(steps), f_dev, scheme=scheme)
                last_h = h
    if stats is not None:
        stats.update(diag)
    return out


def _check_cfl(numbers: np.ndarray, scheme: str, t: float) -> None:
    worst = float(np.max(numbers, initial=0.0))
    if worst > CFL_LIMIT[scheme]:
        raise ValueError(f"unstable time step: CFL number (|u| + |v|) dt n = {worst:.3g} at "
                         f"t={t:g} exceeds the {scheme} limit {CFL_LIMIT[scheme]:.2f}; lower dt "
                         f"(or leave it unset for the CFL rule), cfl or record_every")


def solve_navier_stokes(w0: np.ndarray, *, nu: float = DEFAULT_NU,
                        final_time: float = DEFAULT_FINAL_TIME,
                        record_every: float = DEFAULT_RECORD_EVERY,
                        solve_resolution: int | None = None, **solver_kw: Any) -> np.ndarray:
    """Snapshots [B, S, S, T + 1] (float64) from initial fields w0 [B, S, S] (or [S, S]) on the
    grid (i / S, j / S), solved on ``solve_resolution`` points (default S; a multiple of S)
    after spectral interpolation and truncation to its 2/3 band. ``solver_kw``: those of
    :func:`solve_spectral`. Snapshot 0 is the band-limited w0 the solver started from."""
    w0 = np.asarray(w0, dtype=np.float64)
    squeeze = w0.ndim == 2
    w0 = w0[None] if squeeze else w0
    s = w0.shape[-1]
    if w0.ndim != 3 or w0.shape[-2] != s:
        raise ValueError(f"w0 must be [S, S] or [B, S, S], got shape {w0.shape}")
    n = s if solve_resolution is None else int(solve_resolution)
    if n % s:
        raise ValueError(f"solve_resolution={n} must be a multiple of the grid's {s} points")
    spec = np.fft.rfft2(w0, norm="forward")
    kmax = min(band(n), s // 2 - 1)
    w_hat = np.zeros((len(w0), n, n // 2 + 1), np.complex128)
    rows = np.r_[0:kmax + 1, -kmax:0]
    w_hat[:, rows % n, :kmax + 1] = spec[:, rows % s, :kmax + 1]
    out = solve_spectral(w_hat, nu=nu, final_time=final_time, record_every=record_every,
                         stride=n // s, **solver_kw)
    return out[0] if squeeze else out


def solve_modes(modes: np.ndarray, *, resolution: int, solve_resolution: int, nu: float,
                final_time: float, record_every: float = DEFAULT_RECORD_EVERY,
                **solver_kw: Any) -> np.ndarray:
    """Snapshots [B, S, S, T + 1] (float64) from random-field modes [B, 2K + 1, 2K + 1]
    (:func:`fno.data.grf2d_periodic.sample_modes`), solved on ``solve_resolution`` points;
    snapshot 0 is the field's exact point values."""
    if solve_resolution % resolution:
        raise ValueError(f"solve_resolution={solve_resolution} must be a multiple of "
                         f"resolution={resolution} (the stored grid is subsampled from it)")
    w_hat = grf.rfft_coefficients(modes, solve_resolution, band(solve_resolution))
    out = solve_spectral(w_hat, nu=nu, final_time=final_time, record_every=record_every,
                         stride=solve_resolution // resolution, **solver_kw)
    out[..., 0] = grf.point_values(modes, resolution)
    return out


# --------------------------------------------------------------------------------------------
# Dataset generation
# --------------------------------------------------------------------------------------------


def generate_dataset(output_dir: str | os.PathLike, *, num_samples: int = DEFAULT_NUM_SAMPLES,
                     resolution: int = DEFAULT_RESOLUTION, seed: int = DEFAULT_SEED,
                     nu: float = DEFAULT_NU, final_time: float = DEFAULT_FINAL_TIME,
                     record_every: float = DEFAULT_RECORD_EVERY,
                     solve_resolution: int | None = None, scheme: str = DEFAULT_SCHEME,
                     cfl: float = DEFAULT_CFL, dt: float | None = None,
                     tail_limit: float = DEFAULT_TAIL_LIMIT, sigma: float = grf.DEFAULT_SIGMA,
                     tau: float = grf.DEFAULT_TAU, alpha: float = grf.DEFAULT_ALPHA,
                     chunk_size: int = DEFAULT_CHUNK_SIZE,
                     overwrite: bool = False) -> pathlib.Path:
    """Generate ``num_samples`` vorticity trajectories on the S x S grid into a directory.

    Atomic and never replacing data silently, as every generator (:mod:`fno.data.dataset_dir`);
    each sample picks its own time steps, so the bytes depend only on the arguments, not on
    ``chunk_size``. Returns the absolute path of the dataset.
    """
    dataset_dir.check_counts(num_samples, chunk_size, seed)
    if not (sigma > 0 and tau > 0 and alpha > 0):
        raise ValueError(f"sigma, tau and alpha must be positive, got {sigma}, {tau}, {alpha}")
    if solve_resolution is None and isinstance(resolution, int | np.integer) and nu > 0:
        solve_resolution = default_solve_resolution(nu, resolution)
    records = check_settings(nu=nu, final_time=final_time, record_every=record_every,
                             resolution=resolution, solve_resolution=solve_resolution,
                             scheme=scheme, cfl=cfl, dt=dt)
    if not tail_limit > 0:
        raise ValueError(f"tail_limit must be positive (1 disables the check), got {tail_limit}")
    out = dataset_dir.resolve_target(output_dir, overwrite)
    law = {"sigma": float(sigma), "tau": float(tau), "alpha": float(alpha)}
    times = np.arange(records + 1) * float(record_every)
    solver = {"scheme": scheme, "cfl": float(cfl), "dt": dt, "solve_resolution": solve_resolution,
              "record_every": float(record_every), "tail_limit": float(tail_limit)}
    logging.info("generating %d Navier-Stokes trajectories at s=%d (nu=%g, T=%g, solved at "
                 "n=%d, %s) -> %s", num_samples, resolution, nu, final_time, solve_resolution,
                 scheme, out)
    shape = (num_samples, resolution, resolution)
    totals = {"steps": 0.0, "max_cfl": 0.0, "max_speed": 0.0, "max_tail": 0.0}
    with dataset_dir.staging(out, overwrite=overwrite) as tmp:
        np.save(tmp / TIMES_FILE, times)

        def solve(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            modes = np.stack([grf.sample_modes(seed, i, **law) for i in range(start, stop)])
            stats: dict = {}
            w = solve_modes(modes, resolution=resolution, nu=nu, final_time=final_time,
                            stats=stats, **solver)
            totals["steps"] += float(stats["steps"].sum())
            for key in ("max_cfl", "max_speed", "max_tail"):
                totals[key] = max(totals[key], float(stats[key].max()))
            return w[..., 0], w

        dataset_dir.write_pairs(tmp, FILES, shape, solve, chunk_size,
                                output_shape=(*shape, records + 1))
        meta = {
            "pde": "navier_stokes",
            "equation": "w_t + u.grad w = nu Lap w + f on [0,1)^2 periodic, u = (psi_y, "
                        "-psi_x), -Lap psi = w, f = 0.1 (sin 2pi(x+y) + cos 2pi(x+y))",
            "nu": float(nu),
            "final_time": float(final_time),
            "record_every": float(record_every),
            "resolution": int(resolution),
            "num_samples": int(num_samples),
            "seed": int(seed),
            **law,
            "solve_resolution": int(solve_resolution),
            "scheme": scheme,
            "cfl": float(cfl),
            "dt": None if dt is None else float(dt),
            "tail_limit": float(tail_limit),
            "initial_condition": "w0 = Re sum_{0 < max|k_i| <= K} sigma (4 pi^2 |k|^2 + "
                                 "tau^2)^(-alpha/2) (xi_k + i eta_k) exp(2 pi i k.x), K = "
                                 f"{grf.DEFAULT_MAX_MODE}, xi, eta iid N(0, 1); sample i from "
                                 "numpy default_rng([seed, i]) (fno.data.grf2d_periodic)",
            "grid": "periodic: array [n, i, j, ...] is the value at (i / S, j / S); coarser "
                    "grids: [:, ::r, ::r]",
            "time_axis": 3,
            "times": times.tolist(),
            "layout": "w0 [N, S, S] = w[..., 0]; w [N, S, S, T+1] at times t (t.npy), "
                      "time last",
            "solver": {"method": "fourier pseudo-spectral, 2/3-rule Galerkin truncation",
                       "scheme": scheme, "precision": "float64",
                       "band": band(solve_resolution),
                       "time_step": "per sample and record interval: max(4, ceil(record_every"
                                    " max(n, 128) (|u|+|v|)max / cfl)) steps" if dt is None else
                                    f"fixed dt {dt}",
                       "total_steps": int(totals["steps"]), "max_cfl": totals["max_cfl"],
                       "max_speed": totals["max_speed"],
                       "max_outer_band_share": totals["max_tail"]},
            "dtype": "float32",
            "fno_version": fno.__version__,
            "files": {"input": FILES[0], "output": FILES[1]},
        }
        dataset_dir.write_meta(tmp, meta, (*FILES, TIMES_FILE))
    logging.info("wrote %s", out)
    return out


# --------------------------------------------------------------------------------------------
# Command line (fno.data.generator_cli adds --output_dir, --num_samples, --resolution, --seed,
# --chunk_size and --overwrite)
# --------------------------------------------------------------------------------------------


def _define_flags() -> None:
    flags.DEFINE_float("nu", DEFAULT_NU, "Viscosity (paper: 1e-3, 1e-4, 1e-5).")
    flags.DEFINE_float("final_time", DEFAULT_FINAL_TIME, "Last stored time T (paper: 50, 30, "
                       "20 for the three viscosities).")
    flags.DEFINE_float("record_every", DEFAULT_RECORD_EVERY, "Time between stored snapshots.")
    flags.DEFINE_integer("solve_resolution", None, "Solver grid points per axis, a multiple of "
                         "--resolution (default: by nu, default_solve_resolution).")
    flags.DEFINE_enum("scheme", DEFAULT_SCHEME, SCHEMES, "Time stepping (cn_euler: the "
                      "released first-order scheme; needs --dt).")
    flags.DEFINE_float("cfl", DEFAULT_CFL, "Target CFL number (|u|+|v|) dt n per interval.")
    flags.DEFINE_float("dt", None, "Fixed time step instead of the CFL rule.")
    flags.DEFINE_float("tail_limit", DEFAULT_TAIL_LIMIT, "Refuse a solve whose outer band "
                       "third holds more of the vorticity norm (1 disables).")
    flags.DEFINE_float("sigma", grf.DEFAULT_SIGMA, "Initial-field amplitude (released code "
                       "7^1.5; the paper's text 7^0.75).")
    flags.DEFINE_float("tau", grf.DEFAULT_TAU, "Initial-field inverse length tau.")
    flags.DEFINE_float("alpha", grf.DEFAULT_ALPHA, "Initial-field smoothness alpha.")


if __name__ == "__main__":
    generator_cli.run(generate_dataset, _define_flags)
