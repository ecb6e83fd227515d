"""ETDRK4 (Cox & Matthews 2002) for stiff semilinear systems v' = L v + N(v) with diagonal L:
the exponential integrator both spectral generators step with, because it treats the linear
(viscous) part exactly and is fourth order in the nonlinear part.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def phi_functions(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi_1, phi_2, phi_3 (phi_k(z) = sum_n z^n / (n + k)!) of real z, to full float64 accuracy.

    Direct formulas cancel catastrophically near z = 0; there a 30-term Taylor series is exact
    to rounding. For |z| >= 1 the recurrences phi_{k+1} = (phi_k - 1/k!) / z lose at most a few
    digits. (Kassam–Trefethen's contour mean serves the same purpose; the tests use it as an
    independent check of these values.)
    """
    z = np.asarray(z, dtype=np.float64)
    small = np.abs(z) < 1.0
    zs = np.where(small, z, 0.0)
    taylor = [np.zeros_like(z) for _ in range(3)]
    for n in reversed(range(30)):  # Horner
        taylor = [t * zs + 1.0 / math.factorial(n + j) for j, t in enumerate(taylor, start=1)]
    zl = np.where(small, 1.0, z)
    phi1 = np.expm1(zl) / zl
    phi2 = (phi1 - 1.0) / zl
    phi3 = (phi2 - 0.5) / zl
    return tuple(np.where(small, t, d) for t, d in zip(taylor, (phi1, phi2, phi3), strict=True))


def coefficients(h: float | np.ndarray, lam: np.ndarray) -> np.ndarray:
    """ETDRK4 coefficients (E, E2, Q, f1, f2, f3) for step h and eigenvalues lam: [..., 6, n].

    ``h`` may be an array broadcasting against ``lam`` (e.g. [steps, 1] with lam [n]).
    """
    h = np.asarray(h, dtype=np.float64)
    z = h * np.asarray(lam, dtype=np.float64)
    q1 = phi_functions(z / 2)[0]
    p1, p2, p3 = phi_functions(z)
    return np.stack([np.exp(z), np.exp(z / 2), 0.5 * h * q1, h * (p1 - 3 * p2 + 4 * p3),
                     h * (p2 - 2 * p3), h * (4 * p3 - p2)], axis=-2)


def step(v, nonlinear: Callable, table):
    """One step from ``v`` with the coefficients ``table`` = (E, E2, Q, f1, f2, f3) of
    :func:`coefficients` for this step's h (unpacked along the leading axis)."""
    e, e2, q, f1, f2, f3 = table
    nv = nonlinear(v)
    a = e2 * v + q * nv
    na = nonlinear(a)
    b = e2 * v + q * na
    nb = nonlinear(b)
    c = e2 * a + q * (2 * nb - nv)
    nc = nonlinear(c)
    return e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
