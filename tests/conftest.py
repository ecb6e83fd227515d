"""Test wiring: 8 forced CPU devices, set before JAX initialises its backend."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")


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
    from fno.data import darcy

    gen = tiny2d.get_config().data.generate
    path = tmp_path_factory.mktemp("data") / "darcy_tiny"
    darcy.generate_dataset(str(path), **gen.to_dict())
    return str(path)
