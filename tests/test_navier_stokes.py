"""The 2D Navier–Stokes generator: the initial field's law, the solver (exact solutions, order in
time, self-convergence in space, stability and resolution guards) and the dataset writer."""

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fno
from fno.data import grf2d_periodic, navier_stokes, sources, vorticity
from tests.helpers import covariance_z_scores

# ------------------------------------------------------------------------------------ field


def torus_covariance(d: np.ndarray, max_mode: int, sigma: float) -> np.ndarray:
    """sigma^2 sum_{k != 0, |k_i| <= K} (4 pi^2 |k|^2 + 49)^-2.5 cos(2 pi k . d), directly."""
    k = np.arange(-max_mode, max_mode + 1)
    k1, k2 = (a.ravel() for a in np.meshgrid(k, k, indexing="ij"))
    lam = sigma**2 * (4 * np.pi**2 * (k1**2 + k2**2) + 49.0) ** -2.5
    lam[(k1 == 0) & (k2 == 0)] = 0.0
    return np.cos(2 * np.pi * (d[..., 0, None] * k1 + d[..., 1, None] * k2)) @ lam


def test_field_covariance_matches_the_operator():
    """Sample covariance over all grid-point pairs vs 7^3 (-Lap + 49 I)^-2.5 (the released
    code's amplitude 7^1.5; the paper text's 7^0.75 would fail by far)."""
    s, n, max_mode = 6, 4000, 4
    x = np.stack(np.meshgrid(np.arange(s) / s, np.arange(s) / s, indexing="ij"), -1)
    x = x.reshape(-1, 2)
    exact = torus_covariance(x[:, None] - x[None, :], max_mode, 7.0**1.5)
    np.testing.assert_allclose(grf2d_periodic.covariance(x[:, None], x[None, :], max_mode),
                               exact, rtol=1e-12, atol=1e-15)
    w = grf2d_periodic.sample_field(7, range(n), s, max_mode=max_mode).reshape(n, -1)
    z, z_mean, empirical = covariance_z_scores(w, exact)
    print(f"covariance max |z| {z.max():.2f} over {z.size} entries; pointwise variance "
          f"{np.diag(empirical).mean():.4f} vs {exact[0, 0]:.4f}")
    assert z.max() < 6.0 and z_mean.max() < 6.0
    # The check has power: the paper text's amplitude would fail it by far.
    paper = torus_covariance(x[:, None] - x[None, :], max_mode, grf2d_periodic.PAPER_SIGMA)
    assert covariance_z_scores(w, paper)[0].max() > 30
    # The full default field: pointwise variance sum_k sigma^2 m_k^2 (tail beyond K = 128 ~1e-6).
    assert grf2d_periodic.pointwise_variance() == pytest.approx(
        grf2d_periodic.pointwise_variance(max_mode=512), rel=1e-5)


def test_spectral_coefficients_have_the_mode_variances():
    """E |c_k|^2 = sigma^2 m_k^2 for the rfft2 coefficients the solver starts from."""
    n, samples, grid = 4, 3000, 16
    modes = np.stack([grf2d_periodic.sample_modes(3, i, max_mode=n) for i in range(samples)])
    c = grf2d_periodic.rfft_coefficients(modes, grid, n)
    k1 = np.fft.fftfreq(grid, 1 / grid)[:, None]
    k2 = np.arange(grid // 2 + 1)[None, :]
    std = grf2d_periodic.mode_std(k1, k2)
    kept = (np.abs(k1) <= n) & (k2 <= n) & (std > 0)
    ratio = (np.abs(c) ** 2).mean(axis=0)[kept] / std[kept] ** 2
    print(f"per-mode variance ratio: {ratio.min():.3f} .. {ratio.max():.3f} over {kept.sum()}")
    assert np.abs(ratio - 1).max() < 6 / math.sqrt(samples)  # |c_k|^2 is exponential
    assert np.abs(c[:, 0, 0]).max() == 0.0 and not c[:, ~((np.abs(k1) <= n) & (k2 <= n))].any()


def test_point_values_and_coefficients_are_the_same_polynomial():
    modes = grf2d_periodic.sample_modes(0, 1, max_mode=5)
    for s in (6, 11, 16):  # folded (s < 2K + 1) and not
        x = np.arange(s) / s
        e = np.exp(2j * np.pi * np.outer(x, np.arange(-5, 6)))
        np.testing.assert_allclose(grf2d_periodic.point_values(modes, s),
                                   (e @ modes @ e.T).real, atol=1e-14)
    w = np.fft.irfft2(grf2d_periodic.rfft_coefficients(modes, 16, 5), s=(16, 16), norm="forward")
    np.testing.assert_allclose(w, grf2d_periodic.point_values(modes, 16), atol=1e-14)
    # The same draw at any grid: a sample does not depend on where it is evaluated.
    np.testing.assert_allclose(grf2d_periodic.sample_field(0, [1], 64)[0][::4, ::4],
                               grf2d_periodic.sample_field(0, [1], 16)[0], atol=1e-14)


# ----------------------------------------------------------------------------------- solver


def test_nonlinear_term_matches_the_analytic_jacobian():
    """w = cos 2 pi x + cos 4 pi y: u . grad w = -1.5 sin(2 pi x) sin(4 pi y) by hand (psi =
    cos(2 pi x) / 4 pi^2 + cos(4 pi y) / 16 pi^2, u = psi_y, v = -psi_x); fixes the signs."""
    import jax
    import jax.numpy as jnp

    n = 16
    x, y = vorticity.grid_points(n)
    w = np.cos(2 * np.pi * x) + np.cos(4 * np.pi * y)
    with jax.enable_x64(True):
        sym = {k: jnp.asarray(v) for k, v in vorticity._symbols(n).items()
               if k in ("ikx", "iky", "inv_k2", "mask")}
        out = vorticity._nonlinear(jnp.asarray(np.fft.rfft2(w, norm="forward")[None]), sym,
                                       jnp.zeros((n, n // 2 + 1), complex))
        minus_advection = np.fft.irfft2(np.asarray(out[0]), s=(n, n), norm="forward")
    np.testing.assert_allclose(minus_advection, 1.5 * np.sin(2 * np.pi * x)
                               * np.sin(4 * np.pi * y), atol=1e-13)


def test_single_shell_field_decays_exactly():
    """Any field on one wavevector shell (|k|^2 = 25 here) has psi proportional to w, so
    u . grad w = 0 and, unforced, w(t) = w0 exp(-4 pi^2 25 nu t)."""
    n, nu = 32, 1e-3
    x, y = vorticity.grid_points(n)
    w0 = (np.sin(2 * np.pi * (3 * x + 4 * y)) + 0.7 * np.cos(2 * np.pi * 5 * x)
          - 0.4 * np.cos(2 * np.pi * (4 * x - 3 * y)) + 0.2 * np.sin(2 * np.pi * 5 * y))
    out = vorticity.solve_navier_stokes(w0, nu=nu, final_time=3.0, record_every=1.0,
                                            forcing_amplitude=0.0, batch_size=1)
    decay = np.exp(-4 * np.pi**2 * 25 * nu * np.arange(4))
    err = (np.abs(out - w0[..., None] * decay).max(axis=(0, 1)) / np.abs(w0).max() / decay)
    print(f"single shell: max relative error {err.max():.1e} (decay to {decay[-1]:.3f})")
    assert err.max() < 1e-13


def test_forced_steady_state_is_held_and_approached():
    """f lies on the shell |k|^2 = 2, so w* = f / (8 pi^2 nu) is steady (u . grad w* = 0), and
    from w = 0 the field is w* (1 - exp(-8 pi^2 nu t)) exactly (a Kolmogorov-flow check)."""
    n, nu = 32, 0.02
    x, y = vorticity.grid_points(n)
    steady = vorticity.forcing(x, y) / (8 * np.pi**2 * nu)
    out = vorticity.solve_navier_stokes(np.stack([steady, 0 * steady]), nu=nu,
                                            final_time=3.0, record_every=1.0, batch_size=2)
    held = np.abs(out[0] - steady[..., None]).max() / np.abs(steady).max()
    approach = steady[..., None] * -np.expm1(-8 * np.pi**2 * nu * np.arange(4))
    spun_up = np.abs(out[1] - approach).max() / np.abs(steady).max()
    print(f"steady state held to {held:.1e}, spin-up from rest to {spun_up:.1e}")
    assert held < 1e-13 and spun_up < 1e-13


@pytest.fixture(scope="module")
def smooth_field():
    """One random initial field's coefficients on a 32-point grid (its 2/3 band, |k_i| <= 10)."""
    modes = grf2d_periodic.sample_modes(0, 3)[None]
    return grf2d_periodic.rfft_coefficients(modes, 32, navier_stokes.band(32))


@pytest.mark.parametrize("scheme,dts,order", [("etdrk4", (0.2, 0.1, 0.05, 1 / 320), 4),
                                              ("cn_euler", (0.02, 0.01, 0.005, 1 / 3200), 1)])
def test_temporal_order(smooth_field, scheme, dts, order):
    """Halving dt on the same field (nu = 1e-3, t = 1, 32 points) against a 16x smaller dt."""
    w = [vorticity.solve_spectral(smooth_field, nu=1e-3, final_time=1.0, record_every=1.0,
                                      dt=dt, scheme=scheme, batch_size=1)[0, ..., -1]
         for dt in dts]
    err = [np.linalg.norm(a - w[-1]) / np.linalg.norm(w[-1]) for a in w[:-1]]
    observed = np.log2(np.array(err[:-1]) / np.array(err[1:]))
    print(f"{scheme}: errors {[f'{e:.2e}' for e in err]}, observed order {observed.round(3)}")
    assert (np.abs(observed - order) < 0.15).all()


def test_spatial_self_convergence():
    """32 / 64 / 128 points from one draw (each truncated to its own band), nu = 1e-3, t = 1,
    the same dt: the stored 32-point snapshot converges spectrally."""
    modes = grf2d_periodic.sample_modes(0, 2)[None]
    w = {n: navier_stokes.solve_modes(modes, resolution=32, solve_resolution=n, nu=1e-3,
                                      final_time=1.0, dt=1 / 64, batch_size=1)[0, ..., -1]
         for n in (32, 64, 128)}
    err = {n: np.linalg.norm(w[n] - w[128]) / np.linalg.norm(w[128]) for n in (32, 64)}
    print(f"relative L2 vs 128 points at t = 1: 32: {err[32]:.2e}, 64: {err[64]:.2e}")
    assert err[64] < 1e-6 and err[64] < err[32] / 1e3


def test_default_time_step_rule_is_accurate_and_stable():
    """The CFL rule at its default target against a 4x finer target (nu = 1e-3, 32 points):
    below the float32 rounding of stored data, with the CFL number in bounds."""
    modes = grf2d_periodic.sample_modes(0, 4)[None]
    runs = {}
    for cfl in (navier_stokes.DEFAULT_CFL, navier_stokes.DEFAULT_CFL / 4):
        stats = {}
        runs[cfl] = navier_stokes.solve_modes(modes, resolution=32, solve_resolution=32,
                                              nu=1e-3, final_time=3.0, cfl=cfl, stats=stats,
                                              batch_size=1)[0, ..., 1:]
        assert stats["max_cfl"].max() < vorticity.CFL_LIMIT["etdrk4"] / 1.5
    a, b = runs.values()
    err = (np.linalg.norm(a - b, axis=(0, 1)) / np.linalg.norm(b, axis=(0, 1))).max()
    print(f"default CFL rule vs 4x smaller steps: {err:.1e}")
    assert err < 6e-8


def test_unstable_and_unresolved_settings_are_refused():
    modes = grf2d_periodic.sample_modes(0, 5)[None]
    kw = {"resolution": 32, "batch_size": 1}
    with pytest.raises(ValueError, match="unstable time step"):
        navier_stokes.solve_modes(modes, solve_resolution=32, nu=1e-3, final_time=1.0, dt=1.0,
                                  **kw)
    with pytest.raises(ValueError, match="unresolved"):
        navier_stokes.solve_modes(modes, solve_resolution=32, nu=1e-5, final_time=2.0,
                                  tail_limit=navier_stokes.DEFAULT_TAIL_LIMIT, **kw)
    for bad, match in [({"nu": 0.0}, "nu must be positive"),
                       ({"final_time": 2.5}, "not a multiple of record_every"),
                       ({"solve_resolution": 48}, "must be a multiple of resolution"),
                       ({"cfl": 1.5}, "cfl=1.5 is outside"),
                       ({"scheme": "cn_euler"}, "takes an explicit dt")]:
        settings = {"nu": 1e-3, "final_time": 2.0, "record_every": 1.0, "resolution": 32,
                    "solve_resolution": 64, "scheme": "etdrk4", "cfl": 0.5, "dt": None, **bad}
        with pytest.raises(ValueError, match=match):
            navier_stokes.check_settings(**settings)


def test_default_solve_resolution():
    assert [navier_stokes.default_solve_resolution(nu, 64) for nu in vorticity.PRESETS] \
        == [64, 256, 256]
    assert navier_stokes.default_solve_resolution(1e-3, 16) == 64
    assert navier_stokes.default_solve_resolution(1e-3, 96) == 96


# ---------------------------------------------------------------------------------- dataset

TINY = {"num_samples": 2, "resolution": 16, "seed": 3, "nu": 1e-3, "final_time": 2.0}


def test_meta_contents_and_reader(tmp_path):
    out = navier_stokes.generate_dataset(tmp_path / "ds", chunk_size=1, **TINY)
    assert out == tmp_path / "ds" and sorted(os.listdir(tmp_path)) == ["ds"]
    meta = json.loads((out / "meta.json").read_text())
    expected = {**TINY, "record_every": 1.0, "solve_resolution": 64, "scheme": "etdrk4",
                "cfl": 0.5, "dt": None, "tail_limit": 0.01, "sigma": 7.0**1.5, "tau": 7.0,
                "alpha": 2.5, "pde": "navier_stokes", "time_axis": 3, "times": [0.0, 1.0, 2.0],
                "files": {"input": "w0.npy", "output": "w.npy"}, "dtype": "float32",
                "fno_version": fno.__version__}
    assert {k: meta[k] for k in expected} == expected
    for name in ("w0.npy", "w.npy", "t.npy"):
        assert meta["sha256"][name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    w0, w, t = np.load(out / "w0.npy"), np.load(out / "w.npy"), np.load(out / "t.npy")
    assert w0.dtype == w.dtype == np.float32 and w0.shape == (2, 16, 16)
    assert w.shape == (2, 16, 16, 3) and t.tolist() == [0.0, 1.0, 2.0]
    np.testing.assert_array_equal(w[..., 0], w0)
    field = grf2d_periodic.sample_field(3, range(2), 16)
    np.testing.assert_array_equal(w0, field.astype(np.float32))
    modes = np.stack([grf2d_periodic.sample_modes(3, i) for i in range(2)])
    np.testing.assert_array_equal(w, navier_stokes.solve_modes(
        modes, resolution=16, solve_resolution=64, nu=1e-3, final_time=2.0).astype(np.float32))
    # The readers serve it as (w0, trajectory with time as the channel axis).
    source = sources.open_dataset(out, 8, grid_rank=2, grid="periodic")
    x, y = source.get_batch(np.array([1, 0]))
    assert source.out_channels == 3 and y.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(x, w0[[1, 0], ::2, ::2])
    np.testing.assert_array_equal(y, w[[1, 0], ::2, ::2])
    # The bytes do not depend on the chunking.
    again = navier_stokes.generate_dataset(tmp_path / "again", chunk_size=2, **TINY)
    for name in ("w0.npy", "w.npy", "t.npy", "meta.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fno.data.navier_stokes", *args],
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_writes_the_directory_and_refuses_bad_settings_in_one_line(tmp_path):
    out = tmp_path / "cli"
    done = run_cli(f"--output_dir={out}", "--num_samples=2", "--resolution=16",
                   "--final_time=2", "--nu=1e-3", "--seed=1")
    assert done.returncode == 0, done.stderr
    assert "ETA" in done.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["num_samples"] == 2 and np.load(out / "w.npy").shape == (2, 16, 16, 3)
    for args, match in [(["--nu=0"], "nu must be positive"),
                        (["--solve_resolution=40"], "must be a multiple of resolution"),
                        (["--final_time=2.5"], "not a multiple of record_every"),
                        (["--dt=0.5"], "unstable time step")]:
        bad = run_cli(f"--output_dir={tmp_path / 'bad'}", "--num_samples=1",
                      "--resolution=16", "--final_time=2", *args)
        assert bad.returncode == 1
        lines = bad.stderr.strip().splitlines()
        assert match in lines[-1] and lines[-1].startswith("fno.data.navier_stokes: ")
        assert not any("Traceback" in line for line in lines)
    assert sorted(os.listdir(tmp_path)) == ["cli"]
