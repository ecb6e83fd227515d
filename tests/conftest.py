"""Test wiring: 8 forced CPU devices, set before JAX initialises its backend."""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent XLA compilation cache per test run, shared with every process the tests start
# (main.py, launchers, multi-process peers): most of the suite's time is compiling the same
# small programs again in each new process. FNO_TEST_COMPILATION_CACHE=0 turns it off.
if (os.environ.get("FNO_TEST_COMPILATION_CACHE", "1") != "0"
        and "JAX_COMPILATION_CACHE_DIR" not in os.environ):
    _cache = tempfile.mkdtemp(prefix="fno-tests-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> str:
    """A small generated Burgers dataset matching configs/tiny.py, made once per session."""
    from configs import tiny
    from fno.data import burgers

    gen = tiny.get_config().data.generate
    path = tmp_path_factory.mktemp("data") / "burgers_tiny"
    burgers.generate_dataset(str(path), num_samples=gen.num_samples,
                             resolution=gen.resolution, seed=gen.seed, nu=gen.nu,
                             t_final=gen.t_final)
    return str(path)


@pytest.fixture(scope="session")
def darcy_dataset(tmp_path_factory) -> str:
    """A small generated Darcy dataset matching configs/tiny2d.py, made once per session."""
    from configs import tiny2d
    from fno import registry
    from fno.data import darcy

    settings = registry.generate_settings(tiny2d.get_config())  # Darcy's, not every problem's
    path = tmp_path_factory.mktemp("data") / "darcy_tiny"
    darcy.generate_dataset(str(path), **settings)
    return str(path)


@pytest.fixture(scope="session")
def navier_stokes_dataset(tmp_path_factory) -> str:
    """A small generated Navier-Stokes dataset matching configs/tiny_ns.py, made once."""
    from configs import tiny_ns
    from fno import registry
    from fno.data import navier_stokes

    settings = registry.generate_settings(tiny_ns.get_config())
    path = tmp_path_factory.mktemp("data") / "navier_stokes_tiny"
    navier_stokes.generate_dataset(str(path), **settings)
    return str(path)
