"""Periodic Gaussian random fields: the random initial conditions of the Burgers benchmark.

A sample is the Karhunen–Loève expansion of N(0, sigma^2 (-Laplacian + tau^2 I)^-gamma) on
the periodic unit interval, with the constant mode removed:

    u0(x) = sum_{k=1}^{S/2-1} lambda_k (xi_k cos 2 pi k x + eta_k sin 2 pi k x),
    lambda_k = sqrt(2) sigma / ((2 pi k)^2 + tau^2)^(gamma/2),   xi_k, eta_k iid N(0, 1).

With the benchmark's sigma = 25, tau = 5, gamma = 2 the pointwise variance is
sum_k lambda_k^2 ~= 0.3523 at any grid size S, because the tail beyond k ~ 10 is negligible.

Documented choices:

* Modes k = 1 .. S/2 - 1. The Nyquist mode k = S/2 is left out: its sine part vanishes on the
  grid, so keeping only its cosine would give an anisotropic mode; zeroing it is the clean cut.
* The k = 0 mode is exactly zero (Cole–Hopf, and the paper's data, assume a zero-mean field).
* Sample ``i`` of seed ``s`` comes from ``numpy.random.default_rng([s, i])`` alone, so the data
  never depend on chunking or device count. The generator draws the pairs (xi_k, eta_k) in
  order of k, so the first K modes of a sample are the same at every resolution S >= 2K + 2.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_SIGMA = 25.0
DEFAULT_TAU = 5.0
DEFAULT_GAMMA = 2.0


def num_modes(resolution: int) -> int:
    """Number of random Fourier modes (k = 1 .. S/2 - 1) of a field on ``resolution`` points."""
    if resolution < 4 or resolution % 2:
        raise ValueError(f"resolution must be an even integer >= 4, got {resolution}")
    return resolution // 2 - 1


def mode_std(k: np.ndarray, sigma: float = DEFAULT_SIGMA, tau: float = DEFAULT_TAU,
             gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """lambda_k: the standard deviation of the cos and sin coefficients of mode ``k``."""
    k = np.asarray(k, dtype=np.float64)
    return np.sqrt(2.0) * sigma / ((2.0 * np.pi * k) ** 2 + tau**2) ** (gamma / 2.0)


def pointwise_variance(resolution: int, sigma: float = DEFAULT_SIGMA, tau: float = DEFAULT_TAU,
                       gamma: float = DEFAULT_GAMMA) -> float:
    """The exact variance of u0(x) at any grid point: sum of lambda_k^2 over the kept modes."""
    k = np.arange(1, num_modes(resolution) + 1)
    return float(np.sum(mode_std(k, sigma, tau, gamma) ** 2))


def sample_coefficients(seed: int, index: int, resolution: int, sigma: float = DEFAULT_SIGMA,
                        tau: float = DEFAULT_TAU, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """rfft coefficients (``norm='forward'``) of sample ``index``: complex128 [S/2 + 1].

    Coefficient k is lambda_k (xi_k - i eta_k) / 2, which ``irfft(c, S, norm='forward')`` turns
    into lambda_k (xi_k cos + eta_k sin); entries 0 and S/2 are zero.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got {seed}, {index}")
    m = num_modes(resolution)
    z = np.random.default_rng([seed, index]).standard_normal((m, 2))
    coeffs = np.zeros(resolution // 2 + 1, dtype=np.complex128)
    coeffs[1:m + 1] = 0.5 * mode_std(np.arange(1, m + 1), sigma, tau, gamma) * (
        z[:, 0] - 1j * z[:, 1])
    return coeffs


def sample_grf(seed: int, indices: Iterable[int], resolution: int,
               sigma: float = DEFAULT_SIGMA, tau: float = DEFAULT_TAU,
               gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Samples ``indices`` of the field on the grid x_j = j / S: float64 [len(indices), S].

    Each row is transformed on its own (not as a batch) so that its bytes cannot depend on
    which other rows share the call.
    """
    indices = [int(i) for i in indices]
    out = np.empty((len(indices), resolution), dtype=np.float64)
    for row, index in enumerate(indices):
        coeffs = sample_coefficients(seed, index, resolution, sigma, tau, gamma)
        out[row] = np.fft.irfft(coeffs, resolution, norm="forward")
    return out
