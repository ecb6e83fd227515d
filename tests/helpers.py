"""Small in-memory stand-ins shared by the tests."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from configs import tiny
from fno.training import loop


class InMemorySource:
    """A source with the ArraySource batch interface over numpy arrays."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x.astype(np.float32), y.astype(np.float32)

    def __len__(self) -> int:
        return len(self.x)

    def get_batch(self, indices):
        return self.x[indices], self.y[indices]


def smooth_pairs(num: int, resolution: int, seed: int = 0) -> InMemorySource:
    """Random band-limited u0 and a smooth nonlinear target: enough to train on."""
    rng = np.random.default_rng(seed)
    grid = np.arange(resolution) / resolution
    k = np.arange(1, 6)
    coeffs = rng.normal(size=(num, 5, 2)) / k[None, :, None] ** 2
    u0 = (coeffs[..., 0] @ np.cos(2 * np.pi * np.outer(k, grid))
          + coeffs[..., 1] @ np.sin(2 * np.pi * np.outer(k, grid)))
    u1 = np.tanh(np.roll(u0, resolution // 8, axis=1)) + 0.1
    return InMemorySource(u0, u1)


def tiny_config(dataset: str, **overrides):
    """configs/tiny.py on `dataset`, with dotted-key overrides (e.g. model.width=12)."""
    config = tiny.get_config()
    config.data.dir = dataset
    return with_overrides(config, overrides)


def with_overrides(config, overrides: dict):
    """``config`` with dotted-key overrides applied, e.g. ``{"model.width": 12}``."""
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return config


def params_of(workdir) -> list[np.ndarray]:
    """Parameters of the latest checkpoint in `workdir`, as a list of numpy arrays."""
    return jax.tree.leaves(loop.final_params(str(workdir)))


def assert_same(a, b, rtol=0.0):
    """Equal bitwise (rtol=0) or to a relative tolerance of the largest value."""
    for x, y in zip(a, b, strict=True):
        if rtol == 0.0:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max())


def smooth_fields_2d(num: int, resolution: int, seed: int = 0) -> InMemorySource:
    """The 2D counterpart of :func:`smooth_pairs`: band-limited fields and a smooth
    nonlinear, shifted target on a ``resolution`` x ``resolution`` grid."""
    rng = np.random.default_rng(seed)
    grid = np.arange(resolution) / resolution
    k = np.arange(1, 4)
    basis = np.concatenate([np.cos(2 * np.pi * np.outer(k, grid)),
                            np.sin(2 * np.pi * np.outer(k, grid))])  # [6, s]
    coeffs = rng.normal(size=(num, 6, 6)) / np.add.outer(k, k).repeat(2, 0).repeat(2, 1)
    a = np.einsum("nij,ix,jy->nxy", coeffs, basis, basis)
    u = np.tanh(np.roll(a, resolution // 8, axis=(1, 2))) + 0.1
    return InMemorySource(a, u)


def tiny_config_2d(**overrides):
    """configs/tiny2d.py (FNO-2D on Darcy-shaped data) with dotted-key overrides."""
    from configs import tiny2d

    return with_overrides(tiny2d.get_config(), overrides)


def covariance_z_scores(samples: np.ndarray,
                        exact: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-mean samples ``[n, points]`` against their exact covariance: the z-score of every
    entry of the sample covariance and of every pointwise mean (Gaussian standard errors),
    and the sample covariance itself. The random-field tests bound both z-scores."""
    n = len(samples)
    empirical = samples.T @ samples / n
    var = np.diag(exact)
    stderr = np.sqrt((np.outer(var, var) + exact**2) / n)
    return (np.abs(empirical - exact) / stderr, np.abs(samples.mean(axis=0)) / np.sqrt(var / n),
            empirical)


ROOT = Path(__file__).resolve().parents[1]


def run_main(workdir, *args, config: str | None = None, devices: int = 8, env=None,
             timeout: int = 300) -> subprocess.CompletedProcess:
    """main.py as a user runs it: a subprocess on ``devices`` forced CPU devices, with
    ``configs/<config>`` unless ``args`` name one."""
    full_env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                    JAX_PLATFORMS="cpu", **(env or {}))
    cmd = [sys.executable, str(ROOT / "main.py"), f"--workdir={workdir}",
           *([f"--config={ROOT}/configs/{config}"] if config else []), *args]
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
