"""Spatial and temporal self-convergence of the 2D Navier–Stokes solver on the paper's presets.

    python benchmarks/navier_stokes_convergence.py [--presets=1e-3,1e-4,1e-5] [--fields=2]
        [--parts=grids,finer,schemes] [--finer_horizon=5] [--finer_grids=128,256,512]
        [--output=benchmarks/results/navier_stokes_convergence.json]

For each preset (nu = 1e-3 to T = 50, 1e-4 to T = 30, 1e-5 to T = 20) the first ``--fields``
initial fields of seed 0 are solved on 64, 128 and 256 points with the CFL rule's default
target (``cfl`` 0.5) and half of it (dt / 2), and the stored 64 x 64 snapshots t = 1 .. T are
compared with the finest solve (256 points, cfl 0.5; its time step equals the 128-point solve
at cfl 0.25, so the 128 pair shows how far from time-converged it is). Relative L2 errors are
per field, the worst snapshot ("max_over_time") and the last ("final"). Seconds per trajectory
are wall time on this machine (batched over the fields, compilation excluded). Then one field
is solved on finer grids (``--finer_grids``, default 512 points) to bound the 256-point
reference's own error, on a horizon (``--finer_horizon``) shortened where the full one would
take too long (labelled in the JSON), and (nu = 1e-3) the released generator's scheme
(Crank–Nicolson + explicit Euler, dt = 1e-4) is compared with ETDRK4 on 64 points. Results
are merged into ``--output`` per preset and part (``--parts``: grids, finer, schemes), so they
can be run one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fno.data import grf2d_periodic as grf  # noqa: E402
from fno.data import vorticity as ns  # noqa: E402

STORED = 64
RUNS = ((64, 0.5), (64, 0.25), (128, 0.5), (128, 0.25), (256, 0.5))  # the last: reference


def rel_l2(w: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Relative L2 error per field and snapshot, [B, T]: snapshots 1 .. T of [B, S, S, T + 1]."""
    return (np.linalg.norm(w[..., 1:] - ref[..., 1:], axis=(1, 2))
            / np.linalg.norm(ref[..., 1:], axis=(1, 2)))


def summary(err: np.ndarray) -> dict:
    return {"max_over_time": err.max(axis=1).tolist(), "final": err[:, -1].tolist()}


def solve(modes: np.ndarray, *, n: int, nu: float, final_time: float, warm: bool = True,
          **kw) -> tuple[np.ndarray, dict]:
    """Snapshots on the 64-point grid, with timings and the solver's diagnostics."""
    common = {"resolution": STORED, "solve_resolution": n, "nu": nu, "batch_size": len(modes)}
    if warm:  # compile outside the timing
        ns.solve_modes(modes, final_time=1.0, **common, **kw)
    stats: dict = {}
    t0 = time.perf_counter()
    w = ns.solve_modes(modes, final_time=final_time, stats=stats, **common, **kw)
    seconds = time.perf_counter() - t0
    info = {"solve_resolution": n, **kw,
            "seconds_per_trajectory": seconds / len(modes),
            "steps_per_trajectory": stats["steps"].tolist(),
            "mean_dt": (final_time / stats["steps"]).tolist(),
            "max_speed": stats["max_speed"].tolist(), "max_cfl": stats["max_cfl"].tolist(),
            "max_outer_band_share": stats["max_tail"].tolist()}
    print(f"  n={n} {kw}: {seconds:.1f} s for {len(modes)}, steps {stats['steps'].tolist()}",
          flush=True)
    return w, info


def grids(nu: float, modes: np.ndarray) -> dict:
    """64 / 128 / 256 points at cfl 0.5 and 0.25 over the preset's horizon."""
    final_time = ns.PRESETS[nu]
    runs = [solve(modes, n=n, nu=nu, final_time=final_time, cfl=cfl) for n, cfl in RUNS]
    ref = runs[-1][0]
    f32 = rel_l2(ref.astype(np.float32).astype(np.float64), ref)
    return {"final_time": final_time, "stored_resolution": STORED,
            "fields": {"seed": 0, "indices": list(range(len(modes)))},
            "reference": {"solve_resolution": RUNS[-1][0], "cfl": RUNS[-1][1]},
            "float32_storage_rel_l2": summary(f32),
            "settings": [{**info, "rel_l2_vs_reference": summary(rel_l2(w, ref))}
                         for w, info in runs]}


def finer(nu: float, modes: np.ndarray, horizon: float, grids: list[int]) -> dict:
    """Coarser grids against the finest of ``grids`` (default 512 points), the first field
    only, on a horizon that may be shorter than the preset's (labelled)."""
    horizon = min(horizon, ns.PRESETS[nu])
    one = modes[:1]
    fine = {n: solve(one, n=n, nu=nu, final_time=horizon, cfl=0.5) for n in grids}
    best = max(grids)
    label = (f"full horizon T={horizon:g}" if horizon == ns.PRESETS[nu] else
             f"shortened horizon T={horizon:g} (the preset's is {ns.PRESETS[nu]:g})")
    return {"horizon": horizon, "reference_resolution": best,
            "label": f"{label}, field 0 only, reference {best} points",
            "settings": [{**info, f"rel_l2_vs_{best}": summary(rel_l2(w, fine[best][0]))}
                         for w, info in fine.values()]}


def schemes(nu: float, modes: np.ndarray, horizon: float = 5.0) -> dict:
    """The released scheme (cn_euler) against ETDRK4 on 64 points, short horizon."""
    ref, _ = solve(modes, n=64, nu=nu, final_time=horizon, cfl=0.0625)
    rows = []
    for kw in ({"cfl": 0.5}, {"cfl": 0.25}, {"scheme": "cn_euler", "dt": 1e-3},
               {"scheme": "cn_euler", "dt": 1e-4}):
        w, info = solve(modes, n=64, nu=nu, final_time=horizon, **kw)
        rows.append({**info, "rel_l2_vs_etdrk4_cfl0.0625": summary(rel_l2(w, ref))})
    return {"horizon": horizon, "solve_resolution": 64, "settings": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="1e-3,1e-4,1e-5")
    parser.add_argument("--fields", type=int, default=2)
    parser.add_argument("--parts", default="grids,finer,schemes")
    parser.add_argument("--finer_horizon", type=float, default=5.0)
    parser.add_argument("--finer_grids", default="128,256,512")
    parser.add_argument("--output", default=str(
        ROOT / "benchmarks" / "results" / "navier_stokes_convergence.json"))
    args = parser.parse_args()
    out = pathlib.Path(args.output)
    results = json.loads(out.read_text()) if out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(),
                          "note": "shared 2-core CPU (other jobs running); wall time, float64, "
                                  "JAX on CPU"}
    for text in args.presets.split(","):
        nu = float(text)
        if nu not in ns.PRESETS:
            raise SystemExit(f"unknown preset nu={text}; expected one of {list(ns.PRESETS)}")
        modes = np.stack([grf.sample_modes(0, i) for i in range(args.fields)])
        entry = results.setdefault(f"nu={nu:g}", {})
        entry.update(nu=nu, final_time=ns.PRESETS[nu],
                     default_solve_resolution=ns.default_solve_resolution(nu, STORED))
        for part in args.parts.split(","):
            print(f"nu={nu:g}: {part}", flush=True)
            load = os.getloadavg()[0]
            if part == "grids":
                entry[part] = grids(nu, modes)
            elif part == "finer":
                entry[part] = finer(nu, modes, args.finer_horizon,
                                    [int(n) for n in args.finer_grids.split(",")])
            elif part == "schemes":
                entry[part] = schemes(nu, modes)
            else:
                raise SystemExit(f"unknown part {part!r}; expected grids, finer, schemes")
            entry[part]["load_average_at_start"] = load
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1) + "\n")
            print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
