"""Gaussian random fields on the unit square with Neumann cosine modes: Darcy's mu.

A sample is the Karhunen–Loève expansion of N(0, sigma^2 (-Laplacian + tau^2 I)^-alpha), the
Laplacian with zero Neumann boundary conditions on (0, 1)^2, evaluated on the vertex grid
x_i = i / (S - 1), i = 0 .. S - 1 (both boundaries included):

    mu(x, y) = sum_{k1, k2 = 0}^{S-1} m_k xi_k cos(pi k1 x) cos(pi k2 y),   xi_k iid N(0, 1),
    m_k = sigma (pi^2 (k1^2 + k2^2) + tau^2)^(-alpha/2) n_k1 n_k2,   n_0 = 1, n_k = sqrt(2),

where n_k1 n_k2 cos cos are the L2-orthonormal eigenfunctions (eigenvalues pi^2 |k|^2) of the
Neumann Laplacian. The covariance is therefore Cov(mu(p), mu(q)) = sum_k m_k^2 c_k(p) c_k(q)
with c_k(x, y) = cos(pi k1 x) cos(pi k2 y); see :func:`covariance`.

Documented choices (the paper's text and the released MATLAB script GRF.m differ):

* Normalisation: the paper writes N(0, (-Delta + 9 I)^-2), i.e. sigma = 1; GRF.m multiplies by
  tau^(alpha - 1), i.e. sigma = 3. The default follows the paper (sigma = 1). The Darcy
  coefficient psi(mu) depends only on the sign of mu, so sigma does not change the data.
* The constant mode k = (0, 0) is left out by default (``mean_mode=False``), as in GRF.m (the
  paper's text does not say). It matters for psi(mu): with tau = 3, alpha = 2 the constant
  mode would carry 57% of the variance, shifting the zero level set and so the area fraction
  of the two phases from sample to sample.
  ``mean_mode=True`` keeps it, with its variance sigma^2 tau^(-2 alpha).
* Grid: GRF.m evaluates the series at cell centres (j + 1/2) / S (MATLAB's idct2), and the
  released solver then spline-interpolates the thresholded field onto the vertex grid. Here the
  series is evaluated on the vertex grid directly (a DCT-I), so the stored coefficient is
  exactly the one the solver used and no interpolation overshoots the two phase values.
* Modes k1, k2 = 0 .. S - 1: the full DCT-I basis of the grid, as GRF.m keeps 0 .. s - 1. At
  alpha = 2 the modes beyond carry 4e-6 of the field's variance (integrated over the square)
  for S = 421.
* Sample ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])`` alone (xi as an
  [S, S] array, row k1, column k2), so data never depend on chunking; each sample is
  transformed on its own.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.fft

DEFAULT_ALPHA = 2.0
DEFAULT_TAU = 3.0
DEFAULT_SIGMA = 1.0


def _check_resolution(resolution: int) -> None:
    if not isinstance(resolution, int | np.integer) or resolution < 3:
        raise ValueError(f"resolution must be an integer >= 3, got {resolution!r}")


def mode_std(k1: np.ndarray, k2: np.ndarray, *, sigma: float = DEFAULT_SIGMA,
             tau: float = DEFAULT_TAU, alpha: float = DEFAULT_ALPHA,
             mean_mode: bool = False) -> np.ndarray:
    """m_k: the standard deviation of the coefficient of cos(pi k1 x) cos(pi k2 y)."""
    k1 = np.asarray(k1, dtype=np.float64)
    k2 = np.asarray(k2, dtype=np.float64)
    norm = np.where(k1 > 0, np.sqrt(2.0), 1.0) * np.where(k2 > 0, np.sqrt(2.0), 1.0)
    std = sigma * norm * (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2.0)
    if not mean_mode:
        std = np.where((k1 == 0) & (k2 == 0), 0.0, std)
    return std


def mode_std_table(resolution: int, **law: float | bool) -> np.ndarray:
    """m_k for all modes of an S-point grid: float64 [S, S], entry [k1, k2]."""
    _check_resolution(resolution)
    k = np.arange(resolution)
    return mode_std(k[:, None], k[None, :], **law)


def covariance(p: np.ndarray, q: np.ndarray, resolution: int, **law: float | bool) -> np.ndarray:
    """Exact Cov(mu(p), mu(q)) of the S-point field for points p, q [..., 2] in [0, 1]^2."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    var = mode_std_table(resolution, **law) ** 2
    k = np.pi * np.arange(resolution)
    cp = [np.cos(k * p[..., d, None]) for d in range(2)]  # [..., S] per axis
    cq = [np.cos(k * q[..., d, None]) for d in range(2)]
    return np.einsum("...a,...b,ab,...a,...b->...", cp[0], cp[1], var, cq[0], cq[1])


def sample_coefficients(seed: int, index: int, resolution: int,
                        **law: float | bool) -> np.ndarray:
    """m_k xi_k of sample ``index``: float64 [S, S], the multiplier of cos(pi k1 x) cos(pi k2 y)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got {seed}, {index}")
    std = mode_std_table(resolution, **law)
    return std * np.random.default_rng([seed, index]).standard_normal(std.shape)


def synthesize(coefficients: np.ndarray) -> np.ndarray:
    """sum_k c_k cos(pi k1 x_i) cos(pi k2 y_j) on the vertex grid, for c [..., S, S].

    scipy's unnormalised DCT-I is y_n = x_0 + (-1)^n x_{S-1} + 2 sum_{0<k<S-1} x_k cos(pi k n /
    (S - 1)), so halving the interior coefficients per axis turns it into the plain cosine sum.
    """
    c = np.asarray(coefficients, dtype=np.float64)
    s1, s2 = c.shape[-2:]
    w1 = np.full(s1, 0.5)
    w1[[0, -1]] = 1.0
    w2 = np.full(s2, 0.5)
    w2[[0, -1]] = 1.0
    return scipy.fft.dctn(c * w1[:, None] * w2[None, :], type=1, axes=(-2, -1))


def sample_field(seed: int, indices: Iterable[int], resolution: int,
                 **law: float | bool) -> np.ndarray:
    """Samples ``indices`` of mu on the S x S vertex grid: float64 [len(indices), S, S].

    Entry [b, i, j] is mu(x_i, y_j) with x_i = i / (S - 1), y_j = j / (S - 1). ``law``:
    ``sigma``, ``tau``, ``alpha``, ``mean_mode`` (defaults in the module docstring).
    """
    indices = [int(i) for i in indices]
    out = np.empty((len(indices), resolution, resolution), dtype=np.float64)
    for row, index in enumerate(indices):
        out[row] = synthesize(sample_coefficients(seed, index, resolution, **law))
    return out
