"""What every dataset generator promises, checked for each registered PDE: the same bytes
whatever the chunking, nothing left behind by a crash, existing data never replaced silently,
and the ``python -m fno.data.<pde>`` command line with progress and one-line refusals."""

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

import fno
from fno.data import burgers, darcy, grf, grf2d, grf2d_periodic, navier_stokes


@dataclasses.dataclass(frozen=True)
class Generator:
    module: ModuleType
    small: dict  # a few samples on a coarse grid
    solver: str  # the per-chunk solve a crash is injected into
    draw_inputs: Callable[[int, int, int], np.ndarray]  # (seed, n, s) -> the stored inputs
    cli_flags: tuple[str, ...] = ()  # settings that keep the command-line run small


GENERATORS = {
    "burgers": Generator(burgers, {"num_samples": 10, "resolution": 64, "seed": 3},
                         "solve_burgers", lambda seed, n, s: grf.sample_grf(seed, range(n), s)),
    "darcy": Generator(darcy, {"num_samples": 5, "resolution": 21, "seed": 3}, "solve_darcy",
                       lambda seed, n, s: darcy.coefficient(grf2d.sample_field(seed, range(n),
                                                                               s))),
    "navier_stokes": Generator(
        navier_stokes, {"num_samples": 3, "resolution": 16, "seed": 3, "final_time": 2.0},
        "solve_modes", lambda seed, n, s: grf2d_periodic.sample_field(seed, range(n), s),
        ("--final_time=2",)),
}


@pytest.fixture(params=sorted(GENERATORS))
def gen(request) -> Generator:
    return GENERATORS[request.param]


def read_bytes(path) -> dict[str, bytes]:
    return {name: (path / name).read_bytes() for name in (*os.listdir(path),)}


def test_output_is_byte_identical_across_chunk_sizes(gen, tmp_path):
    a = gen.module.generate_dataset(tmp_path / "a", chunk_size=2, **gen.small)
    b = gen.module.generate_dataset(tmp_path / "b", chunk_size=gen.small["num_samples"],
                                    **gen.small)
    assert read_bytes(a) == read_bytes(b)
    c = gen.module.generate_dataset(tmp_path / "c", **{**gen.small, "seed": 4})
    first = gen.module.FILES[0]
    assert read_bytes(c)[first] != read_bytes(a)[first]


def test_failure_leaves_nothing(gen, tmp_path, monkeypatch):
    calls = []
    real = getattr(gen.module, gen.solver)

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(gen.module, gen.solver, flaky)
    with pytest.raises(RuntimeError, match="simulated"):
        gen.module.generate_dataset(tmp_path / "ds", chunk_size=2, **gen.small)
    assert len(calls) == 2 and os.listdir(tmp_path) == []


def test_existing_data_is_never_replaced_silently(gen, tmp_path):
    out = gen.module.generate_dataset(tmp_path / "ds", **gen.small)
    before = read_bytes(out)
    with pytest.raises(FileExistsError, match="already holds"):
        gen.module.generate_dataset(out, **{**gen.small, "seed": 9})
    assert read_bytes(out) == before
    gen.module.generate_dataset(out, overwrite=True, **{**gen.small, "seed": 9})
    first = gen.module.FILES[0]
    assert read_bytes(out)[first] != before[first]
    assert sorted(os.listdir(tmp_path)) == ["ds"]

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        gen.module.generate_dataset(foreign, **gen.small)
    assert (foreign / "keep.txt").read_text() == "mine"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert (gen.module.generate_dataset(empty, **gen.small) / "meta.json").exists()


def test_cli(gen, tmp_path):
    out = tmp_path / "cli"
    n, s, seed = 3, gen.small["resolution"], gen.small["seed"]
    cmd = [sys.executable, "-m", gen.module.__name__, f"--output_dir={out}",
           f"--num_samples={n}", f"--resolution={s}", f"--seed={seed}", "--chunk_size=2",
           *gen.cli_flags]
    root = os.path.dirname(os.path.dirname(os.path.abspath(fno.__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "samples/s" in done.stderr and "ETA" in done.stderr
    np.testing.assert_array_equal(np.load(out / gen.module.FILES[0]),
                                  gen.draw_inputs(seed, n, s).astype(np.float32))
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "already holds" in again.stderr.strip().splitlines()[-1]
