"""2D Darcy flow data: a verified finite-difference solver and an atomic dataset writer with a CLI.

PDE: -div(a(x) grad u(x)) = f(x) on (0, 1)^2, u = 0 on the boundary, f = 1; the coefficient is
a = psi(mu) with mu the Neumann cosine field of :mod:`fno.data.grf2d` (N(0, (-Delta + 9 I)^-2))
and psi(z) = 12 for z >= 0, 3 for z < 0 (piecewise constant).

Grid. S x S vertices x_i = i / (S - 1) including both boundaries (the paper's 421 x 421 grid
with spacing 1/420); array entry [..., i, j] is the value at (x_i, y_j). The paper's lower
resolutions 211, 141, 85 are the 421 data subsampled every 2nd, 3rd, 5th point in both
directions (:func:`subsample`), boundaries included; they are not solved on coarser grids.

Discretisation: the 5-point conservative second-order scheme on the vertex grid,

    (A u)_ij = h^-2 [a_{i+1/2,j} (u_ij - u_{i+1,j}) + a_{i-1/2,j} (u_ij - u_{i-1,j})
                     + a_{i,j+1/2} (u_ij - u_{i,j+1}) + a_{i,j-1/2} (u_ij - u_{i,j-1})] = f_ij,

for the (S - 2)^2 interior unknowns, u = 0 at boundary nodes, and the face value of a the
arithmetic mean of its two nodes (``average="arithmetic"``, as in the released solve_gwf.m) or
their harmonic mean (``average="harmonic"``, the flux-continuous choice for a jump midway).
Both are second order for smooth a; for the piecewise-constant a the interfaces cut the grid
anywhere and neither is. The default follows the released script, the closest record of how
the paper's data were made.

Solvers. :func:`solve_direct` assembles A as D^T diag(a_face) D from Kronecker products of 1D
difference matrices (independently of the stencil code) and factors it with SuperLU; it is the
reference. :func:`solve_pcg` / :class:`PCGSolver` (the generator's solver) is conjugate
gradients preconditioned with the constant-coefficient Dirichlet Laplacian L, inverted exactly
by a 2D DST-I. Every face value lies in [min a, max a], so min(a) L <= A <= max(a) L and the
preconditioned condition number is at most kappa = max(a) / min(a) = 4 for psi's 12 / 3: CG's
error bound shrinks 3x per iteration whatever S is. The stopping rule is on the
preconditioned residual, sqrt(r^T L^-1 r / f^T L^-1 f) <= rtol, which bounds the relative
error in A's energy norm by sqrt(kappa) rtol; against SuperLU the difference is far below
float32 storage rounding (tests/test_darcy.py), at a fraction of its time per sample.

Where the released MATLAB scripts (data_generation/darcy: demo.m, GRF.m, solve_gwf.m) and the
paper's text differ, this module follows:

* psi = 12 / 3 (paper; demo.m thresholds to 12 / 4). ``a_neg=4`` reproduces demo.m.
* The field's normalisation and constant mode: see :mod:`fno.data.grf2d` (paper's sigma = 1
  by default, which does not affect psi(mu); the constant mode dropped as in GRF.m).
* No spline interpolation: solve_gwf.m treats its input as cell-centred, spline-interpolates
  the thresholded a onto the vertices (overshooting at the jumps, so the solved coefficient is
  not two-valued), solves there and interpolates u back to cell centres (so the stored u is not
  zero on the boundary). Here a is sampled on the vertices, the stored a is the solved one and
  the stored u is the grid solution itself, exactly zero on the boundary.
* Face averages: arithmetic, as solve_gwf.m (switch: ``average``).

Dataset layout (see :func:`generate_dataset`): ``DIR/a.npy`` (coefficient) and ``DIR/u.npy``
(solution), float32 [N, S, S], and ``DIR/meta.json`` (``files`` names the input and output
arrays), written atomically through :mod:`fno.data.dataset_dir`. Default N = 1124: the paper's
1024 training + 100 test samples.

    python -m fno.data.darcy --output_dir=DIR [--num_samples=1124 --resolution=421 --seed=0
        --average=arithmetic --a_neg=3 --chunk_size=32 --overwrite]
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import scipy.fft
import scipy.sparse
import scipy.sparse.linalg
from absl import flags, logging

import fno
from fno.data import dataset_dir, generator_cli, grf2d
from fno.data.checks import vertex_step

DEFAULT_NUM_SAMPLES = 1124
DEFAULT_RESOLUTION = 421
DEFAULT_SEED = 0
DEFAULT_CHUNK_SIZE = 32
A_POS = 12.0
A_NEG = 3.0
FORCING = 1.0
AVERAGES = ("arithmetic", "harmonic")
DEFAULT_AVERAGE = "arithmetic"
DEFAULT_RTOL = 1e-10
DEFAULT_MAXITER = 2000
FILES = ("a.npy", "u.npy")  # input (coefficient), output (solution)


# --------------------------------------------------------------------------------------------
# Coefficient, grid and subsampling
# --------------------------------------------------------------------------------------------


def coefficient(mu: np.ndarray, a_pos: float = A_POS, a_neg: float = A_NEG) -> np.ndarray:
    """psi(mu): ``a_pos`` where mu >= 0, ``a_neg`` where mu < 0 (float64)."""
    return np.where(np.asarray(mu) >= 0, float(a_pos), float(a_neg))


# r such that every r-th vertex of an S_file grid (both ends kept) gives ``resolution``.
subsample_step = vertex_step


def subsample(x: np.ndarray, resolution: int) -> np.ndarray:
    """The fields x [..., S_file, S_file] on the ``resolution``-point subgrid: x[..., ::r, ::r]."""
    r = subsample_step(x.shape[-1], resolution)
    return x[..., ::r, ::r]


# --------------------------------------------------------------------------------------------
# The discretisation
# --------------------------------------------------------------------------------------------


def _check_fields(a: np.ndarray, f: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """a [..., S, S] finite and positive, f broadcast to a's shape, both float64."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 3:
        raise ValueError(f"a must be [..., S, S] with S >= 3, got shape {a.shape}")
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError("a must be finite and positive everywhere")
    try:
        f = np.broadcast_to(np.asarray(f, dtype=np.float64), a.shape)
    except ValueError as e:
        raise ValueError(f"f of shape {np.shape(f)} does not broadcast to a's {a.shape}") from e
    if not np.isfinite(f).all():
        raise ValueError("f must be finite")
    return a, f


def face_coefficients(a: np.ndarray, average: str = DEFAULT_AVERAGE, *,
                      out: tuple[np.ndarray, np.ndarray] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """a at the x-faces [..., S-1, S] (between i, i+1) and y-faces [..., S, S-1] (j, j+1).

    Written into ``out`` when given (no temporaries): the PCG solver reuses its buffers.
    """
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    lead, s = a.shape[:-2], a.shape[-1]
    if out is None:
        out = (np.empty((*lead, s - 1, s)), np.empty((*lead, s, s - 1)))
    pairs = ((a[..., 1:, :], a[..., :-1, :]), (a[..., :, 1:], a[..., :, :-1]))
    for (p, q), face in zip(pairs, out, strict=True):
        np.add(p, q, out=face)
        if average == "arithmetic":
            face *= 0.5
        else:  # 2 p q / (p + q)
            np.divide(p, face, out=face)
            face *= q
            face *= 2.0
    return out


def darcy_matrix(a: np.ndarray, average: str = DEFAULT_AVERAGE) -> scipy.sparse.csr_matrix:
    """A for one coefficient a [S, S]: sparse [(S-2)^2, (S-2)^2], unknowns ordered i * (S-2) + j.

    Built as (Dx^T diag(a_x) Dx + Dy^T diag(a_y) Dy) / h^2 with Dx = D1 (x) I, Dy = I (x) D1 and
    D1 [S-1, S-2] the face differences of interior values with zero boundary values.
    """
    a, _ = _check_fields(a, 0.0)
    if a.ndim != 2:
        raise ValueError(f"darcy_matrix takes one coefficient [S, S], got shape {a.shape}")
    s = a.shape[-1]
    n = s - 2
    ax, ay = face_coefficients(a, average)
    d1 = scipy.sparse.diags([np.ones(n), -np.ones(n)], [0, -1], shape=(s - 1, n), format="csr")
    eye = scipy.sparse.identity(n, format="csr")
    dx = scipy.sparse.kron(d1, eye, format="csr")  # [(S-1) n, n^2], row f * n + j
    dy = scipy.sparse.kron(eye, d1, format="csr")  # [n (S-1), n^2], row i * (S-1) + f
    wx = scipy.sparse.diags(ax[:, 1:-1].ravel())
    wy = scipy.sparse.diags(ay[1:-1, :].ravel())
    return ((dx.T @ wx @ dx + dy.T @ wy @ dy) * (s - 1) ** 2).tocsr()


def _laplacian_eigenvalues(s: int) -> np.ndarray:
    """Eigenvalues [S-2, S-2] of the 5-point Dirichlet Laplacian (a = 1) in the DST-I basis."""
    k = np.arange(1, s - 1)
    lam = 4.0 * (s - 1) ** 2 * np.sin(np.pi * k / (2.0 * (s - 1))) ** 2
    return lam[:, None] + lam[None, :]


class PCGSolver:
    """Laplacian-preconditioned CG for one grid size, reusing its buffers from solve to solve.

    Every array the iteration touches is allocated once here: fresh arrays of this size are
    page-faulted in on each allocation, a large share of a solve's time without the reuse.
    """

    def __init__(self, resolution: int, *, average: str = DEFAULT_AVERAGE,
                 rtol: float = DEFAULT_RTOL, maxiter: int = DEFAULT_MAXITER):
        if not isinstance(resolution, int | np.integer) or resolution < 3:
            raise ValueError(f"resolution must be an integer >= 3, got {resolution!r}")
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
        if not 0 < rtol < 1 or maxiter < 1:
            raise ValueError(f"need 0 < rtol < 1 and maxiter >= 1, got {rtol}, {maxiter}")
        s = self.resolution = int(resolution)
        self.average, self.rtol, self.maxiter = average, float(rtol), int(maxiter)
        n = s - 2
        self._inv_lam = 1.0 / _laplacian_eigenvalues(s)
        self._faces = (np.empty((s - 1, s)), np.empty((s, s - 1)))
        self._diag = np.empty((n, n))
        self._tx, self._ty = np.empty((n - 1, n)), np.empty((n, n - 1))
        self._x, self._r, self._z, self._p, self._q, self._work, self._dot_work = (
            np.empty((n, n)) for _ in range(7))

    def set_coefficient(self, a: np.ndarray) -> None:
        """Face values and the diagonal of A (scaled by h^-2) for a [S, S]."""
        ax, ay = face_coefficients(a, self.average, out=self._faces)
        ax *= (self.resolution - 1) ** 2
        ay *= (self.resolution - 1) ** 2
        np.add(ax[:-1, 1:-1], ax[1:, 1:-1], out=self._diag)  # west + east faces
        self._diag += ay[1:-1, :-1]
        self._diag += ay[1:-1, 1:]

    def apply(self, u: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = A u for interior values u [S-2, S-2] (zero boundary values implied)."""
        ax, ay = self._faces
        kx, ky = ax[1:-1, 1:-1], ay[1:-1, 1:-1]  # couplings (i, j)-(i+1, j) and (i, j)-(i, j+1)
        tx, ty = self._tx, self._ty
        np.multiply(self._diag, u, out=out)
        out[1:] -= np.multiply(kx, u[:-1], out=tx)
        out[:-1] -= np.multiply(kx, u[1:], out=tx)
        out[:, 1:] -= np.multiply(ky, u[:, :-1], out=ty)
        out[:, :-1] -= np.multiply(ky, u[:, 1:], out=ty)
        return out

    def _dot(self, u: np.ndarray, v: np.ndarray) -> float:
        """sum(u * v) by numpy's pairwise sum: unlike BLAS ddot (np.vdot), independent of the
        thread count, and not stalled by BLAS threads on a busy machine."""
        return float(np.multiply(u, v, out=self._dot_work).sum())

    def _precondition(self, r: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = L^-1 r: the orthonormal DST-I diagonalises L and is its own inverse."""
        np.copyto(out, r)
        out = scipy.fft.dstn(out, type=1, norm="ortho", overwrite_x=True)
        out *= self._inv_lam
        return scipy.fft.dstn(out, type=1, norm="ortho", overwrite_x=True)

    def solve(self, a: np.ndarray, f: np.ndarray | float = FORCING,
              out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """u [S, S] (boundary zero) for one coefficient a [S, S], and the iteration count.

        Stops when sqrt(r^T L^-1 r / f^T L^-1 f) <= rtol; raises RuntimeError after maxiter.
        """
        a, f = _check_fields(a, f)
        s = self.resolution
        if a.shape != (s, s):
            raise ValueError(f"this solver takes a of shape {(s, s)}, got {a.shape}")
        self.set_coefficient(a)
        x, r, z, p, q, work = self._x, self._r, self._z, self._p, self._q, self._work
        x.fill(0.0)
        np.copyto(r, f[1:-1, 1:-1])
        z = self._precondition(r, out=z)
        np.copyto(p, z)
        rz = rz0 = self._dot(r, z)
        iterations = 0
        while rz > self.rtol**2 * rz0:
            if iterations == self.maxiter:
                raise RuntimeError(f"PCG did not reach rtol={self.rtol:g} in {self.maxiter} "
                                   f"iterations (reached {np.sqrt(rz / rz0):.2e})")
            self.apply(p, out=q)
            step = rz / self._dot(p, q)
            x += np.multiply(p, step, out=work)
            r -= np.multiply(q, step, out=work)
            z = self._precondition(r, out=z)
            rz, rz_old = self._dot(r, z), rz
            p *= rz / rz_old
            p += z
            iterations += 1
        u = np.zeros((s, s)) if out is None else out
        u[[0, -1], :] = 0.0
        u[:, [0, -1]] = 0.0
        u[1:-1, 1:-1] = x
        return u, iterations


def apply_operator(u: np.ndarray, a: np.ndarray, average: str = DEFAULT_AVERAGE) -> np.ndarray:
    """A u for interior values u [S-2, S-2] and one coefficient a [S, S] (the PCG's stencil)."""
    a, _ = _check_fields(a, 0.0)
    u = np.asarray(u, dtype=np.float64)
    if a.ndim != 2 or u.shape != (a.shape[0] - 2, a.shape[1] - 2):
        raise ValueError(f"need a [S, S] and u [S-2, S-2], got {a.shape} and {u.shape}")
    solver = PCGSolver(a.shape[-1], average=average)
    solver.set_coefficient(a)
    return solver.apply(u, np.empty_like(u))


def solve_direct(a: np.ndarray, f: np.ndarray | float = FORCING, *,
                 average: str = DEFAULT_AVERAGE) -> np.ndarray:
    """Reference solution u [S, S] (boundary zero) by a sparse LU factorisation (SuperLU)."""
    a, f = _check_fields(a, f)
    if a.ndim != 2:
        raise ValueError(f"solve_direct takes one coefficient [S, S], got shape {a.shape}")
    s = a.shape[-1]
    lu = scipy.sparse.linalg.splu(darcy_matrix(a, average).tocsc(), permc_spec="MMD_AT_PLUS_A",
                                  options={"SymmetricMode": True})
    u = np.zeros((s, s))
    u[1:-1, 1:-1] = lu.solve(np.ascontiguousarray(f[1:-1, 1:-1]).ravel()).reshape(s - 2, s - 2)
    return u


def solve_pcg(a: np.ndarray, f: np.ndarray | float = FORCING, *,
              average: str = DEFAULT_AVERAGE, rtol: float = DEFAULT_RTOL,
              maxiter: int = DEFAULT_MAXITER) -> tuple[np.ndarray, int]:
    """u [S, S] and the iteration count for one a [S, S]: a one-off :class:`PCGSolver`."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"solve_pcg takes one coefficient [S, S], got shape {a.shape}")
    return PCGSolver(a.shape[-1], average=average, rtol=rtol, maxiter=maxiter).solve(a, f)


def solve_darcy(a: np.ndarray, f: np.ndarray | float = FORCING, *, method: str = "pcg",
                average: str = DEFAULT_AVERAGE, rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """u for coefficients a [S, S] or [B, S, S] (float64, boundary zero), sample by sample.

    ``method``: "pcg" (fast, the generator's) or "direct" (SuperLU reference). Each sample is
    solved on its own, so its bytes do not depend on the other samples of the call.
    """
    if method not in ("pcg", "direct"):
        raise ValueError(f"method must be 'pcg' or 'direct', got {method!r}")
    a, f = _check_fields(a, f)
    squeeze = a.ndim == 2
    a, f = a.reshape(-1, *a.shape[-2:]), f.reshape(-1, *a.shape[-2:])
    out = np.empty_like(a)
    solver = PCGSolver(a.shape[-1], average=average, rtol=rtol) if method == "pcg" else None
    for row in range(len(a)):
        if solver is not None:
            solver.solve(a[row], f[row], out=out[row])
        else:
            out[row] = solve_direct(a[row], f[row], average=average)
    return out[0] if squeeze else out


# --------------------------------------------------------------------------------------------
# Dataset generation
# --------------------------------------------------------------------------------------------


def generate_dataset(output_dir: str | os.PathLike, *, num_samples: int = DEFAULT_NUM_SAMPLES,
                     resolution: int = DEFAULT_RESOLUTION, seed: int = DEFAULT_SEED,
                     chunk_size: int = DEFAULT_CHUNK_SIZE, overwrite: bool = False,
                     a_pos: float = A_POS, a_neg: float = A_NEG,
                     average: str = DEFAULT_AVERAGE, rtol: float = DEFAULT_RTOL,
                     sigma: float = grf2d.DEFAULT_SIGMA, tau: float = grf2d.DEFAULT_TAU,
                     alpha: float = grf2d.DEFAULT_ALPHA,
                     mean_mode: bool = False) -> pathlib.Path:
    """Generate ``num_samples`` (a, u) pairs on the ``resolution``-point grid into a directory.

    Written atomically (:mod:`fno.data.dataset_dir`): nothing appears under ``output_dir``
    until it is complete, an exception removes the temporary copy, and an existing non-empty
    ``output_dir`` is refused unless ``overwrite``. The bytes written depend only on the
    arguments, not on ``chunk_size``. Returns the absolute path of the dataset.
    """
    dataset_dir.check_counts(num_samples, chunk_size, seed)
    if not (a_pos > 0 and a_neg > 0):
        raise ValueError(f"a_pos and a_neg must be positive, got {a_pos}, {a_neg}")
    PCGSolver(resolution, average=average, rtol=rtol)  # validates resolution, average, rtol
    law = {"sigma": float(sigma), "tau": float(tau), "alpha": float(alpha),
           "mean_mode": bool(mean_mode)}
    phases = (float(a_pos), float(a_neg))
    logging.info("generating %d Darcy samples at s=%d (psi=%g/%g, %s face average) -> %s",
                 num_samples, resolution, *phases, average, output_dir)

    def solve(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        a = coefficient(grf2d.sample_field(seed, range(start, stop), resolution, **law), *phases)
        return a, solve_darcy(a, FORCING, average=average, rtol=rtol)

    meta = {
        "pde": "darcy",
        "equation": "-div(a grad u) = f on (0,1)^2, u = 0 on the boundary",
        "forcing": FORCING,
        "resolution": int(resolution),
        "num_samples": int(num_samples),
        "seed": int(seed),
        **law,
        "a_pos": phases[0],
        "a_neg": phases[1],
        "coefficient": "a = a_pos where mu >= 0, a_neg where mu < 0; mu = sum_k m_k xi_k "
                       "cos(pi k1 x) cos(pi k2 y), k1, k2 < S, m_k = sigma n_k1 n_k2 "
                       "(pi^2 |k|^2 + tau^2)^(-alpha/2) (n_0 = 1, n_k = sqrt 2; m_0 = 0 "
                       "unless mean_mode); sample i from numpy default_rng([seed, i])",
        "grid": "vertices x_i = i / (S - 1), boundaries included; array [n, i, j] is "
                "the value at (x_i, y_j); coarser grids: [:, ::r, ::r]",
        "solver": {"method": "pcg", "preconditioner": "dirichlet laplacian (dst-i)",
                   "discretisation": "5-point conservative finite differences",
                   "face_average": average, "rtol": float(rtol), "precision": "float64"},
        "dtype": "float32",
        "fno_version": fno.__version__,
    }
    return dataset_dir.write_dataset(output_dir, files=FILES,
                                     shape=(num_samples, resolution, resolution), solve=solve,
                                     meta=meta, chunk_size=chunk_size, overwrite=overwrite)


# --------------------------------------------------------------------------------------------
# Command line (fno.data.generator_cli adds --output_dir, --num_samples, --resolution, --seed,
# --chunk_size and --overwrite)
# --------------------------------------------------------------------------------------------


def _define_flags() -> None:
    flags.DEFINE_enum("average", DEFAULT_AVERAGE, AVERAGES, "Face value of a.")
    flags.DEFINE_float("a_pos", A_POS, "a where mu >= 0.")
    flags.DEFINE_float("a_neg", A_NEG, "a where mu < 0 (the released demo.m used 4).")
    flags.DEFINE_float("rtol", DEFAULT_RTOL, "PCG tolerance (preconditioned residual).")


if __name__ == "__main__":
    generator_cli.run(generate_dataset, _define_flags)
