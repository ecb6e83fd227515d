"""The Darcy generator: the field's law, the solver (manufactured solution, direct vs fast), the
subsampling layout and the dataset writer."""

import hashlib
import json
import math
import os

import numpy as np
import pytest

import fno
from fno.data import darcy, grf2d
from tests.helpers import covariance_z_scores

# ------------------------------------------------------------------------------------ field


def neumann_basis(s: int) -> np.ndarray:
    """phi_k(x_i) [S points, S modes]: L2-orthonormal Neumann cosines on the vertex grid."""
    x = np.linspace(0.0, 1.0, s)
    k = np.arange(s)
    return np.cos(np.pi * np.outer(x, k)) * np.where(k > 0, np.sqrt(2.0), 1.0)


def operator_variances(s: int, sigma: float = 1.0, mean_mode: bool = False) -> np.ndarray:
    """Eigenvalues of sigma^2 (-Delta_Neumann + 9 I)^-2 for the modes k1, k2 < S: [S, S]."""
    k = np.arange(s)
    lam = sigma**2 * (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0) ** -2.0
    if not mean_mode:
        lam[0, 0] = 0.0
    return lam


@pytest.mark.parametrize("mean_mode", [False, True])
def test_field_covariance_matches_the_operator(mean_mode):
    """Sample covariance of mu over all grid-point pairs vs sum_k lambda_k phi_k(p) phi_k(q)."""
    s, n = 9, 4000
    phi = neumann_basis(s)
    lam = operator_variances(s, mean_mode=mean_mode)
    exact = np.einsum("ia,jb,ab,ka,lb->ijkl", phi, phi, lam, phi, phi).reshape(s * s, s * s)
    p = np.stack(np.meshgrid(np.linspace(0, 1, s), np.linspace(0, 1, s), indexing="ij"), -1)
    np.testing.assert_allclose(
        grf2d.covariance(p.reshape(-1, 1, 2), p.reshape(1, -1, 2), s, mean_mode=mean_mode),
        exact, rtol=1e-12, atol=1e-18)

    mu = grf2d.sample_field(7, range(n), s, mean_mode=mean_mode).reshape(n, -1)
    z, z_mean, empirical = covariance_z_scores(mu, exact)
    var = np.diag(exact)
    print(f"mean_mode={mean_mode}: covariance max |z| {z.max():.2f} over {z.size} entries, "
          f"max relative error of the pointwise variance "
          f"{np.abs(np.diag(empirical) / var - 1).max():.3f} (1 sigma = {math.sqrt(2 / n):.3f})")
    assert z.max() < 6.0 and z_mean.max() < 6.0
    # The check has power: the released GRF.m's tau^(alpha-1) scaling would fail it by far.
    assert covariance_z_scores(3.0 * mu, exact)[0].max() > 100


def test_mode_coefficients_are_independent_with_the_operator_variances():
    s, n = 9, 4000
    inv = np.linalg.inv(neumann_basis(s))
    mu = grf2d.sample_field(8, range(n), s)
    coeff = np.einsum("ai,nij,bj->nab", inv, mu, inv).reshape(n, -1)  # mu = sum c_k phi_k
    lam = operator_variances(s).ravel()
    assert np.abs(coeff[:, 0]).max() < 1e-12  # no constant mode
    z = (coeff[:, 1:] ** 2).mean(axis=0) / lam[1:] - 1.0
    print(f"per-mode variance: max relative error {np.abs(z).max():.3f} over {z.size} modes "
          f"(1 sigma = {math.sqrt(2 / n):.3f})")
    assert np.abs(z).max() < 6.0 * math.sqrt(2.0 / n)
    standard = coeff[:, 1:] / np.sqrt(lam[1:])
    corr = standard.T @ standard / n
    assert np.abs(corr - np.diag(np.diag(corr))).max() < 6.0 / math.sqrt(n)


def test_field_at_421_is_the_cosine_series():
    s = darcy.DEFAULT_RESOLUTION
    c = grf2d.sample_coefficients(0, 5, s)
    mu = grf2d.sample_field(0, [5], s)[0]
    k = np.pi * np.arange(s)
    for i, j in [(0, 0), (17, 400), (210, 211), (420, 3)]:
        x, y = i / (s - 1), j / (s - 1)
        assert mu[i, j] == pytest.approx(np.cos(k * x) @ c @ np.cos(k * y), abs=1e-14)
    np.testing.assert_array_equal(grf2d.sample_field(0, range(3, 6), s)[2], mu)
    assert c[0, 0] == 0.0


def test_coefficient_takes_the_two_phase_values():
    mu = grf2d.sample_field(1, range(4), 85)
    a = darcy.coefficient(mu)
    assert set(np.unique(a)) == {3.0, 12.0}
    np.testing.assert_array_equal(a == 12.0, mu >= 0)
    assert 0.2 < (a == 12.0).mean() < 0.8
    assert set(np.unique(darcy.coefficient(mu, a_neg=4.0))) == {4.0, 12.0}


# ----------------------------------------------------------------------------------- solver


def manufactured(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a, f, u* on the S-point grid: u* = sin(pi x) sin(2 pi y), a = 2 + sin(2 pi x + 1)
    cos(3 pi y), f = -div(a grad u*) = -(a Lap u* + a_x u*_x + a_y u*_y), by hand."""
    x, y = np.meshgrid(np.linspace(0, 1, s), np.linspace(0, 1, s), indexing="ij")
    pi = np.pi
    u = np.sin(pi * x) * np.sin(2 * pi * y)
    u_x = pi * np.cos(pi * x) * np.sin(2 * pi * y)
    u_y = 2 * pi * np.sin(pi * x) * np.cos(2 * pi * y)
    a = 2 + np.sin(2 * pi * x + 1) * np.cos(3 * pi * y)
    a_x = 2 * pi * np.cos(2 * pi * x + 1) * np.cos(3 * pi * y)
    a_y = -3 * pi * np.sin(2 * pi * x + 1) * np.sin(3 * pi * y)
    f = -(a * (-5 * pi**2 * u) + a_x * u_x + a_y * u_y)
    return a, f, u


@pytest.mark.parametrize("average", darcy.AVERAGES)
def test_manufactured_solution_converges_at_second_order(average):
    errors = []
    for s in (33, 65, 129):
        a, f, exact = manufactured(s)
        u = darcy.solve_darcy(a, f, average=average)
        assert np.abs(u - darcy.solve_darcy(a, f, method="direct", average=average)).max() \
            <= 1e-8 * np.abs(u).max()
        errors.append(np.abs(u - exact).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    print(f"{average}: max errors {[f'{e:.2e}' for e in errors]}, orders {orders.round(3)}")
    assert ((1.8 <= orders) & (orders <= 2.2)).all()


@pytest.mark.parametrize("s", [85, 141])
def test_fast_solver_equals_direct_on_piecewise_constant_a(s):
    a = darcy.coefficient(grf2d.sample_field(2, range(2), s))
    for average in darcy.AVERAGES:
        solver = darcy.PCGSolver(s, average=average)
        for row in a:
            u, iterations = solver.solve(row)
            ref = darcy.solve_direct(row, average=average)
            err = np.linalg.norm(u - ref) / np.linalg.norm(ref)
            print(f"s={s} {average}: PCG {iterations} iterations, relative L2 vs direct "
                  f"{err:.1e}")
            assert err <= 1e-8
            # kappa(L^-1 A) <= 12 / 3 = 4: the residual falls >= 3x per step, at any S.
            assert iterations <= math.ceil(math.log(4 / darcy.DEFAULT_RTOL) / math.log(3))
            assert (u[1:-1, 1:-1] > 0).all()  # maximum principle, f = 1 > 0
            assert not u[[0, -1]].any() and not u[:, [0, -1]].any()


def test_stencil_equals_the_assembled_matrix():
    a = darcy.coefficient(grf2d.sample_field(3, [0], 29)[0])
    v = np.random.default_rng(0).standard_normal((27, 27))
    for average in darcy.AVERAGES:
        matrix = darcy.darcy_matrix(a, average)
        assert abs(matrix - matrix.T).max() == 0.0
        np.testing.assert_allclose(darcy.apply_operator(v, a, average).ravel(),
                                   matrix @ v.ravel(), rtol=1e-13, atol=1e-9)


def test_agreement_check_catches_a_loose_solver():
    a = darcy.coefficient(grf2d.sample_field(2, [0], 85)[0])
    ref = darcy.solve_direct(a)
    loose, _ = darcy.solve_pcg(a, rtol=1e-4)
    assert np.linalg.norm(loose - ref) / np.linalg.norm(ref) > 1e-8
    with pytest.raises(RuntimeError, match="did not reach"):
        darcy.solve_pcg(a, maxiter=3)


def test_solver_rejects_bad_input():
    a = np.full((9, 9), 2.0)
    for bad in (np.ones((9, 8)), np.ones((2, 2)), -a, a * np.nan):
        with pytest.raises(ValueError):
            darcy.solve_darcy(bad)
    with pytest.raises(ValueError, match="average"):
        darcy.solve_darcy(a, average="geometric")
    with pytest.raises(ValueError, match="method"):
        darcy.solve_darcy(a, method="jacobi")
    with pytest.raises(ValueError, match="broadcast"):
        darcy.solve_darcy(a, np.ones(4))


# ------------------------------------------------------------------------------ subsampling


def test_subsampling_layout():
    s = darcy.DEFAULT_RESOLUTION
    x = np.broadcast_to(np.linspace(0.0, 1.0, s)[:, None], (s, s))  # [i, j] -> x_i
    for res, step in ((211, 2), (141, 3), (85, 5), (421, 1)):
        assert darcy.subsample_step(s, res) == step
        sub = darcy.subsample(x[None], res)[0]
        assert sub.shape == (res, res)
        np.testing.assert_array_equal(sub, x[::step, ::step])
        np.testing.assert_allclose(sub[:, 0], np.linspace(0.0, 1.0, res), atol=1e-15)
        assert sub[0, 0] == 0.0 and sub[-1, 0] == 1.0  # both boundaries included
    for bad in (84, 420, 1):
        with pytest.raises(ValueError, match="not a subgrid"):
            darcy.subsample_step(s, bad)


# ----------------------------------------------------------------------------------- writer

SMALL = {"num_samples": 5, "resolution": 21, "seed": 3}


def read_bytes(path):
    return {name: (path / name).read_bytes() for name in ("a.npy", "u.npy", "meta.json")}



def test_meta_and_contents(tmp_path):
    out = darcy.generate_dataset(tmp_path / "ds", average="harmonic", **SMALL)
    assert out == tmp_path / "ds" and sorted(os.listdir(tmp_path)) == ["ds"]
    meta = json.loads((out / "meta.json").read_text())
    assert {k: meta[k] for k in ("pde", "resolution", "num_samples", "seed", "a_pos", "a_neg",
                                 "tau", "alpha", "sigma", "mean_mode", "dtype",
                                 "fno_version")} == {
        "pde": "darcy", "resolution": 21, "num_samples": 5, "seed": 3, "a_pos": 12.0,
        "a_neg": 3.0, "tau": 3.0, "alpha": 2.0, "sigma": 1.0, "mean_mode": False,
        "dtype": "float32", "fno_version": fno.__version__}
    assert meta["solver"]["face_average"] == "harmonic"
    assert meta["files"] == {"input": "a.npy", "output": "u.npy"}
    for name in darcy.FILES:
        assert meta["sha256"][name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    a, u = np.load(out / "a.npy"), np.load(out / "u.npy")
    assert a.dtype == u.dtype == np.float32 and a.shape == u.shape == (5, 21, 21)
    exact_a = darcy.coefficient(grf2d.sample_field(3, range(5), 21))
    np.testing.assert_array_equal(a, exact_a.astype(np.float32))
    np.testing.assert_array_equal(
        u, darcy.solve_darcy(exact_a, average="harmonic").astype(np.float32))
    assert not u[:, [0, -1]].any() and not u[:, :, [0, -1]].any()
    # The paper's coarser grids keep the boundary: subsampled u is still zero there.
    assert not darcy.subsample(u, 11)[:, 0].any() and not darcy.subsample(u, 5)[:, -1].any()




def test_bad_arguments(tmp_path):
    for bad in ({"resolution": 2}, {"num_samples": 0}, {"seed": -1}, {"a_neg": 0.0},
                {"average": "geometric"}, {"rtol": 0.0}):
        with pytest.raises(ValueError):
            darcy.generate_dataset(tmp_path / "x", **{**SMALL, **bad})
    assert os.listdir(tmp_path) == []
