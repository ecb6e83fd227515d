"""Using a trained model: fno.load, python -m fno.inference.{predict,evaluate,export}.

Each command runs as users run it (a subprocess with its flags); their numbers are checked
against what the training loop wrote to results.json, and the exported model against the
checkpoint in a process where fno (and flax, optax, orbax) cannot be imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

import fno
from fno.data import sources
from fno.training import loop
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]
NUM_TEST = 12  # configs/tiny.py


def command(tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs ``python -m fno.inference.<tool>`` as a user types it."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device, as on a user's laptop
    return subprocess.run([sys.executable, "-m", f"fno.inference.{tool}", *args],
                          cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=300)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr[-3000:]
    return errors[0]


def test_split(dataset: str, resolution: int,
               grid: str = "periodic") -> tuple[np.ndarray, np.ndarray]:
    source = sources.open_dataset(dataset, resolution, grid=grid)
    n = source.num_samples
    return source.get_batch(np.arange(n - NUM_TEST, n))


test_split.__test__ = False  # a helper, not a test


def rel_l2(pred: np.ndarray, target: np.ndarray) -> float:
    axes = tuple(range(1, target.ndim))
    return float(np.mean(np.sqrt(np.sum((pred - target) ** 2, axis=axes))
                         / np.sqrt(np.sum(target ** 2, axis=axes))))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A tiny model trained model-sharded on a (4, 2) mesh: loading must not depend on the
    topology that wrote the checkpoint."""
    workdir = tmp_path_factory.mktemp("trained")
    config = tiny_config(dataset, mode="mesh", mesh_shape=(4, 2), mesh_axes=("data", "model"),
                         model_sharding="model")
    loop.train_and_evaluate(config, str(workdir))
    return workdir


@pytest.fixture(scope="module")
def results(trained) -> dict:
    return json.loads((trained / "results.json").read_text())


def test_load_predicts_what_training_evaluated(trained, results, dataset):
    model = fno.load(str(trained))
    assert (model.step, model.resolution, model.grid_rank) == (12, 64, 1)
    for resolution, key in ((64, "test_rel_l2"), (128, "test_rel_l2_s128")):
        x, y = test_split(dataset, resolution)
        pred = model(x, batch_size=5)  # not a divisor of 12, nor of the 8 devices
        assert pred.shape == y.shape and pred.dtype == np.float32
        assert rel_l2(pred, y) == pytest.approx(results[key], rel=1e-5)
    np.testing.assert_allclose(model(x[3]), pred[3], rtol=1e-5, atol=1e-6)  # one sample


def test_predict_cli_at_the_input_resolution_and_subsampled(trained, results, dataset,
                                                            tmp_path):
    x128, y128 = test_split(dataset, 128)
    x64, y64 = test_split(dataset, 64)
    np.savez(tmp_path / "inputs.npz", a=x128)
    out = ok(command("predict", f"--workdir={trained}", f"--input={tmp_path}/inputs.npz",
                     f"--output={tmp_path}/pred.npz"))
    assert "predicted 12 sample(s) on a 128 grid" in out and "samples/s" in out
    with np.load(tmp_path / "pred.npz") as f:
        assert rel_l2(f["u"], y128) == pytest.approx(results["test_rel_l2_s128"], rel=1e-5)
    np.save(tmp_path / "inputs.npy", x128)
    ok(command("predict", f"--workdir={trained}", f"--input={tmp_path}/inputs.npy",
               f"--output={tmp_path}/pred64.mat", "--resolution=64", "--step=10"))
    import scipy.io

    pred64 = scipy.io.loadmat(tmp_path / "pred64.mat")["u"]
    at_step_10 = fno.load(str(trained), step=10)(x64)
    np.testing.assert_allclose(pred64, at_step_10, rtol=1e-5, atol=1e-6)
    assert rel_l2(pred64, y64) != pytest.approx(results["test_rel_l2"], rel=1e-3)  # step 10


def test_evaluate_cli_reproduces_results_json(trained, results, dataset, tmp_path):
    report = json.loads(ok(command("evaluate", f"--workdir={trained}")))
    for key in ("test_rel_l2", "test_mse", "test_rel_l2_s128", "test_mse_s128"):
        assert report[key] == pytest.approx(results[key], rel=1e-6)
    # Another file: here the test split saved as .npz, read whole.
    x, y = test_split(dataset, 128)
    np.savez(tmp_path / "other.npz", a=x, u=y)
    ok(command("evaluate", f"--workdir={trained}", f"--data={tmp_path}/other.npz",
               "--resolutions=64,128", f"--output={tmp_path}/metrics.json"))
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["samples"] == NUM_TEST
    assert written["test_rel_l2"] == pytest.approx(results["test_rel_l2"], rel=1e-5)
    assert written["test_rel_l2_s128"] == pytest.approx(results["test_rel_l2_s128"], rel=1e-5)


HIDE_FNO = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("fno", "flax", "optax", "orbax", "grain", "clu"):
            raise ModuleNotFoundError(f"hidden: {name}")
sys.meta_path.insert(0, Hide())
try:
    import fno
    raise SystemExit("fno is importable")
except ModuleNotFoundError:
    pass
import numpy as np
x = np.load(sys.argv[1])
"""


def run_exported(archive: Path, function: str, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    """The card's own usage snippet, in a fresh interpreter that cannot import fno."""
    card = json.loads(zipfile.ZipFile(archive).read("card.json"))
    usage = (card["usage"].replace('"model.fnox"', repr(str(archive)))
             .replace('"s1024.jaxexport"', repr(function)))
    np.save(tmp_path / "x.npy", x)
    script = HIDE_FNO + usage + "np.save(sys.argv[2], y)\n"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.npy"),
                             str(tmp_path / "y.npy")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(tmp_path / "y.npy")


def test_exported_model_runs_without_fno_and_equals_the_checkpoint(trained, results, dataset,
                                                                  tmp_path):
    archive = tmp_path / "model.fnox"
    out = ok(command("export", f"--workdir={trained}", f"--output={archive}"))
    assert "for cpu, cuda, tpu at resolution(s) 64, 128" in out
    card = json.loads(zipfile.ZipFile(archive).read("card.json"))
    model = fno.load(str(trained))
    assert card["architecture"]["parameters"] == sum(
        np.size(p) for p in jax.tree.leaves(model.state["params"]))
    assert card["trained"]["test_metrics"]["test_rel_l2"] == results["test_rel_l2"]
    assert set(card["functions"]) == {"s64.jaxexport", "s128.jaxexport"}
    for resolution in (64, 128):
        x, _ = test_split(dataset, resolution)
        for batch in (x[:3], x):  # the batch dimension is symbolic
            exported = run_exported(archive, f"s{resolution}.jaxexport", batch, tmp_path)
            np.testing.assert_allclose(exported, model(batch), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_fno2d_with_normaliser_loads_predicts_and_exports(darcy_dataset, tmp_path):
    """FNO-2D on a vertex grid with the point-wise normaliser: loaded and exported models
    reproduce the run's test error at the training and at the finer resolution."""
    from configs import tiny2d

    config = tiny2d.get_config()
    config.data.dir = darcy_dataset
    workdir = tmp_path / "run"
    results = loop.train_and_evaluate(config, str(workdir))
    model = fno.load(str(workdir))
    assert "normalizer" in model.state and model.data["grid"] == "vertex"
    archive = tmp_path / "darcy.fnox"
    ok(command("export", f"--workdir={workdir}", f"--output={archive}", "--platforms=cpu"))
    for resolution, key in ((17, "test_rel_l2"), (33, "test_rel_l2_s33")):
        x, y = test_split(darcy_dataset, resolution, grid="vertex")
        pred = model(x)
        assert rel_l2(pred, y) == pytest.approx(results[key], rel=1e-5)
        exported = run_exported(archive, f"s{resolution}.jaxexport", x, tmp_path)
        np.testing.assert_allclose(exported, pred, rtol=1e-5, atol=1e-6)


# --- user mistakes: one line, exit status 1, nothing overwritten ---------------------------
@pytest.mark.slow
def test_predict_mistakes_are_one_line(trained, dataset, tmp_path):
    x, _ = test_split(dataset, 64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "rank3.npy", x[:, None, :].repeat(2, axis=1))
    np.save(tmp_path / "coarse.npy", x[:, ::16])
    (tmp_path / "garbage.mat").write_bytes(b"not a MATLAB file at all" * 20)
    (tmp_path / "empty").mkdir()
    existing = tmp_path / "existing.npy"
    existing.write_bytes(b"keep me")
    good = [f"--workdir={trained}", f"--input={tmp_path}/x.npy"]
    cases = {
        "no such workdir": ["--workdir=/nonexistent/run", f"--input={tmp_path}/x.npy",
                            f"--output={tmp_path}/o.npy"],
        "no checkpoint in": [f"--workdir={tmp_path}/empty", f"--input={tmp_path}/x.npy",
                             f"--output={tmp_path}/o.npy"],
        "this model takes samples": [f"--workdir={trained}", f"--input={tmp_path}/rank3.npy",
                                     f"--output={tmp_path}/o.npy"],
        "too coarse": [f"--workdir={trained}", f"--input={tmp_path}/coarse.npy",
                       f"--output={tmp_path}/o.npy"],
        "does not divide": [*good, f"--output={tmp_path}/o.npy", "--resolution=48"],
        "not a readable .mat file": [f"--workdir={trained}",
                                     f"--input={tmp_path}/garbage.mat",
                                     f"--output={tmp_path}/o.npy"],
        "directory /nonexistent does not exist": [*good, "--output=/nonexistent/o.npy"],
        "exists; pass --overwrite": [*good, f"--output={existing}"],
        "unsupported format": [*good, f"--output={tmp_path}/o.txt"],
        "no checkpoint at step 7": [*good, f"--output={tmp_path}/o.npy", "--step=7"],
    }
    for expected, args in cases.items():
        line = one_error_line(command("predict", *args))
        assert expected in line, (expected, line)
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.slow
def test_evaluate_and_export_mistakes_are_one_line(trained, tmp_path):
    existing = tmp_path / "m.fnox"
    existing.write_bytes(b"keep me")
    (tmp_path / "m.fnox.json").write_bytes(b"keep me")
    cases = [
        ("evaluate", ["--workdir=/nonexistent/run"], "no such workdir"),
        ("evaluate", [f"--workdir={trained}", f"--data={tmp_path}/missing.npz"],
         "no such file or directory"),
        ("evaluate", [f"--workdir={trained}", "--resolutions=4"], "at least 8 points"),
        ("export", [f"--workdir={trained}", f"--output={existing}"],
         "exists; pass --overwrite"),
        ("export", [f"--workdir={trained}", f"--output={tmp_path}/m.zip"],
         "use one of .fnox"),
        ("export", [f"--workdir={trained}", f"--output={tmp_path}/n.fnox",
                        "--resolutions=64,x"], "expected integers"),
        ("evaluate", [f"--workdir={trained}", f"--output={existing}.json"],
         "exists; pass --overwrite"),
        ("export", [f"--workdir={trained}", f"--output={tmp_path}/n.fnox",
                        "--platforms=gpu"], "unknown gpu"),
    ]
    for module, args, expected in cases:
        line = one_error_line(command(module, *args))
        assert expected in line, (module, expected, line)
    assert existing.read_bytes() == b"keep me"
    assert (tmp_path / "m.fnox.json").read_bytes() == b"keep me"
