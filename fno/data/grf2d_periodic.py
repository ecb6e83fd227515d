"""Gaussian random fields on the periodic unit square: the initial vorticity of 2D Navier–Stokes.

A sample is the Karhunen–Loève expansion of N(0, sigma^2 (-Laplacian + tau^2 I)^-alpha) on the
unit torus in the L2-orthonormal Fourier basis e_k(x) = exp(2 pi i k . x), truncated to the box
|k1|, |k2| <= K (``max_mode``) and with the constant mode removed:

    w0(x) = Re sum_{k != 0, |k_i| <= K} a_k exp(2 pi i k . x),
    a_k = sigma m_k (xi_k + i eta_k),   m_k = (4 pi^2 |k|^2 + tau^2)^(-alpha / 2),

with xi_k, eta_k iid N(0, 1) for every k in the box (k and -k drawn independently; the real part
makes the field real). Then Cov(w0(p), w0(q)) = sum_k sigma^2 m_k^2 cos(2 pi k . (p - q))
(:func:`covariance`): the operator's eigenvalue sigma^2 (4 pi^2 |k|^2 + tau^2)^-alpha for each
e_k. This is the law of the released generator (neuraloperator's ``random_fields.GaussianRF(2,
s, alpha=2.5, tau=7)``: complex normal coefficients, the real part of their inverse FFT).

Documented choices:

* Normalisation. The released code's amplitude is sigma = tau^(alpha - d / 2) = 7^1.5 (with
  d = 2), i.e. the covariance 7^3 (-Delta + 49 I)^-2.5; the paper's text writes
  7^(3/2) (-Delta + 49 I)^-2.5 (amplitude 7^0.75, ``PAPER_SIGMA``). The default follows the
  code (``DEFAULT_SIGMA``), because the released datasets were made with it and the advective
  time scale (so the difficulty of the data) depends on the amplitude.
* Modes. The box |k_i| <= K = 128 (``DEFAULT_MAX_MODE``): the band of the released 256-point
  grid (whose FFT layout keeps k = -128 .. 127), made symmetric. A sample is therefore a fixed
  trigonometric polynomial whatever the grid it is evaluated or solved on: its point values on
  an S-point grid (:func:`point_values`) are exact for every S (the modes are folded modulo S,
  which is what sampling a trigonometric polynomial on the grid does), and a solver on n points
  takes its Fourier coefficients below n / 2 (:func:`rfft_coefficients`). The modes beyond 128
  would carry ~1e-6 of the variance.
* Sample ``i`` of seed ``s`` comes from ``numpy.random.default_rng([s, i])`` alone: xi then eta,
  each a [2K + 1, 2K + 1] array indexed [k1 + K, k2 + K], so data never depend on chunking.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_ALPHA = 2.5
DEFAULT_TAU = 7.0
DEFAULT_SIGMA = 7.0**1.5  # the released code's tau^(alpha - 1): covariance 7^3 (...)^-2.5
PAPER_SIGMA = 7.0**0.75  # the paper's text: covariance 7^(3/2) (-Delta + 49 I)^-2.5
DEFAULT_MAX_MODE = 128


def _check_max_mode(max_mode: int) -> None:
    if not isinstance(max_mode, int | np.integer) or max_mode < 1:
        raise ValueError(f"max_mode must be a positive integer, got {max_mode!r}")


def mode_std(k1: np.ndarray, k2: np.ndarray, *, sigma: float = DEFAULT_SIGMA,
             tau: float = DEFAULT_TAU, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """sigma m_k: the standard deviation of the real and of the imaginary part of a_k (zero at
    k = 0)."""
    k1 = np.asarray(k1, dtype=np.float64)
    k2 = np.asarray(k2, dtype=np.float64)
    std = sigma * (4.0 * np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2.0)
    return np.where((k1 == 0) & (k2 == 0), 0.0, std)


def mode_std_table(max_mode: int = DEFAULT_MAX_MODE, **law: float) -> np.ndarray:
    """sigma m_k over the box: float64 [2K + 1, 2K + 1], entry [k1 + K, k2 + K]."""
    _check_max_mode(max_mode)
    k = np.arange(-max_mode, max_mode + 1)
    return mode_std(k[:, None], k[None, :], **law)


def pointwise_variance(max_mode: int = DEFAULT_MAX_MODE, **law: float) -> float:
    """Var w0(x) at any point: sum_k sigma^2 m_k^2 over the box."""
    return float(np.sum(mode_std_table(max_mode, **law) ** 2))


def covariance(p: np.ndarray, q: np.ndarray, max_mode: int = DEFAULT_MAX_MODE,
               **law: float) -> np.ndarray:
    """Exact Cov(w0(p), w0(q)) for points p, q [..., 2] on the torus (broadcasting)."""
    d = np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)
    var = mode_std_table(max_mode, **law) ** 2
    k = 2.0 * np.pi * np.arange(-max_mode, max_mode + 1)
    c1, s1 = np.cos(k * d[..., 0, None]), np.sin(k * d[..., 0, None])
    c2, s2 = np.cos(k * d[..., 1, None]), np.sin(k * d[..., 1, None])
    # cos(a + b) = cos a cos b - sin a sin b, summed against var[k1, k2].
    return (np.einsum("...a,ab,...b->...", c1, var, c2)
            - np.einsum("...a,ab,...b->...", s1, var, s2))


def sample_modes(seed: int, index: int, max_mode: int = DEFAULT_MAX_MODE,
                 **law: float) -> np.ndarray:
    """a_k of sample ``index``: complex128 [2K + 1, 2K + 1], entry [k1 + K, k2 + K]."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got {seed}, {index}")
    std = mode_std_table(max_mode, **law)
    z = np.random.default_rng([seed, index]).standard_normal((2, *std.shape))
    return std * (z[0] + 1j * z[1])


def _fold(modes: np.ndarray, size: int) -> np.ndarray:
    """The FFT-layout array [..., size, size] of modes [..., 2K + 1, 2K + 1] folded modulo
    ``size`` (k and k + size coincide on a size-point grid): P^T a P with P the 0/1 matrix
    [2K + 1, size] of k -> k mod size."""
    max_mode = (modes.shape[-1] - 1) // 2
    idx = np.arange(-max_mode, max_mode + 1) % size
    fold = (idx[:, None] == np.arange(size)[None, :]).astype(np.complex128)
    return fold.T @ modes @ fold


def point_values(modes: np.ndarray, resolution: int) -> np.ndarray:
    """w0 at the grid points (i / S, j / S): float64 [..., S, S], entry [i, j] at (x_i, y_j)."""
    if not isinstance(resolution, int | np.integer) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    return np.fft.ifft2(_fold(modes, int(resolution)), norm="forward").real


def rfft_coefficients(modes: np.ndarray, grid: int, kmax: int) -> np.ndarray:
    """The Fourier coefficients of w0 with |k1|, |k2| <= kmax (< grid / 2) in the layout of
    ``numpy.fft.rfft2(w, norm="forward")`` on a grid-point grid: complex128 [..., grid,
    grid // 2 + 1]; the other entries are zero. Coefficient k of Re sum a_k e_k is
    (a_k + conj(a_-k)) / 2."""
    max_mode = (modes.shape[-1] - 1) // 2
    if not 0 <= kmax < grid / 2:
        raise ValueError(f"need 0 <= kmax < grid / 2, got kmax={kmax}, grid={grid}")
    kk = min(kmax, max_mode)
    box = modes[..., max_mode - kk:max_mode + kk + 1, max_mode - kk:max_mode + kk + 1]
    herm = 0.5 * (box + np.conj(box[..., ::-1, ::-1]))  # index j <-> -k at 2 kk - j
    out = np.zeros((*modes.shape[:-2], grid, grid // 2 + 1), dtype=np.complex128)
    k1 = np.arange(-kk, kk + 1) % grid
    out[..., k1, :kk + 1] = herm[..., :, kk:]
    return out


def sample_field(seed: int, indices: Iterable[int], resolution: int,
                 max_mode: int = DEFAULT_MAX_MODE, **law: float) -> np.ndarray:
    """Samples ``indices`` of w0 on the S x S grid (i / S, j / S): float64 [len(indices), S, S].

    ``law``: ``sigma``, ``tau``, ``alpha`` (defaults in the module docstring). Each sample is
    drawn and transformed on its own.
    """
    indices = [int(i) for i in indices]
    out = np.empty((len(indices), resolution, resolution), dtype=np.float64)
    for row, index in enumerate(indices):
        out[row] = point_values(sample_modes(seed, index, max_mode, **law), resolution)
    return out
