"""A PDE is an addition in one place: this file adds one the way a user does.

A 1D heat equation (a generator written through fno.data.dataset_dir, one ``Problem`` in
fno.registry.PROBLEMS, a config from configs/tiny.py with ``data.name`` switched) trains
through the real loop and is read with its registered grid kind (vertex) and its own array
names; an extension's mistakes are one line and leave nothing in the cache; ``data.generate``
follows ``data.name`` on the command line; and the trained model loads, predicts and
evaluates in a fresh process where the heat problem is not registered.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import fno
from configs import tiny
from fno import configuration, registry
from fno.data import dataset_dir, datasets, sources
from fno.errors import FnoError
from fno.training import loop

ROOT = Path(__file__).resolve().parents[1]
HEAT_FILES = ("h0.npy", "h1.npy")


def generate_heat(output_dir, *, num_samples: int, resolution: int, seed: int, nu: float,
                  t_final: float, chunk_size: int = 64, overwrite: bool = False) -> Path:
    """u_t = nu u_xx on [0, 1] with u = 0 at both ends, solved exactly: sine mode k decays
    by exp(-nu (pi k)^2 t). Vertex grid x_i = i / (S - 1); sample i from
    default_rng([seed, i]). meta.json records every setting but ``seed``."""
    if not (nu > 0 and t_final > 0) or resolution < 3:
        raise ValueError(f"need nu, t_final > 0 and resolution >= 3, got {nu}, {t_final}, "
                         f"{resolution}")
    k = np.arange(1, 9)
    basis = np.sin(np.pi * np.outer(k, np.linspace(0.0, 1.0, resolution)))
    decay = np.exp(-nu * (np.pi * k) ** 2 * t_final)

    def solve(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        b = np.stack([np.random.default_rng([seed, i]).standard_normal(k.size) / k
                      for i in range(start, stop)])
        return b @ basis, (b * decay) @ basis

    meta = {"pde": "heat", "num_samples": num_samples, "resolution": resolution, "nu": nu,
            "t_final": t_final}
    return dataset_dir.write_dataset(output_dir, files=HEAT_FILES,
                                     shape=(num_samples, resolution), solve=solve, meta=meta,
                                     chunk_size=chunk_size, overwrite=overwrite)


HEAT = registry.Problem(
    grid_rank=1, grid="vertex", generate=generate_heat,
    settings={"num_samples": 40, "resolution": 65, "seed": 0, "nu": 0.05, "t_final": 0.1},
    meta_keys=("num_samples", "resolution", "nu", "t_final"),
    cache_name=lambda g: f"heat_n{g.num_samples}_s{g.resolution}_nu{g.nu:g}_seed{g.seed}")


def heat_config():
    """configs/tiny.py switched to the heat problem, on its vertex grid (65 -> 33)."""
    config = tiny.get_config()
    config.data.name = "heat"
    config.data.generate.resolution = 65  # tiny.py's 128 is no vertex grid with a 64 subgrid
    config.data.resolution = 33
    config.data.eval_resolutions = (65,)
    config.num_plot_samples = 0
    return config


def cache_entries(cache: Path) -> list[str]:
    """What a run left in the cache, apart from the lock files of the host lock."""
    return sorted(n for n in os.listdir(cache) if not n.endswith(".lock")) if cache.exists() else []


@pytest.fixture(scope="module")
def heat_run(tmp_path_factory):
    """The heat problem registered, generated into a fresh cache and trained (tiny.py's 12
    steps); the registration is gone again afterwards."""
    root = tmp_path_factory.mktemp("heat")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.PROBLEMS, "heat", HEAT)
        patch.setenv("FNO_DATA_DIR", str(root / "cache"))
        config = heat_config()
        results = loop.train_and_evaluate(config, str(root / "run"))
    return root, results


def test_a_registered_pde_trains_on_its_grid_and_files(heat_run):
    root, results = heat_run
    # One dataset in the cache, named by the registration, its arrays named in meta.json.
    assert cache_entries(root / "cache") == ["heat_n48_s65_nu0.05_seed0"]
    meta = json.loads((root / "cache" / "heat_n48_s65_nu0.05_seed0" / "meta.json").read_text())
    assert meta["files"] == {"input": "h0.npy", "output": "h1.npy"}
    # Read on the registered vertex grid: 33 and 65 are its subgrids (on a periodic grid 33
    # does not divide 65), with the generator's own array names.
    assert results["step"] == 12 and np.isfinite(results["test_rel_l2_s65"])
    model = fno.load(str(root / "run"))
    assert model.data["grid"] == "vertex" and model.data["arrays"] == list(HEAT_FILES)
    assert model.data["test_resolutions"] == [33, 65]


MISTAKES = {
    # registration, config change, the error's words
    "no cache_name": ({"cache_name": None}, {}, "PROBLEMS['heat'].cache_name is not set"),
    "meta key not a setting": ({"meta_keys": (*HEAT.meta_keys, "kappa")}, {},
                               "meta_keys names kappa, not among its settings"),
    "meta key the generator does not write": (
        {"meta_keys": (*HEAT.meta_keys, "seed")}, {},
        "meta_keys names seed, which its generator does not write to meta.json"),
    "another problem's setting": ({}, {"a_neg": 4.0},
                                  "config.data.generate.a_neg=4.0 is not a setting of problem "
                                  "'heat'; its settings are num_samples, resolution, seed, nu, "
                                  "t_final"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_extension_mistakes_are_one_line_and_cache_nothing(mistake, tmp_path, monkeypatch):
    registration, generate, words = MISTAKES[mistake]
    cache = tmp_path / "cache"
    monkeypatch.setenv("FNO_DATA_DIR", str(cache))
    monkeypatch.setitem(registry.PROBLEMS, "heat", dataclasses.replace(HEAT, **registration))
    config = heat_config()
    for key, value in generate.items():
        config.data.generate[key] = value
    with pytest.raises(FnoError) as info:
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert words in str(info.value) and "\n" not in str(info.value)
    assert cache_entries(cache) == []  # no dataset, no half-written or staged copy
    assert not (tmp_path / "run" / "checkpoints").exists()


def parse(*overrides: str):
    """The config as main.py parses it (ml_collections config_flags, locked)."""
    argv = ["main.py", f"--config={ROOT}/configs/tiny.py", *overrides]
    holder = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=holder, lock_config=True,
                                    sys_argv=argv)
    holder(argv)
    return holder.config


def test_generate_settings_follow_the_problem_chosen_on_the_command_line():
    burgers = parse()
    assert registry.generate_settings(burgers)["nu"] == 0.1
    config = parse("--config.data.name=darcy", "--config.model.name=fno2d",
                   "--config.data.generate.resolution=33", "--config.data.resolution=17",
                   "--config.data.eval_resolutions=33", "--config.data.generate.a_neg=4")
    configuration.validate(config)
    # Darcy's defaults, tiny.py's sample count, the command line's resolution and a_neg.
    assert registry.generate_settings(config) == {
        "num_samples": 48, "resolution": 33, "seed": 0, "a_pos": 12.0, "a_neg": 4.0}
    assert os.path.basename(datasets.default_data_dir(config)) == "darcy_n48_s33_psi12-4_seed0"
    with pytest.raises(FnoError, match=r"^config.data.generate.nu=0.05 is not a setting of "
                                       r"problem 'darcy'; its settings are num_samples, "
                                       r"resolution, seed, a_pos, a_neg$"):
        configuration.validate(parse("--config.data.name=darcy", "--config.model.name=fno2d",
                                     "--config.data.generate.resolution=33",
                                     "--config.data.resolution=17",
                                     "--config.data.eval_resolutions=33",
                                     "--config.data.generate.nu=0.05"))
    with pytest.raises(FnoError, match="resolution 64 is not a subgrid of the vertex grid"):
        configuration.validate(parse("--config.data.name=darcy", "--config.model.name=fno2d",
                                     "--config.data.generate.resolution=33"))


def test_main_trains_the_problem_chosen_on_the_command_line(tmp_path):
    """configs/tiny.py is Burgers'; naming Darcy and its resolution is all it takes."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_PLATFORMS="cpu", FNO_DATA_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), f"--workdir={tmp_path / 'run'}",
         f"--config={ROOT}/configs/tiny.py", "--config.data.name=darcy",
         "--config.model.name=fno2d", "--config.data.generate.resolution=17",
         "--config.data.resolution=9", "--config.data.eval_resolutions=17",
         "--config.num_train_steps=2", "--config.num_plot_samples=0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert cache_entries(tmp_path / "cache") == ["darcy_n48_s17_psi12-3_seed0"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert np.isfinite(results["test_rel_l2_s17"])


PORTABLE = """
import sys
import numpy as np
from absl import flags
from fno import registry
assert "heat" not in registry.PROBLEMS
import fno
from fno.inference import evaluate
workdir, x, y, data = sys.argv[1:]
model = fno.load(workdir)
np.save(y, model(np.load(x)))
for args in ([], [f"--data={data}", "--split=test", "--resolutions=33,65"]):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["evaluate", f"--workdir={workdir}", *args])
    evaluate.main()  # prints its report
"""


def test_trained_model_loads_predicts_and_evaluates_where_its_problem_is_not_registered(
        heat_run, tmp_path):
    """In a fresh process without the heat problem: fno.load and prediction, evaluation on
    the run's own test split (reopened as the checkpoint recorded it) and on the dataset
    passed as --data (read with the recorded grid kind and array names)."""
    root, results = heat_run
    data = root / "cache" / "heat_n48_s65_nu0.05_seed0"
    source = sources.open_dataset(data, 65, grid="vertex").subset(-12, None)
    x, _ = source.get_batch(np.arange(len(source)))
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    env.pop("FNO_DATA_DIR", None)
    done = subprocess.run([sys.executable, "-c", PORTABLE, str(root / "run"),
                           str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), str(data)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), fno.load(str(root / "run"))(x),
                               rtol=1e-5, atol=1e-6)
    reports = [json.loads(line) for line in done.stdout.strip().splitlines()[-2:]]
    for report in reports:
        for key in ("test_rel_l2", "test_rel_l2_s65"):
            assert report[key] == pytest.approx(results[key], rel=1e-5)
