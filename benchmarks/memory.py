"""Per-device memory of the compiled train step under data, model and spatial sharding.

    python benchmarks/memory.py --output benchmarks/results/memory.json

Compiles (never runs) the mesh-mode train step of the paper's FNO (modes 16, 4 layers,
projection 128; batch 16 so every data-axis size divides it) at width 64/256/1024 and
s = 8192 / 2^16 / 2^20 on 8 forced CPU devices, for meshes 8x1, 4x2, 2x4, 1x8 and reads
``compiled.memory_analysis()``. Layouts on a DxN mesh ('data' x 'x'):

* ``data``: batch over 'data' only; 'x' holds N replicas (the 1x8 row is one device's load);
* ``model``: channels (parameters, Adam moments, activations) sharded over 'x';
* ``spatial``: the grid axis of batches and activations sharded over 'x'.

Ratios are to the ``data`` layout on the same mesh (same per-device batch), so they show
what sharding over 'x' saves: ideally 1/N. Buffers are XLA:CPU's; other backends fuse and
schedule differently (XLA:CPU has no reduce-scatter, which inflates model-sharded temps).
A second table compares the FFT and truncated-DFT spectral paths under spatial sharding.

``--sections=darcy`` does the same for the paper's FNO-2D (width 32, 12 x 12 modes, batch 16)
at s = 421 and 1024: data and model sharding, spatial sharding of the first grid axis on the
2-axis meshes, and of both grid axes on 3-axis meshes ('data' x 'x' x 'y'). Spatial sharding
needs a grid the axis divides, so its "421" rows compile s = 424 (421 rounded up to a
multiple of 8; the ``s`` field says which).

``--sections=ns3d`` compiles FNO-3D over space and time (configs/ns_paper.py:3d, the DFT path)
at 64 x 64 x 40 and 256 x 256 x 80 under data, model and spatial (x; x and y) sharding: what
"my FNO-3D does not fit one device" comes to per device.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from configs import darcy_quick, default  # noqa: E402
from fno.parallel import sharding
from fno.training import setup  # noqa: E402

MESHES = ((8, 1), (4, 2), (2, 4), (1, 8))
LAYOUTS = ("data", "model", "spatial")
DEVICE_BYTES = 16 * 2**30
MiB = 2**20


def make_config(width: int, s: int, mesh: tuple[int, ...], layout: str, batch: int,
                impl: str = "auto", model: str = "fno1d"):
    config = default.get_config()
    if model == "fno2d":
        darcy_quick.darcy_data(config, num_samples=1100)
        config.loss_reduction = "sum"
    config.mode = "mesh"
    config.batch_size = batch
    config.model.width = width
    config.model.spectral_impl = impl
    config.data.resolution = s
    config.mesh_shape, config.mesh_axes = mesh, ("data", "x", "y")[:len(mesh)]
    config.model_sharding = "x" if layout == "model" else ""
    config.spatial_sharding = {"spatial": "x", "spatial_xy": "x,y"}.get(layout, "")
    return config


def compile_step(config) -> tuple[Any, dict[str, float]]:
    """The compiled train step on abstract inputs (no parameter is ever allocated), built by
    the loop's own set-up (fno.training.setup)."""
    run = setup.build(config, steps_per_epoch=50, abstract=True)
    state = run.state
    shardings = jax.tree.map(lambda x: x.sharding, state)
    batch = {k: jax.ShapeDtypeStruct(shape, jnp.float32, sharding=run.strategy.layout
                                     .batch_sharding(shape, stacked=False))
             for k, shape in zip(("x", "y"), run.batch_shapes(), strict=True)}
    start = time.perf_counter()
    compiled = run.strategy.jit_train(run.train_step, state).lower(state, batch).compile()
    seconds = time.perf_counter() - start
    m = compiled.memory_analysis()
    sizes = {
        "params": sharding.shard_bytes(state["params"], shardings["params"]),
        "state": sharding.shard_bytes(state, shardings),
        "argument": m.argument_size_in_bytes,
        "output": m.output_size_in_bytes,
        "alias": m.alias_size_in_bytes,
        "temp": m.temp_size_in_bytes,
    }
    # Donated state is aliased to the new state: count it once.
    sizes["total"] = sizes["argument"] + sizes["output"] - sizes["alias"] + sizes["temp"]
    return compiled, {**sizes, "compile_s": round(seconds, 2)}


def collectives(compiled) -> dict[str, int]:
    text = compiled.as_text()
    return {op: text.count(f" {op}(") + text.count(f" {op}-start(")
            for op in ("all-gather", "all-reduce", "all-to-all", "fft")}


def sweep(widths, resolutions, batch: int, max_compile_s: float) -> list[dict[str, Any]]:
    rows, slow = [], set()
    for width in widths:
        for s in resolutions:
            for mesh in MESHES:
                for layout in LAYOUTS:
                    if layout != "data" and mesh[1] == 1:
                        continue  # a 1-device 'x' axis shards nothing: same as 'data'
                    key = (width, mesh, layout)
                    row = {"width": width, "s": s, "mesh": f"{mesh[0]}x{mesh[1]}",
                           "layout": layout, "batch": batch}
                    if key in slow:
                        rows.append({**row, "skipped": f"compile of a smaller s took more "
                                                       f"than {max_compile_s:.0f} s"})
                        continue
                    _, sizes = compile_step(make_config(width, s, mesh, layout, batch))
                    if sizes["compile_s"] > max_compile_s:
                        slow.add(key)
                    rows.append({**row, **sizes})
                    print(f"  w={width} s={s} {row['mesh']} {layout}: "
                          f"total {sizes['total'] / MiB:.0f} MiB ({sizes['compile_s']} s)",
                          flush=True)
    _add_ratios(rows)
    return rows


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    base = {(r["width"], r["s"], r["mesh"]): r for r in rows
            if r["layout"] == "data" and "total" in r}
    for r in rows:
        b = base.get((r["width"], r["s"], r["mesh"]))
        if b is None or "total" not in r:
            continue
        for key in ("params", "state", "temp", "total"):
            r[f"{key}_ratio"] = round(r[key] / b[key], 3)


def largest_fit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mesh, layout and width: the largest measured s whose step fits 16 GiB, and the
    s at which a straight line through the two largest measured s reaches 16 GiB."""
    out = []
    groups: dict[tuple, list] = {}
    for r in rows:
        if "total" in r:
            groups.setdefault((r["mesh"], r["layout"], r["width"]), []).append(r)
    for (mesh, layout, width), rs in groups.items():
        rs.sort(key=lambda r: r["s"])
        fits = [r["s"] for r in rs if r["total"] <= DEVICE_BYTES]
        entry = {"mesh": mesh, "layout": layout, "width": width,
                 "largest_measured_s": max(fits) if fits else None}
        if len(rs) >= 2:
            (s0, t0), (s1, t1) = [(r["s"], r["total"]) for r in rs[-2:]]
            slope = (t1 - t0) / (s1 - s0)
            if slope > 0:
                s_max = s0 + (DEVICE_BYTES - t0) / slope
                entry["extrapolated_max_s"] = 2 ** int(math.log2(s_max)) if s_max >= 1 else 0
        out.append(entry)
    return out


def fft_vs_dft(batch: int) -> list[dict[str, Any]]:
    """Width 64 on 1x8: the 'data' baseline and spatial sharding with each spectral path."""
    rows = []
    for s in (8192, 65536, 2**20):
        for layout, impl in (("data", "fft"), ("spatial", "fft"), ("spatial", "dft")):
            compiled, sizes = compile_step(make_config(64, s, (1, 8), layout, batch, impl))
            rows.append({"width": 64, "s": s, "mesh": "1x8", "layout": layout, "impl": impl,
                         **sizes, **collectives(compiled)})
            print(f"  s={s} {impl} {layout}: temp {sizes['temp'] / MiB:.0f} MiB", flush=True)
    return rows


DARCY_MESHES = {"data": MESHES, "model": MESHES[1:], "spatial": MESHES[1:],
                "spatial_xy": ((2, 2, 2), (1, 2, 4))}


def darcy(batch: int) -> list[dict[str, Any]]:
    """FNO-2D (width 32, 12 modes) at s = 421 and 1024 under every layout."""
    rows = []
    for s in (421, 1024):
        for layout, meshes in DARCY_MESHES.items():
            grid = s if layout in ("data", "model") else -(-s // 8) * 8
            for mesh in meshes:
                config = make_config(32, grid, mesh, layout, batch, model="fno2d")
                _, sizes = compile_step(config)
                rows.append({"width": 32, "nominal_s": s, "s": grid,
                             "mesh": "x".join(map(str, mesh)),
                             "layout": layout, "batch": batch, **sizes})
                print(f"  fno2d s={grid} {rows[-1]['mesh']} {layout}: total "
                      f"{sizes['total'] / MiB:.0f} MiB, state {sizes['state'] / MiB:.1f} MiB "
                      f"({sizes['compile_s']} s)", flush=True)
    for r in rows:  # ratio to one device's share of the same batch (the 8x1 data row)
        base = next(b for b in rows if b["nominal_s"] == r["nominal_s"]
                    and b["layout"] == "data" and b["mesh"] == "8x1")
        r["total_ratio_to_8x1_data"] = round(r["total"] / base["total"], 3)
    return rows


# FNO-3D over space and time (configs/ns_paper.py:3d): layouts on 8 devices (width 20 splits
# 4 ways at most, so the model axis has 4; 'data' on a
# 1 x 8 mesh replicates: one device's load of the whole batch).
NS3D_MESHES = {"data": ((8, 1), (1, 8)), "model": ((2, 4),), "spatial": ((1, 8),),
               "spatial_xy": ((1, 2, 4),)}


def ns3d(batch: int) -> list[dict[str, Any]]:
    """FNO-3D (width 20, 8 modes per axis, 10 snapshots in, time padded by 6) at 64 x 64 x 40
    and 256 x 256 x 80 under every layout, on the DFT path (the one spatial sharding is for)."""
    from configs import ns_paper

    rows = []
    for s, steps in ((64, 40), (256, 80)):
        for layout, meshes in NS3D_MESHES.items():
            for mesh in meshes:
                config = ns_paper.get_config("3d")
                config.mode, config.batch_size = "mesh", batch
                config.data.resolution, config.data.output_steps = s, steps
                config.data.generate.resolution = s
                config.model.spectral_impl = "dft"
                config.model.in_channels, config.model.out_channels = 10, 1
                config.mesh_shape, config.mesh_axes = mesh, ("data", "x", "y")[:len(mesh)]
                config.model_sharding = "x" if layout == "model" else ""
                config.spatial_sharding = {"spatial": "x", "spatial_xy": "x,y"}.get(layout, "")
                _, sizes = compile_step(config)
                rows.append({"model": "fno3d", "s": s, "time_steps": steps,
                             "mesh": "x".join(map(str, mesh)), "layout": layout,
                             "batch": batch, **sizes})
                print(f"  fno3d {s}x{s}x{steps} {rows[-1]['mesh']} {layout}: total "
                      f"{sizes['total'] / MiB:.0f} MiB, state {sizes['state'] / MiB:.1f} MiB "
                      f"({sizes['compile_s']} s)", flush=True)
    return rows


def print_tables(rows, fits, impl_rows) -> None:
    if rows:
        _print_sweep(rows, fits)
    if impl_rows:
        print("\nWidth 64 on 1x8: spatial sharding with the FFT vs the truncated-DFT spectral "
              "path")
    for r in impl_rows:
        print(f"  s={r['s']:>7} {r['impl']} {r['layout']:>7}: temp {r['temp'] / MiB:7.0f} MiB, "
              f"all-gather {r['all-gather']}, all-reduce {r['all-reduce']}, fft {r['fft']}")


def _print_sweep(rows, fits) -> None:
    print("\nPer-device memory of one compiled train step (MiB; ratio = / 'data' layout on the "
          "same mesh)")
    print(f"{'width':>5} {'s':>8} {'mesh':>4} {'layout':>7} {'params':>8} {'state':>8} "
          f"{'temp':>9} {'total':>9} {'p.ratio':>7} {'t.ratio':>7} {'compile':>7}")
    for r in rows:
        if "total" not in r:
            print(f"{r['width']:>5} {r['s']:>8} {r['mesh']:>4} {r['layout']:>7}  skipped: "
                  f"{r['skipped']}")
            continue
        print(f"{r['width']:>5} {r['s']:>8} {r['mesh']:>4} {r['layout']:>7} "
              f"{r['params'] / MiB:8.1f} {r['state'] / MiB:8.1f} {r['temp'] / MiB:9.0f} "
              f"{r['total'] / MiB:9.0f} {r.get('params_ratio', 1):7.3f} "
              f"{r.get('temp_ratio', 1):7.3f} {r['compile_s']:6.1f}s")
    print("\nLargest s that fits a 16 GiB device: measured grid / straight line in s")
    widths = sorted({f["width"] for f in fits})
    print(f"{'mesh':>4} {'layout':>7} " + " ".join(f"{'width ' + str(w):>17}" for w in widths))
    cells = {(f["mesh"], f["layout"], f["width"]): f for f in fits}
    for mesh, layout in dict.fromkeys((f["mesh"], f["layout"]) for f in fits):
        row = [cells.get((mesh, layout, w), {}) for w in widths]
        print(f"{mesh:>4} {layout:>7} " + " ".join(
            f"{str(c.get('largest_measured_s')) + ' / ' + str(c.get('extrapolated_max_s')):>17}"
            for c in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="benchmarks/results/memory.json")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--widths", default="64,256,1024")
    parser.add_argument("--resolutions", default="8192,65536,1048576")
    parser.add_argument("--max-compile-s", type=float, default=60.0)
    parser.add_argument("--sections", default="sweep,impl",
                        help="sweep (the layout grid), impl (FFT vs DFT, spatial), darcy (FNO-2D), "
                        "ns3d (FNO-3D over space and time)")
    args = parser.parse_args()
    sections = args.sections.split(",")
    assert jax.device_count() == 8, "needs 8 (forced CPU) devices"
    start = time.perf_counter()
    widths = [int(w) for w in args.widths.split(",")]
    resolutions = [int(s) for s in args.resolutions.split(",")]
    rows = sweep(widths, resolutions, args.batch, args.max_compile_s) if "sweep" in sections else []
    fits = largest_fit(rows)
    impl_rows = fft_vs_dft(args.batch) if "impl" in sections else []
    darcy_rows = darcy(args.batch) if "darcy" in sections else []
    ns3d_rows = ns3d(args.batch) if "ns3d" in sections else []
    print_tables(rows, fits, impl_rows)
    result = {"command": "python " + " ".join(sys.argv),
              "device": "8 forced XLA:CPU devices", "jax": jax.__version__,
              "model": {"modes": 16, "num_layers": 4, "projection_width": 128,
                        "batch": args.batch},
              "rows": rows, "largest_fit_16GiB": fits, "spatial_fft_vs_dft": impl_rows,
              "darcy_fno2d": darcy_rows, "ns_fno3d": ns3d_rows,
              "wall_s": round(time.perf_counter() - start, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nWrote {args.output} in {result['wall_s']} s")


if __name__ == "__main__":
    main()
