"""benchmarks/accelerator_check.py runs end to end (here on the CPU, in its --quick shapes)
and writes one JSON with every section, through benchmarks/step_timing.py's step runner (the
training loop's own set-up)."""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_accelerator_check_writes_every_section(tmp_path):
    out = tmp_path / "check.json"
    # One device, as on a one-GPU machine (the suite's conftest forces eight).
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(FNO_DATA_DIR=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "benchmarks/accelerator_check.py", "--quick",
                           f"--output={out}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["quick"] and result["matmul_gflop_s"] > 0
    assert set(result["section_wall_s"]) == {"modes", "spectral", "dtype", "sweep",
                                             "navier_stokes", "memory"}
    ns = result["navier_stokes"]
    assert {"fno2d_scan", "fno2d_unrolled", "fno3d"} <= set(ns)
    assert all(ns[name]["ms_per_step"] > 0 for name in ("fno2d_scan", "fno2d_unrolled", "fno3d"))
    for name in ("burgers_s1024", "darcy_s85"):
        rows = result["modes"][name]["modes"]
        assert [r["mode"] for r in rows] == ["basic", "scan", "pmap", "pmap_scan", "mesh",
                                             "mesh_scan"]
        assert all(r["ms_per_step"] > 0 and r["fraction_of_matmul_rate"] > 0 for r in rows)
        assert set(result["spectral"][name]) == {"fft", "dft"}
        assert set(result["dtype"]["step_ms"][name]) == {"float32", "bfloat16"}
    for dtype in ("float32", "bfloat16"):
        run = result["dtype"][f"short_run_{dtype}"]
        assert run["steps"] > 0 and math.isfinite(run["test_rel_l2"])
    (row,) = result["sweep"]["batches"]
    assert [p["k"] for p in row["points"]] == [1, 2]
    assert math.isfinite(row["t_dev_ms"]) and math.isfinite(row["t_sync_ms"])
    assert "device_peak_mb" in result["memory"]
