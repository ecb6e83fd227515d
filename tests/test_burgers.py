"""The Burgers solver (against Cole–Hopf and a full-resolution solve) and the dataset writer."""

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fno
from benchmarks import generation_speed
from configs import burgers_v1000, default
from fno.data import burgers, datasets, etdrk4, grf


def cole_hopf(u0: np.ndarray, nu: float, t: float, oversample: int = 4) -> np.ndarray:
    """Exact u(., t) for zero-mean trigonometric-polynomial data u0 [B, S], independent of the
    solver: u = -2 nu phi_x / phi, phi = heat flow of exp(-int u0 / (2 nu)), all spectral."""
    b, s = u0.shape
    m = oversample * s
    c = np.fft.rfft(u0, norm="forward")
    assert np.abs(c[:, 0]).max() < 1e-14 and np.abs(c[:, -1]).max() < 1e-14
    k = np.arange(s // 2 + 1)
    antiderivative = np.zeros((b, m // 2 + 1), complex)
    antiderivative[:, 1:s // 2] = c[:, 1:s // 2] / (2j * np.pi * k[1:s // 2])
    psi = -np.fft.irfft(antiderivative, m, norm="forward") / (2 * nu)
    phi0 = np.exp(psi - psi.max(axis=1, keepdims=True))  # phi is defined up to a constant
    km = np.arange(m // 2 + 1)
    p = np.fft.rfft(phi0, norm="forward") * np.exp(-nu * (2 * np.pi * km) ** 2 * t)
    phi = np.fft.irfft(p, m, norm="forward")
    phi_x = np.fft.irfft(2j * np.pi * km * p, m, norm="forward")
    return (-2 * nu * phi_x / phi)[:, ::oversample]


def cole_hopf_log_space(u0: np.ndarray, nu: float, t: float, x_stride: int = 1,
                        oversample: int = 1, images: int = 2) -> np.ndarray:
    """Exact u(x_j, t) at every ``x_stride``-th point for small nu, where phi0 = exp(-int u0 /
    (2 nu)) spans too many orders of magnitude for the spectral form above: the heat-kernel
    integral u = int ((x - y) / t) w dy / int w dy, log w = -(x - y)^2 / (4 nu t) - int u0 /
    (2 nu), is a log-sum-exp over quadrature points y on the line (``images`` periods either
    side of [0, 1)), where the periodic trapezoid rule converges spectrally."""
    b, s = u0.shape
    m = oversample * s
    c = np.fft.rfft(u0, norm="forward")
    k = np.arange(1, s // 2)
    antiderivative = np.zeros((b, m // 2 + 1), complex)
    antiderivative[:, 1:s // 2] = c[:, 1:s // 2] / (2j * np.pi * k)
    log_phi0 = -np.fft.irfft(antiderivative, m, norm="forward") / (2 * nu)
    y = np.arange(m) / m
    x = np.arange(0, s, x_stride) / s
    shifts = np.arange(-images, images + 1)
    d = (x[:, None, None] - y[None, None, :] - shifts[None, :, None]).reshape(len(x), -1)
    out = np.empty((b, len(x)))
    for i in range(b):
        log_w = np.tile(log_phi0[i], len(shifts))[None, :] - d * d / (4 * nu * t)
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        out[i] = (w * d).sum(axis=1) / (t * w.sum(axis=1))
    return out


def rel_l2(u, ref):
    return np.linalg.norm(u - ref, axis=-1) / np.linalg.norm(ref, axis=-1)


# ------------------------------------------------------------------------------------ solver


def test_phi_functions_match_kassam_trefethen_contour_mean():
    z = np.concatenate([-np.logspace(-9, 7, 60), [0.0], -np.linspace(0.5, 1.5, 11)])
    w = z[:, None] + np.exp(1j * np.pi * (np.arange(128) + 0.5) / 64)
    contour = [np.mean(f, axis=1).real for f in (
        np.expm1(w) / w, (np.expm1(w) - w) / w**2, (np.expm1(w) - w - w**2 / 2) / w**3)]
    for ours, ref in zip(etdrk4.phi_functions(z), contour, strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-11)
    np.testing.assert_allclose(etdrk4.phi_functions(np.zeros(1)), [[1], [1 / 2], [1 / 6]])


@pytest.mark.parametrize("nu", [0.2, 0.1, 0.05])
def test_matches_cole_hopf(nu):
    u0 = grf.sample_grf(1, range(4), 2048)
    ref = cole_hopf(u0, nu, 1.0)
    np.testing.assert_allclose(cole_hopf(u0, nu, 1.0, oversample=8), ref, rtol=0, atol=1e-13)
    err = rel_l2(burgers.solve_burgers(u0, nu=nu, t_final=1.0), ref).max()
    print(f"nu={nu}: max relative L2 error vs Cole-Hopf {err:.2e}")
    assert err <= 1e-8


def test_log_space_cole_hopf_equals_the_spectral_form():
    """The two exact solutions agree where both are accurate (nu = 0.01)."""
    u0 = grf.sample_grf(1, range(2), 512)
    ref = cole_hopf(u0, 0.01, 1.0)
    np.testing.assert_allclose(cole_hopf_log_space(u0, 0.01, 1.0), ref, rtol=0, atol=1e-12)


# The released generator's problem (configs/burgers_v1000.py): the two samples of its first
# 2048 with the steepest fronts at t = 1 (|u_x| up to ~98), found by solving all of them.
V1000_HARDEST = (1521, 930)


@pytest.fixture(scope="module")
def v1000():
    from configs import burgers_v1000 as v
    law = {"sigma": v.SIGMA, "tau": v.TAU, "gamma": v.GAMMA}
    u0 = grf.sample_grf(0, V1000_HARDEST, burgers.DEFAULT_RESOLUTION, **law)
    exact = cole_hopf_log_space(u0, v.NU, 1.0, x_stride=8)
    return v, u0, exact


def test_v1000_settings_match_cole_hopf_and_a_finer_solve(v1000):
    v, u0, exact = v1000
    used = burgers.solve_burgers(u0, nu=v.NU, grid=v.SOLVER_GRID, steps=v.SOLVER_STEPS,
                                 batch_size=len(u0))
    finer = burgers.solve_burgers(u0, nu=v.NU, grid=2 * v.SOLVER_GRID,
                                  steps=2 * v.SOLVER_STEPS, batch_size=len(u0))
    err, self_err = rel_l2(used[:, ::8], exact).max(), rel_l2(used, finer).max()
    print(f"nu={v.NU}: vs Cole-Hopf {err:.2e}, vs 2x grid and steps {self_err:.2e}, finer vs "
          f"Cole-Hopf {rel_l2(finer[:, ::8], exact).max():.2e}")
    assert err <= 2e-8 and self_err <= 2e-8
    assert rel_l2(finer[:, ::8], exact).max() <= 2e-9  # the error shrinks under refinement
    assert np.abs(np.diff(exact, axis=1)).max() * exact.shape[1] > 50  # steep fronts


def test_v1000_check_catches_too_few_points_or_steps(v1000):
    v, u0, exact = v1000
    for kw in ({"grid": v.SOLVER_GRID // 4, "steps": v.SOLVER_STEPS},
               {"grid": v.SOLVER_GRID, "steps": v.SOLVER_STEPS // 4}):
        coarse = burgers.solve_burgers(u0, nu=v.NU, batch_size=len(u0), **kw)
        assert rel_l2(coarse[:, ::8], exact).max() > 1e-7


def test_cole_hopf_check_catches_a_coarse_solver():
    u0 = grf.sample_grf(1, range(2), 2048)
    ref = cole_hopf(u0, 0.1, 1.0)
    assert rel_l2(burgers.solve_burgers(u0, nu=0.1, steps=20), ref).max() > 1e-8
    assert rel_l2(burgers.solve_burgers(u0, nu=0.1, grid=32), ref).max() > 1e-8


def test_reduced_grid_matches_full_resolution_solve():
    s = burgers.DEFAULT_RESOLUTION
    u0 = grf.sample_grf(2, range(3), s)
    full = burgers.solve_burgers(u0, nu=0.1, grid=s, steps=400, batch_size=3)
    assert rel_l2(full, cole_hopf(u0, 0.1, 1.0, oversample=2)).max() <= 1e-8  # converged
    fast = burgers.solve_burgers(u0, nu=0.1)
    err = rel_l2(fast, full).max()
    err32 = rel_l2(fast.astype(np.float32), full).max()
    print(f"reduced grid vs full {s}-point solve: {err:.2e} (stored float32: {err32:.2e})")
    assert burgers.solver_settings(0.1, 1.0).grid < s // 16
    assert err32 <= 1e-6


def test_solver_settings_rule():
    assert burgers.solver_settings(0.1, 1.0) == burgers.SolverSettings(grid=256, steps=200)
    assert burgers.solver_settings(0.005, 1.0) == burgers.SolverSettings(grid=512, steps=1600)
    assert burgers.solver_settings(0.0025, 2.0) == burgers.SolverSettings(grid=1024, steps=6400)
    assert burgers.solver_settings(0.1, 1e-3).grid == 512  # little damping: keep more modes
    with pytest.raises(ValueError, match="below"):
        burgers.solver_settings(0.001, 1.0)
    assert burgers.solver_settings(0.001, 1.0, grid=2048, steps=10).grid == 2048
    for bad in ({"grid": 7}, {"steps": 0}):
        with pytest.raises(ValueError):
            burgers.solver_settings(0.1, 1.0, **bad)
    with pytest.raises(ValueError):
        burgers.solver_settings(-0.1, 1.0)


def test_solver_leaves_float32_default_and_conserves_mean():
    u0 = grf.sample_grf(0, range(2), 64) + 0.25  # a non-zero mean is advected, not lost
    u1 = burgers.solve_burgers(u0, nu=0.1)
    assert u1.dtype == np.float64
    np.testing.assert_allclose(u1.mean(axis=1), 0.25, atol=1e-14)
    assert not jax.config.jax_enable_x64
    assert jnp.zeros(1).dtype == jnp.float32
    np.testing.assert_array_equal(burgers.solve_burgers(u0[0], nu=0.1), u1[0])


# ------------------------------------------------------------------------------------ writer

SMALL = {"num_samples": 10, "resolution": 64, "seed": 3}


def read_bytes(path):
    return {name: (path / name).read_bytes() for name in ("u0.npy", "u1.npy", "meta.json")}



def test_meta_and_contents(tmp_path):
    out = burgers.generate_dataset(tmp_path / "ds", nu=0.05, t_final=0.5, **SMALL)
    assert out == tmp_path / "ds"
    meta = json.loads((out / "meta.json").read_text())
    assert {k: meta[k] for k in ("pde", "nu", "t_final", "resolution", "num_samples", "seed",
                                 "sigma", "tau", "gamma", "fno_version")} == {
        "pde": "burgers", "nu": 0.05, "t_final": 0.5, "resolution": 64, "num_samples": 10,
        "seed": 3, "sigma": 25.0, "tau": 5.0, "gamma": 2.0, "fno_version": fno.__version__}
    settings = burgers.solver_settings(0.05, 0.5)
    assert meta["solver"]["grid"] == settings.grid and meta["solver"]["steps"] == settings.steps
    for name in ("u0.npy", "u1.npy"):
        assert meta["sha256"][name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    u0, u1 = np.load(out / "u0.npy"), np.load(out / "u1.npy")
    assert u0.dtype == u1.dtype == np.float32 and u0.shape == u1.shape == (10, 64)
    exact_u0 = grf.sample_grf(3, range(10), 64)
    np.testing.assert_array_equal(u0, exact_u0.astype(np.float32))
    np.testing.assert_array_equal(
        u1, burgers.solve_burgers(exact_u0, nu=0.05, t_final=0.5).astype(np.float32))
    assert sorted(os.listdir(tmp_path)) == ["ds"]




def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="unknown solver settings"):
        burgers.generate_dataset(tmp_path / "x", grd=5, **SMALL)
    with pytest.raises(ValueError, match="below"):
        burgers.generate_dataset(tmp_path / "x", nu=1e-4, **SMALL)
    with pytest.raises(ValueError, match="resolution"):
        burgers.generate_dataset(tmp_path / "x", **{**SMALL, "resolution": 63})
    assert os.listdir(tmp_path) == []



def test_bench_runs(capsys):
    results = generation_speed.benchmark(num_samples=8, resolution=64, nu=0.1, full=False)
    assert results["samples_per_s"] > 0
    assert "projected 2048 samples" in capsys.readouterr().out


def test_cache_names_keep_the_default_and_tell_presets_apart():
    """The paper-text default keeps its historical cache name (existing caches stay valid);
    the released generator's law and explicit solver settings make a different name."""
    paper = os.path.basename(datasets.default_data_dir(default.get_config()))
    v1000 = os.path.basename(datasets.default_data_dir(burgers_v1000.get_config()))
    assert paper == "burgers_n2048_s8192_nu0.1_t1_seed0"
    assert v1000 == "burgers_n2048_s8192_nu0.001_t1_seed0_grf49-7-2.5_grid2048_steps2000"
