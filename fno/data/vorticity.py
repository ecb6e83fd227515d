"""The 2D Navier–Stokes solver behind :mod:`fno.data.navier_stokes`: vorticity form on the
unit torus, float64 JAX, batched over samples.

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

Resolution. The stored S x S grid is every (n / S)-th point of the solver's grid: pointwise
values of the solver's trigonometric polynomial. Exception: the t = 0 snapshot is w0's exact
point values (all its modes, :func:`fno.data.grf2d_periodic.point_values`), not the solver's
band-limited copy, as the released data store w0 subsampled from the 256-point field.
``solve_resolution`` unset: :func:`default_solve_resolution` (64 points for nu >= 1e-3, else
256, the paper's). A resolution guard: the square root of the share of the band's enstrophy
in its outer third (max |k_i| > 2 kmax / 3, t >= record_every) tracks the error against the
next finer grid, so a solve where it passes ``tail_limit`` is refused as unresolved. The
measured convergence per preset is in docs/data.md
(benchmarks/results/navier_stokes_convergence.json).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fno.data import etdrk4
from fno.data import grf2d_periodic as grf

DEFAULT_NU = 1e-3
DEFAULT_FINAL_TIME = 50.0
DEFAULT_RECORD_EVERY = 1.0
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
