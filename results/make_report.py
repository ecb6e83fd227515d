"""The numbers in docs/, rebuilt from the committed JSON; and finished runs collected into results/.

    python results/make_report.py --docs      # rewrite every generated block of docs/*.md
    python results/make_report.py --check     # exit 1, printing a diff, where docs/ is stale
    python results/make_report.py RUN_DIR...  # collect finished burgers_paper runs (below)

A generated block is the text between ``<!-- generated:NAME -->`` and
``<!-- end generated:NAME -->`` in a page under docs/; NAME is a function in ``BLOCKS`` that
renders it from results/*.json, benchmarks/results/* or docs/measurements.json (the few runs
whose numbers were read off a command's own output). Everything outside the markers is
hand-written. results/burgers_table.md is rebuilt from results/burgers.json the same way.
tests/test_docs.py runs ``--check``, so a JSON file and the page quoting it cannot disagree.

Run mode: each RUN_DIR is a finished ``main.py --config=configs/burgers_paper.py:S`` workdir.
It writes results/burgers.json (per-run test errors at every resolution, steps, wall time,
command, curves), results/burgers_table.md, results/training_curves.png and
results/predictions_s{S}.png (the run's last prediction figure); then run ``--docs``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import statistics
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOCS = os.path.join(ROOT, "docs")
PAPER = {256: 0.0149, 512: 0.0158, 1024: 0.0160, 2048: 0.0146, 4096: 0.0142, 8192: 0.0139}
RESOLUTIONS = sorted(PAPER)
# The CPU model, for files that record only the core count (it was noted when they were
# committed): the benchmark files in benchmarks/results/ and the side-by-side runs.
BENCH_CPU = "AMD EPYC"
SIDE_BY_SIDE_CPU = {
    "side_by_side_s256.json": "seed 0 on an AMD EPYC, seeds 1 and 2 on an Intel Xeon",
    "side_by_side_s1024.json": "AMD EPYC",
    "side_by_side_burgers_v1000_s256.json": "AMD EPYC",
}
MARKER = re.compile(r"(<!-- generated:(\S+) -->\n)(.*?)(<!-- end generated:\2 -->)", re.S)


# ---------------------------------------------------------------------------------------------
# Reading and formatting


def load_json(path: str):
    with open(os.path.join(ROOT, path)) as f:
        return json.load(f)


def load_jsonl(path: str) -> list[dict]:
    with open(os.path.join(ROOT, path)) as f:
        return [json.loads(line) for line in f if line.strip()]


def err(x: float) -> str:
    """A relative error to 3 significant digits: 0.000261, 0.0243, 4.1e-9."""
    return f"{x:#.3g}" if x >= 1e-4 else f"{x:.1e}".replace("e-0", "e-")


def ms(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def span(values, fmt=str, unit: str = "") -> str:
    lo, hi = fmt(min(values)), fmt(max(values))
    return f"{lo}{unit}" if lo == hi else f"{lo}–{hi}{unit}"


def undated(machine: str) -> str:
    return re.sub(r",? \d{4}-\d{2}-\d{2}", "", machine)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows]


def by_impl(records: list[dict]) -> dict:
    """(impl, resolution) -> records in file order: round 1, round 2, ..."""
    cells = defaultdict(list)
    for r in records:
        cells[(r["impl"], r["resolution"])].append(r)
    return cells


def rounds(cells: dict, impl: str, s: int, key: str = "ms_per_step", fmt=ms) -> str:
    return " / ".join(fmt(r[key]) for r in cells[(impl, s)])


# ---------------------------------------------------------------------------------------------
# Results (docs/results.md)


def side_by_side(name: str) -> list[str]:
    path = f"benchmarks/results/{name}"
    d = load_json(path)
    s, config = d["resolution"], d.get("config", "burgers_paper")
    impls = {"fno": f"fno, `configs/{config}.py:{s}`, scan mode",
             "neuraloperator": "neuraloperator 2.0 `FNO`, same recipe"}
    keys = ["test_rel_l2"] + sorted((k for k in d["summary"]["fno"] if k != "test_rel_l2"),
                                    key=lambda k: int(k.rsplit("s", 1)[1]))
    seeds = d["summary"]["fno"]["test_rel_l2"]["seeds"]
    header = [f"implementation ({len(seeds)} seed{'s' * (len(seeds) > 1)})", f"s = {s}"] + [
        f"zero-shot {k.rsplit('s', 1)[1]}" for k in keys[1:]]
    rows = []
    for impl, label in impls.items():
        cells = []
        for k in keys:
            m = d["summary"][impl][k]
            cells.append(err(m["mean"]) if len(seeds) == 1 else
                         f"{err(m['mean'])} ({err(m['min'])}–{err(m['max'])})")
        rows.append([label] + cells)
    fno, peer = (d["summary"][i]["test_rel_l2"] for i in impls)
    per_seed = ", ".join(f"seed {seed} {err(a)} / {err(b)}" for seed, a, b in
                         zip(seeds, fno["values"], peer["values"], strict=True))
    train = {i: [r["train_s"] for r in d["runs"][i]] for i in impls}
    flag = "" if config == "burgers_paper" else f" --config={config}"
    return [
        *table(header, rows), "",
        ("Mean over the seeds, range in brackets. " if len(seeds) > 1 else "")
        + f"Per seed at s = {s}, fno / neuraloperator: {per_seed}; fno's mean is "
        f"{fno['mean'] / peer['mean']:.2f} times neuraloperator's. "
        f"{d['epochs']} epochs; training took {span(train['fno'], lambda x: f'{x / 60:.1f}')} min "
        f"(fno) and {span(train['neuraloperator'], lambda x: f'{x / 60:.1f}')} min "
        f"(neuraloperator) per run on {d['machine']} ({SIDE_BY_SIDE_CPU[name]}), with other "
        f"work sharing the cores for part of the time, so these times are not a speed "
        f"benchmark. Record: `{path}`.", "",
        f"    python benchmarks/side_by_side.py{flag} --resolution={s} "
        f"--seeds={','.join(map(str, seeds))} --workdir=/tmp/sbs --peer_python=$PEER_PYTHON",
    ]


def burgers_tables(runs: list[dict]) -> list[str]:
    """The mean-loss runs of results/burgers.json: final errors and the zero-shot matrix."""
    lines = table(["trained at s", "fno test rel. L2", "paper FNO", "wall time", "command"], [
        [str(r["resolution"]), err(r["errors"][r["resolution"]]),
         f"{PAPER[r['resolution']]:.4f}", minutes(r["wall_s"]), f"`{command(r)}`"]
        for r in runs])
    lines += ["", "Zero-shot: rows = training resolution, columns = evaluation resolution.", ""]
    return lines + table(["trained \\ evaluated"] + [str(s) for s in RESOLUTIONS], [
        [str(r["resolution"])] + [err(r["errors"][s]) if s in r["errors"] else "-"
                                  for s in RESOLUTIONS] for r in runs])


def command(run: dict) -> str:
    # These runs predate config.loss_reduction, when the mean was the only reduction; the
    # flag makes the recorded command reproduce them with today's burgers_paper.py ("sum").
    c = run["command"]
    return c if "loss_reduction" in c else c.replace(" --workdir", " --config.loss_reduction="
                                                     "mean --workdir")


def burgers_json() -> list[dict]:
    runs = load_json("results/burgers.json")
    for r in runs:
        r["errors"] = {int(s): e for s, e in r["errors"].items()}
    return runs


def burgers_mean_loss() -> list[str]:
    return burgers_tables(burgers_json())


def darcy_paper() -> list[str]:
    d = load_json("results/darcy_s85.json")
    res = [85, 141, 211, 421]
    fno = [d["test_rel_l2"]] + [d[f"test_rel_l2_s{s}"] for s in res[1:]]
    return [*table(["", "s = 85"] + [f"zero-shot {s}" for s in res[1:]], [
        ["fno, `configs/darcy_paper.py:85` (1 seed)"] + [err(x) for x in fno],
        ["paper FNO (its own data files, trained at each s)"]
        + [f"{d['paper_fno'][str(s)]:.4f}" for s in res]]), "",
        f"Seed {d['seed']}, {d['step']:,} steps in {d['mode']} mode; {minutes(d['wall_s'])} wall "
        f"including generating the dataset, peak RSS {d['peak_rss_mb'] / 1024:.1f} GiB (the "
        f"zero-shot evaluation at 421); {undated(d['machine'])}. Record: "
        "`results/darcy_s85.json`.", "", f"    {d['command']}"]


def darcy_side_by_side() -> list[str]:
    d = load_json("results/darcy_s85_e20_side_by_side.json")
    p, res = d["peer"], [141, 211, 421]
    return [*table(["20 epochs, seed 0", "s = 85"] + [f"zero-shot {s}" for s in res] + [
        "wall (fno: whole run; neuraloperator: training)"], [
        ["fno"] + [err(d["test_rel_l2"])] + [err(d[f"test_rel_l2_s{s}"]) for s in res]
        + [f"{d['wall_s']:.0f} s"],
        [f"neuraloperator {p['neuralop']}"] + [err(p["test_rel_l2"])]
        + [err(p[f"test_rel_l2_s{s}"]) for s in res] + [f"{p['train_s']:.0f} s"]]), "",
        f"fno's error at s = 85 is {d['test_rel_l2'] / p['test_rel_l2']:.2f} times "
        f"neuraloperator's; {p['n_params']:,} parameters each, {p['num_train']} training and "
        f"{p['num_test']} test samples; {undated(d['machine'])}. Record: "
        "`results/darcy_s85_e20_side_by_side.json`.", "",
        f"    {d['command']}", f"    {d['peer_command']}"]


def measured(*names: str) -> list[str]:
    """A table of docs/measurements.json runs: what each printed, and where it ran."""
    runs = load_json("docs/measurements.json")["runs"]
    rows = []
    for n in names:
        r = runs[n]
        wall = r.get("wall_s", [])
        wall = span(wall if isinstance(wall, list) else [wall],
                    lambda x: f"{x:.0f}" if x >= 10 else f"{x:.1f}", " s") if wall else "—"
        errors = ", ".join(f"{v:g} at s = {k.rsplit('s', 1)[1] if '_s' in k else r['s']}"
                           for k, v in r.items() if k.startswith("test_rel_l2"))
        rows.append([f"`{r['command']}`", errors, wall,
                     r["machine"] + (f"; {r['note']}" if r.get("note") else "")])
    if not any(row[1] for row in rows):  # no errors to show: drop the column
        return table(["command", "wall time", "machine, notes"], [[a, c, d] for a, _, c, d in rows])
    return table(["command", "test rel. L2", "wall time", "machine, notes"],
                 [[a, b or "—", c, d] for a, b, c, d in rows])


# ---------------------------------------------------------------------------------------------
# Performance (docs/performance.md)


def env_line(env: dict) -> str:
    return (f"{env['cpus']} vCPUs ({BENCH_CPU}), JAX {env['jax']}, "
            f"`GLIBC_TUNABLES={env['glibc_tunables']}`")


def step_cells(path: str, peer_prefix: str) -> tuple[list, dict, str, list[int]]:
    """A step-time record: its rows, its cells by (impl, s), the peer's impl name and the
    resolutions fno basic was timed at."""
    records = load_jsonl(path)
    cells = by_impl(records)
    peer_impl = next(i for i, _ in cells if i.startswith(peer_prefix))
    return records, cells, peer_impl, sorted({s for i, s in cells if i == "fno_basic"})


def peer_ratios(cells: dict, peer_impl: str, s: int) -> list[float]:
    """The peer's ms/step over fno basic's at ``s``, round by round."""
    return [a["ms_per_step"] / b["ms_per_step"] for a, b in
            zip(cells[(peer_impl, s)], cells[("fno_basic", s)], strict=True)]


def cpu_steps() -> list[str]:
    records, cells, peer_impl, resolutions = step_cells(
        "benchmarks/results/cpu_steps.jsonl", "neuralop")
    rows = []
    for s in resolutions:
        ratio = " / ".join(f"{r:.2f}×" for r in peer_ratios(cells, peer_impl, s))
        rows.append([str(s), rounds(cells, peer_impl, s), rounds(cells, "fno_basic", s),
                     rounds(cells, "fno_scan", s), ratio,
                     rounds(cells, "fno_basic", s, "achieved_gflop_s", lambda x: f"{x:.0f}"),
                     rounds(cells, "fno_basic", s, "fraction_of_matmul_rate",
                            lambda x: f"{x:.2f}")])
    peer = cells[(peer_impl, resolutions[0])][0]
    fno = cells[("fno_basic", resolutions[0])][0]
    k = cells[("fno_scan", resolutions[0])][0]["steps_per_call"]
    matmul = [r["matmul_gflop_s"] for r in records if "matmul_gflop_s" in r]
    peer_rate = [r["achieved_gflop_s"] for r in records if r["impl"] == peer_impl]
    ratios = [r for s in resolutions for r in peer_ratios(cells, peer_impl, s)]
    basic = [r["ms_per_step"] for r in cells[("fno_basic", 1024)]]
    growth = [b["ms_per_step"] / a["ms_per_step"] for a, b in
              zip(cells[("fno_basic", 1024)], cells[("fno_basic", 8192)], strict=True)]
    return [*table(["s", "neuraloperator", "fno `basic`", f"fno `scan` (K={k})",
                    "neuraloperator / fno basic", "fno basic GFLOP/s",
                    "fno basic, fraction of matmul rate"], rows), "",
            f"ms/step, each cell \"round 1 / round 2\". neuraloperator {peer['neuralop']} `FNO` "
            f"(torch {peer['torch']}, {peer['threads']} threads, {peer['n_params']:,} "
            f"parameters, the paper's 16 modes; {span(peer_rate, lambda x: f'{x:.0f}')} GFLOP/s), "
            f"batch {fno['batch']}, Adam, the same loss. GFLOP/s is the analytic FLOP count "
            "(the peer benchmark's convention); the fraction is of XLA's float32 1024³ matmul "
            f"rate measured in the same runs, {span(matmul, lambda x: f'{x:.0f}')} GFLOP/s. From "
            f"s = 1024 to 8192 fno basic's step grows {span(growth, lambda x: f'{x:.1f}')}× (8× "
            "the points; s log s grows 10.4×). Machine: "
            f"{env_line(fno)}. Record: `benchmarks/results/cpu_steps.jsonl`.", "",
            f"Targets: fno basic ≤ 60 ms/step at s = 1024, "
            f"{'met' if max(basic) <= 60 else 'not met'} ({span(basic, ms)} ms); at least 1.75× "
            "faster than neuraloperator at every s in every round, "
            f"{'met' if min(ratios) >= 1.75 else 'not met'} (smallest ratio {min(ratios):.2f}×)."]


CPU_VARIANTS = {
    "fno_basic_fft": "`--config.model.spectral_impl=fft` (`jnp.fft` rfft/irfft)",
    "fno_basic_bf16": "`--config.model.dtype=bfloat16`",
    "fno_basic_no_thp": "without the allocator setting (`FNO_MALLOC_TUNING=0 GLIBC_TUNABLES=`)",
}


def cpu_variants() -> list[str]:
    cells = by_impl(load_jsonl("benchmarks/results/cpu_steps.jsonl"))
    rows = [[label, str(s), rounds(cells, impl, s), rounds(cells, "fno_basic", s)]
            for impl, label in CPU_VARIANTS.items()
            for s in sorted(r for i, r in cells if i == impl)]
    return table(["basic mode with", "s", "ms/step", "default basic, rounds 1 / 2"], rows) + [
        "", "Same script run and record as the table above (after its two rounds)."]


def modes_cpu() -> list[str]:
    d = load_json("benchmarks/results/modes_cpu.json")
    return [*table(["mode", "ms/step (median)", "time relative to basic"], [
        [f"`{m['mode']}`", ms(m["ms_per_step"]), f"{m['relative_to_basic']:.2f}×"]
        for m in d["modes"]]), "",
        f"s = 1024, one CPU device, timed round-robin; {env_line(d['env'])}. Record: "
        "`benchmarks/results/modes_cpu.json`."]


def scan_sweep() -> list[str]:
    d = load_json("benchmarks/results/scan_sweep_cpu.json")
    ks = [p["k"] for p in d["batches"][0]["points"]][1:]
    rows, worst = [], 0.0
    for b in d["batches"]:
        pts = {p["k"]: p for p in b["points"]}
        worst = max([worst] + [abs(p["measured_speedup"] / p["predicted_speedup"] - 1)
                               for p in b["points"]])
        rows.append([str(b["batch"]), f"{b['t_dev_ms']:.2f}", f"{b['t_sync_ms']:.2f}"] + [
            f"{pts[k]['measured_speedup']:.2f}× ({pts[k]['predicted_speedup']:.2f}×)"
            for k in ks])
    return [*table(["batch", "t_dev (ms)", "t_sync (ms)"] + [f"K = {k}: measured (model)"
                                                               for k in ks], rows), "",
            f"s = {d['resolution']}; speedup of K steps per call over one. The model "
            f"T = N (t_dev + t_sync / K) fits every point within {worst:.0%}. "
            f"{env_line(d['env'])}. Record: `benchmarks/results/scan_sweep_cpu.json` "
            "(and its `.png`)."]


def loop_overhead() -> list[str]:
    runs = [load_json(f"benchmarks/results/{n}.json")
            for n in ("loop_overhead_cpu_run1", "loop_overhead_cpu")]
    modes = [m["mode"] for m in runs[0]["modes"]]
    frac = [{m["mode"]: m for m in r["modes"]} for r in runs]
    drift = max(abs(a / b - 1) for r in runs for m in r["modes"]
                for a, b in [m["bare_before_after"]])
    return [*table([f"`{m}`" for m in modes], [[" / ".join(
        f"{f[m]['loop_fraction']:.1%}" for f in frac) for m in modes]]), "",
        "Loop samples/s as a fraction of the bare step's, run 1 / run 2 (s = 1024, 600 "
        "steps, checkpoints at the default interval). The bare step, timed before and after "
        f"the loop, moved by up to {drift:.0%} within a run, so single cells are good to a few "
        f"points. The grain pipeline alone delivers {runs[1]['pipeline_batches_per_s']:,.0f} "
        f"batches/s. {env_line(runs[1]['env'])}. Records: "
        "`benchmarks/results/loop_overhead_cpu_run1.json`, "
        "`benchmarks/results/loop_overhead_cpu.json`."]


def host_memory() -> list[str]:
    d = load_json("benchmarks/results/leak_check_cpu.json")
    rss = [m for _, m in d["rss_trace_mb"]]
    steps = d["rss_trace_mb"][-1][0]
    cells = by_impl(load_jsonl("benchmarks/results/cpu_steps.jsonl"))
    peaks = {s: [r["peak_rss_mb"] for r in cells[("fno_basic", s)]] for s in (1024, 8192)}
    return [
        f"- Peak host RSS of the s = 1024 step benchmark: {span(peaks[1024], lambda x: f'{x:.0f}')}"
        f" MB; at s = 8192: {span(peaks[8192], lambda x: f'{x / 1024:.2f}')} GiB "
        "(`cpu_steps.jsonl`).",
        f"- Over {steps:,} steps at s = {d['resolution']} (basic mode), RSS sampled every "
        f"{d['rss_trace_mb'][0][0]} steps stays within {min(rss):.0f}–{max(rss):.0f} MB; growth "
        f"after warm-up {d['rss_growth_mb_after_warmup']} MB "
        "(`benchmarks/results/leak_check_cpu.json`)."]


def multiprocess() -> list[str]:
    d = load_json("benchmarks/results/multiprocess_cpu.json")
    return [f"2 processes × 2 devices: {d['2x2']['ms_per_step']:.0f} ms/step "
            f"({d['2x2']['samples_per_s']:.0f} samples/s); 1 process × 4 devices: "
            f"{d['1x4']['ms_per_step']:.0f} ms/step ({d['1x4']['samples_per_s']:.0f} samples/s), "
            f"on the same {BENCH_CPU} vCPUs (`benchmarks/results/multiprocess_cpu.json`)."]


def darcy_steps() -> list[str]:
    records, cells, peer_impl, resolutions = step_cells(
        "benchmarks/results/darcy_steps.jsonl", "neuraloperator")
    rows = []
    for s in resolutions:
        ratio = " / ".join(f"{r:.2f}×" for r in peer_ratios(cells, peer_impl, s))
        k = cells[("fno_scan", s)][0]["steps_per_call"]
        rows.append([str(s), rounds(cells, peer_impl, s), rounds(cells, "fno_basic", s),
                     f"{rounds(cells, 'fno_scan', s)} (K={k})", ratio,
                     rounds(cells, "fno_basic", s, "fraction_of_matmul_rate",
                            lambda x: f"{x:.2f}")])
    peer, fno = cells[(peer_impl, resolutions[0])][0], cells[("fno_basic", resolutions[0])][0]
    ratios = [r for s in resolutions for r in peer_ratios(cells, peer_impl, s)]
    top = resolutions[-1]
    matmul = [r["matmul_gflop_s"] for r in records if "matmul_gflop_s" in r]

    def peak(impl):
        return max(r["peak_rss_mb"] for r in cells[(impl, top)]) / 1024

    return [*table(["s", "neuraloperator", "fno `basic`", "fno `scan`",
                    "neuraloperator / fno basic", "fno basic, fraction of matmul rate"], rows),
            "", f"ms/step, each cell \"round 1 / round 2\". neuraloperator {peer['neuralop']} 2D "
            f"`FNO` (torch {peer['torch']}, {peer['threads']} threads, {peer['n_params']:,} "
            f"parameters), batch {peer['batch']}. XLA's 1024³ float32 matmul rate in the same "
            f"runs: {span(matmul, lambda x: f'{x:.0f}')} GFLOP/s. Peak RSS at s = {top}: "
            f"{peak(peer_impl):.1f} GiB neuraloperator, {peak('fno_basic'):.1f} GiB fno basic. "
            f"Machine: {fno['cpus']} vCPUs ({BENCH_CPU}), JAX {fno['jax']}. Record: "
            "`benchmarks/results/darcy_steps.jsonl`.", "",
            f"Target: at least 1.5× faster than neuraloperator at every s in every round, "
            f"{'met' if min(ratios) >= 1.5 else 'not met'} (smallest ratio {min(ratios):.2f}×)."]


def ns_steps() -> list[str]:
    """Navier-Stokes step times (benchmarks/ns_speed.sh), by model, round by round."""
    records = load_jsonl("benchmarks/results/ns_steps.jsonl")
    by: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        by.setdefault((r["impl"].split("_ns")[0], r["model"]), []).append(r)
    names = {"2d": "FNO-2D in time, 40-step rollout (batch 20)",
             "3d": "FNO-3D, 64² × 40 (batch 10)"}
    rows, ratios = [], []
    for model in ("2d", "3d"):
        if ("fno", model) not in by:
            continue
        peer, fno = by[("neuraloperator", model)], by[("fno", model)]
        ratio = [a["ms_per_step"] / b["ms_per_step"] for a, b in zip(peer, fno, strict=True)]
        ratios += ratio
        rows.append([names[model], " / ".join(ms(r["ms_per_step"]) for r in peer),
                     " / ".join(ms(r["ms_per_step"]) for r in fno),
                     " / ".join(f"{x:.2f}×" for x in ratio),
                     " / ".join(f"{r['fraction_of_matmul_rate']:.2f}" for r in fno),
                     f"{max(r['peak_rss_mb'] for r in peer) / 1024:.1f} / "
                     f"{max(r['peak_rss_mb'] for r in fno) / 1024:.1f}"])
    peer = next(r for r in records if r["impl"].startswith("neuraloperator"))
    fno = next(r for r in records if r["impl"].startswith("fno"))
    matmul = [r["matmul_gflop_s"] for r in records if "matmul_gflop_s" in r]
    return [*table(["model", "neuraloperator", "fno `basic`", "neuraloperator / fno",
                    "fno, fraction of matmul rate", "peak RSS GiB (peer / fno)"], rows), "",
            f"ms per training step, each cell \"round 1 / round 2\". neuraloperator "
            f"{peer['neuralop']} `FNO` set up as the released scripts (torch {peer['torch']}, "
            f"{peer['threads']} threads; the same parameter counts as fno's), fno "
            f"`configs/ns_paper.py:2d` / `:3d` in basic mode (the rollout a `lax.scan`). XLA's "
            f"1024³ float32 matmul rate in the same runs: {span(matmul, lambda x: f'{x:.0f}')} "
            f"GFLOP/s. Machine: {fno['cpus']} vCPUs (Intel Xeon), JAX {fno['jax']}. Record: "
            "`benchmarks/results/ns_steps.jsonl`.", "",
            f"Target: at least 1.5× faster than neuraloperator on each model in every round, "
            f"{'met' if min(ratios) >= 1.5 else 'not met'} (smallest ratio {min(ratios):.2f}×).",
            "", "    PEER_PYTHON=$(benchmarks/peer/setup.sh)/bin/python benchmarks/ns_speed.sh"]


def ns3d_memory() -> list[str]:
    d = load_json("benchmarks/results/memory_ns3d.json")
    rows = []
    names = {"data": "data", "model": "model (channels)", "spatial": "spatial x",
             "spatial_xy": "spatial x, y"}
    for r in d["ns_fno3d"]:
        base = next(b for b in d["ns_fno3d"] if b["s"] == r["s"] and b["layout"] == "data"
                    and b["mesh"] == "1x8")
        rows.append([f"{r['s']}² × {r['time_steps']}", names[r["layout"]], r["mesh"],
                     mib(r["state"]), mib(r["total"]), f"{r['total'] / base['total']:.3f}"])
    batch = d["ns_fno3d"][0]["batch"]
    return [*table(["grid", "layout", "mesh", "state per device", "total per device",
                    "/ one device"], rows), "",
            f"FNO-3D of `configs/ns_paper.py:3d` (width 20, 8 modes per axis, 10 snapshots in, "
            f"time padded by 6; DFT path), global batch {batch}, the compiled train step's "
            "buffers per device (XLA:CPU's `memory_analysis`, never run), MiB; bold: fits a "
            "16 GiB device. 'data' on 1 × 8 replicates: one device's load of the whole batch. "
            "Record: "
            "`benchmarks/results/memory_ns3d.json`.", "",
            "    python benchmarks/memory.py --sections=ns3d "
            "--output=benchmarks/results/memory_ns3d.json"]


def ns_side_by_side() -> list[str]:
    rows, notes, counts = [], [], set()
    for model, name in (("2d", "FNO-2D in time"), ("3d", "FNO-3D")):
        paths = sorted(f for f in os.listdir(os.path.join(ROOT, "benchmarks", "results"))
                       if f.startswith(f"side_by_side_ns{model}_") and f.endswith(".json"))
        for path in paths:
            d = load_json(f"benchmarks/results/{path}")
            nu = f"{d.get('nu', 1e-3):.0e}".replace("e-0", "e-")
            window = (f"{nu}, 10 → {d.get('output_steps', 40)}",
                      f"{d.get('num_train', 1000)} / {d.get('num_test', 200)}")
            for impl in dict.fromkeys(r["implementation"] for r in d["runs"]):
                runs = [r for r in d["runs"] if r["implementation"] == impl]
                counts.update(r["n_params"] for r in runs if "n_params" in r)
                steps = [statistics.fmean(r["test_rel_l2_step"][k] for r in runs)
                         for k in (0, -1)]
                rows.append([f"{name}, {impl}", *window, f"{d['epochs']} of 500",
                             ", ".join(str(r["seed"]) for r in runs),
                             span([r["test_rel_l2"] for r in runs], err),
                             f"{err(steps[0])} / {err(steps[1])}",
                             f"{statistics.fmean(r['train_s'] for r in runs) / 60:.0f} min"])
            notes.extend(f"`{c}`" for c in dict.fromkeys(r.get("command", d["command"])
                                                         for r in d["runs"]))
    return [*table(["model, implementation", "ν, steps in → out", "train / test", "epochs",
                    "seeds", "test rel. L2 (window)", "first / last step", "training time"],
                   rows), "",
            "A shortened schedule where the epochs column says so, identical on both sides "
            "(lr halving every 100 epochs, so none within it); the paper's 500 epochs take "
            "over 30 hours per model at these step times on this 2-core CPU "
            "([performance.md](performance.md#navierstokes-training-steps-against-"
            "neuraloperator)). Parameters: "
            f"{', '.join(f'{c:,}' for c in sorted(counts))} on both sides. 2 vCPUs (Intel "
            "Xeon), one run after the other. Commands: " + "; ".join(notes) + "."]


def ns_past_horizon() -> list[str]:
    """fno's side-by-side models rolled out past their 40 trained steps on longer trajectories."""
    rows, commands = [], []
    for model, name in (("2d", "FNO-2D in time"), ("3d", "FNO-3D")):
        path = f"benchmarks/results/ns_past_horizon_{model}.json"
        if not os.path.exists(os.path.join(ROOT, path)):
            continue
        d = load_json(path)
        curve = [d[k] for k in sorted(k for k in d if k.startswith("test_rel_l2_step"))]
        if len(curve) != 60:  # the table and its text below are those of a 60-step rollout
            raise SystemExit(f"error: {path} scores {len(curve)} steps; this table reads 60")
        run = os.path.basename(d["workdir"].rstrip("/"))
        rows.append([name, run, str(d["samples"]), *(err(curve[k - 1]) for k in (1, 20, 40)),
                     *(err(curve[k - 1]) for k in (41, 50, 60)),
                     f"{err(statistics.fmean(curve[:40]))} / {err(statistics.fmean(curve[40:]))}"])
        commands.append(f"    python -m fno.inference.evaluate --workdir=W/{run} "
                        f"--data=DIR --steps={len(curve)} --output={path}")
    return [*table(["model", "trained run", "trajectories", "step 1", "step 20", "step 40",
                    "step 41", "step 50", "step 60", "mean 1–40 / 41–60"], rows), "",
            "Steps 1–40 are the trained window, 41–60 past it (FNO-2D: the same one-step map "
            "fed back; FNO-3D: a second window from the last 10 predicted snapshots). DIR: "
            "`python -m fno.data.navier_stokes --num_samples=100 --resolution=64 --nu=1e-3 "
            "--final_time=70 --seed=1` (new initial fields, 70 time units). Records: "
            "`benchmarks/results/ns_past_horizon_{2d,3d}.json`; W: the `--workdir` of "
            "`side_by_side_ns.py`.", "", *commands]


def bf16_accuracy() -> list[str]:
    return measured("quickstart", "quickstart_bf16")


# ---------------------------------------------------------------------------------------------
# Scaling (docs/scaling.md) and data (docs/data.md)

GIB16 = 16 * 1024  # MiB


def mib(nbytes: float) -> str:
    x = nbytes / 2**20
    return f"**{x:.0f}**" if x <= GIB16 else f"{x:.0f}"


def memory_1d() -> list[str]:
    d = load_json("benchmarks/results/memory.json")
    rows = {(r["width"], r["s"], r["layout"]): r for r in d["rows"] if r["mesh"] == "1x8"}
    dft = {(r["width"], r["s"]): r for r in d["spatial_fft_vs_dft"]
           if r["layout"] == "spatial" and r["impl"] == "dft"}
    out = []
    for width, s in sorted({(w, s) for w, s, _ in rows}):
        data, model, spatial = (rows[(width, s, x)] for x in ("data", "model", "spatial"))
        out.append([str(width), f"2^{s.bit_length() - 1}", mib(data["total"]),
                    f"{mib(model['total'])} (state {model['state_ratio']:.3g}×, temp "
                    f"{model['temp_ratio']:.2f}×)",
                    f"{mib(spatial['total'])} (temp {spatial['temp_ratio']:.2f}×)",
                    mib(dft[(width, s)]["total"]) if (width, s) in dft else "—"])
    m = d["model"]
    return [*table(["width", "s", "data 1×8 (whole batch a device)", "model 1×8", "spatial 1×8",
                    "spatial, DFT path"], out), "",
            f"MiB per device of the compiled mesh-mode step (compile only), {d['device']}, "
            f"JAX {d['jax']}; {m['modes']} modes, {m['num_layers']} layers, batch {m['batch']}. "
            "Ratios are to the data-only layout on the same mesh; **bold** fits a 16 GiB device. "
            "The spectral path is `auto` (truncated DFT up to s = 16384, FFT above); the last "
            "column forces the DFT path. Record: `benchmarks/results/memory.json`.", "",
            f"    {d['command']}"]


def memory_2d() -> list[str]:
    d = load_json("benchmarks/results/memory_darcy.json")
    cols = [("8x1", "data"), ("1x8", "data"), ("1x8", "model"), ("1x8", "spatial"),
            ("1x2x4", "spatial_xy"), ("2x2x2", "spatial_xy")]
    names = ["data 8×1 (2 samples a device)", "data 1×8 (whole batch a device)", "model 1×8",
             "spatial x, 1×8", "spatial x and y, 1×2×4", "spatial x and y, 2×2×2"]
    rows = defaultdict(dict)
    for r in d["darcy_fno2d"]:
        rows[r["nominal_s"]][(r["mesh"], r["layout"])] = r
    out = []
    for s, row in sorted(rows.items()):
        whole = row[("1x8", "data")]["total"]
        out.append([str(s)] + [mib(row[c]["total"]) + (
            f" ({row[c]['total'] / whole:.2f}×)" if i > 1 else "") for i, c in enumerate(cols)])
    compiled = sorted({r["s"] for r in d["darcy_fno2d"]} - set(rows))
    r0 = d["darcy_fno2d"][0]
    return [*table(["s"] + names, out), "",
            f"MiB per device, compile only, {d['device']}, JAX {d['jax']}; width {r0['width']}, "
            f"batch {r0['batch']}. Ratios are to one device holding the whole batch (data 1×8); "
            f"**bold** fits a 16 GiB device. Spatial rows at 421 compile s = "
            f"{', '.join(map(str, compiled))}, a grid the mesh axes divide. Record: "
            "`benchmarks/results/memory_darcy.json`.", "", f"    {d['command']}"]


def burgers_convergence() -> list[str]:
    d = load_json("benchmarks/results/burgers_v1000_convergence.json")
    used, ref = d["used"], d["reference"]
    rows = []
    for r in d["rows"]:
        label = f"{r['grid']} × {r['steps']}"
        cells = [err(r["vs_reference"]), err(r["vs_cole_hopf"])]
        if (r["grid"], r["steps"]) == (used["grid"], used["steps"]):
            label, cells = f"**{label} (used)**", [f"**{c}**" for c in cells]
        rows.append([label] + cells)
    ds = d["dataset"]
    n, u = ds["norm_u1_over_u0"], ds["max_abs_u_x"]
    return [*table(["points × steps", f"vs a {ref['grid']}-point, {ref['steps']}-step solve",
                    "vs Cole–Hopf (log space)"], rows), "",
            f"Largest relative L2 error over samples {', '.join(map(str, d['samples']))} "
            f"(the two with the steepest fronts first). The reference solve agrees with Cole–Hopf "
            f"to {err(ref['vs_cole_hopf'])}; float32 storage rounds by "
            f"{err(d['float32_storage'])}. Over the whole generated dataset, ‖u(·,1)‖ / ‖u0‖ has "
            f"median {n['median']:.2f} ({n['min']:.2f}–{n['max']:.2f}) and max |u_x(·,1)| median "
            f"{u['median']:.1f}, largest {u['max']:.1f} (sample {u['argmax']}). The script took "
            f"{d['seconds']:.0f} s on 2 vCPUs ({BENCH_CPU}). Record: "
            "`benchmarks/results/burgers_v1000_convergence.json`.", "",
            "    python benchmarks/burgers_convergence.py"]


def navier_stokes_convergence() -> list[str]:
    d = load_json("benchmarks/results/navier_stokes_convergence.json")
    rows = []
    for preset in (v for k, v in d.items() if k.startswith("nu=")):
        g = preset["grids"]
        by = {(x["solve_resolution"], x["cfl"]): x for x in g["settings"]}

        def worst(x: dict) -> str:
            return err(max(x["rel_l2_vs_reference"]["max_over_time"]))

        finer = preset["finer"]
        top = next(x for x in finer["settings"] if x["solve_resolution"] == 256)
        vs = next(v for k, v in top.items() if k.startswith("rel_l2_vs_"))
        rows.append([f"{preset['nu']:g}", f"{preset['final_time']:g}",
                     str(preset["default_solve_resolution"]), worst(by[(64, 0.5)]),
                     worst(by[(64, 0.25)]), worst(by[(128, 0.5)]),
                     " / ".join(f"{by[(s, 0.5)]['seconds_per_trajectory']:.1f}"
                                for s in (64, 128, 256)),
                     f"{top['solve_resolution']} vs {finer['reference_resolution']}: "
                     f"{err(max(vs['max_over_time']))} ({finer['label'].split(',')[0]})"])
    f32 = max(max(v["grids"]["float32_storage_rel_l2"]["max_over_time"])
              for k, v in d.items() if k.startswith("nu="))
    return [*table(["ν", "T", "default solve grid", "64², CFL 0.5", "64², CFL 0.25",
                    "128², CFL 0.5", "s per trajectory at 64/128/256", "256² against finer"],
                   rows), "",
            "Largest relative L2 error of a stored 64² snapshot (over all snapshots, two "
            "initial fields) against the same fields solved at 256² with CFL 0.5; the last "
            f"column checks the 256² reference itself. float32 storage rounds by {err(f32)}. "
            f"{d['machine']['cpus']} vCPUs ({d['machine']['note']}). Record: "
            "`benchmarks/results/navier_stokes_convergence.json`.", "",
            "    python benchmarks/navier_stokes_convergence.py"]


def generation() -> list[str]:
    return measured("generate_burgers_default", "generate_burgers_v1000", "generate_darcy",
                    "generate_navier_stokes")


def quick_runs() -> list[str]:
    return measured("quickstart", "quickstart_seed1", "quickstart_bf16", "darcy_quick",
                    "burgers_paper_256_mean")


def time_runs() -> list[str]:
    return measured("ns_quick")


def rollout_timing() -> list[str]:
    d = load_json("benchmarks/results/rollout_timing.json")
    rows = [[f"`{r['rollout']}`", str(r["output_steps"]), f"{r['resolution']}²",
             str(r["batch"]), f"{r['compile_s']:.1f}", f"{r['ms_per_step']:.0f}"]
            for r in d["rows"]]
    env = d["environment"]
    return [*table(["rollout", "steps", "grid", "batch", "compile (s)", "ms per training step"],
                   rows), "",
            f"The training step of `configs/ns_paper.py:2d` (FNO-2D of 10 snapshots, width 20, "
            f"12 modes; gradients through the whole rollout) on synthetic data; compile time is "
            f"the first call less one step, step time the median of repeats taken in turn. "
            f"Unrolled / scan: compile {d['compile_ratio_unrolled_over_scan']:g}×, step "
            f"{d['step_ratio_unrolled_over_scan']:g}×. {env['cpus']} vCPUs "
            f"({undated(d['machine'])}), JAX {env['jax']}. Record: "
            "`benchmarks/results/rollout_timing.json`.", "",
            "    python benchmarks/rollout_timing.py "
            "--output=benchmarks/results/rollout_timing.json"]


BLOCKS = {f.__name__: f for f in (
    time_runs, rollout_timing, ns_steps, ns3d_memory, ns_side_by_side, ns_past_horizon,
    side_by_side, burgers_mean_loss, darcy_paper, darcy_side_by_side, quick_runs, cpu_steps,
    cpu_variants, modes_cpu, scan_sweep, loop_overhead, host_memory, multiprocess, darcy_steps,
    bf16_accuracy, memory_1d, memory_2d, burgers_convergence, navier_stokes_convergence,
    generation)}


# ---------------------------------------------------------------------------------------------
# Rewriting and checking


def render(name: str) -> str:
    fn, _, arg = name.partition(":")
    if fn not in BLOCKS:
        raise SystemExit(f"error: unknown generated block {name!r} (known: {', '.join(BLOCKS)})")
    return "\n".join(BLOCKS[fn](arg) if arg else BLOCKS[fn]()) + "\n"


def expected() -> dict[str, str]:
    """Every generated file's path -> its content with fresh blocks."""
    out = {}
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".md"):
            path = os.path.join(DOCS, name)
            with open(path) as f:
                text = f.read()
            out[path] = MARKER.sub(lambda m: m[1] + render(m[2]) + m[4], text)
    out[os.path.join(HERE, "burgers_table.md")] = "\n".join(burgers_tables(burgers_json())) + "\n"
    return out


def docs(check: bool) -> int:
    stale = 0
    for path, text in expected().items():
        with open(path) as f:
            current = f.read()
        if current == text:
            continue
        stale += 1
        rel = os.path.relpath(path, ROOT)
        if check:
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(True), text.splitlines(True), rel, rel + " (from the JSON)"))
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"rewrote {rel}")
    if check and stale:
        print(f"\n{stale} file(s) out of date: run python results/make_report.py --docs")
    return 1 if check and stale else 0


# ---------------------------------------------------------------------------------------------
# Run mode: finished burgers_paper workdirs -> results/


def load_run(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    s = results["config"]["data"]["resolution"]
    errors = {r: results["test_rel_l2" if r == s else f"test_rel_l2_s{r}"] for r in RESOLUTIONS
              if ("test_rel_l2" if r == s else f"test_rel_l2_s{r}") in results}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    reduction = results["config"].get("loss_reduction", "mean")
    return {"resolution": s, "errors": errors, "steps": results["step"],
            "wall_s": results["wall_s"], "samples_per_s": results["samples_per_s"],
            "mode": results["mode"],
            "command": f"python main.py --config=configs/burgers_paper.py:{s} "
                       f"--config.loss_reduction={reduction} --workdir=/tmp/fno_paper_{s}",
            "curve": [(x["step"], x["train_loss"]) for x in lines if "train_loss" in x],
            "test_curve": [(x["step"], x["test_rel_l2"]) for x in lines
                           if "test_rel_l2" in x], "run_dir": run_dir}


def collect(run_dirs: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted((load_run(d) for d in run_dirs), key=lambda r: r["resolution"])
    with open(os.path.join(HERE, "burgers.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "run_dir"} for r in runs], f, indent=1)
    with open(os.path.join(HERE, "burgers_table.md"), "w") as f:
        f.write("\n".join(burgers_tables(runs)) + "\n")

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in runs:
        steps, loss = zip(*r["curve"], strict=True)
        line, = ax.plot(steps, loss, lw=1, label=f"train, s={r['resolution']}")
        if r["test_curve"]:
            ts, te = zip(*r["test_curve"], strict=True)
            ax.plot(ts, te, "o--", color=line.get_color(), ms=3,
                    label=f"test, s={r['resolution']}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("relative L2")
    ax.legend(fontsize=7)
    ax.set_title("FNO-1D on Burgers: training curves", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "training_curves.png"), dpi=100)
    for r in runs:
        figures = sorted(os.listdir(os.path.join(r["run_dir"], "figures")))
        shutil.copy(os.path.join(r["run_dir"], "figures", figures[-1]),
                    os.path.join(HERE, f"predictions_s{r['resolution']}.png"))
    print("\n".join(burgers_tables(runs)))
    print("\nNow run: python results/make_report.py --docs")


def main(argv: list[str]) -> int:
    if argv in (["--docs"], ["--check"]):
        return docs(check=argv == ["--check"])
    if not argv or any(a.startswith("-") for a in argv):
        print(__doc__)
        return 2
    collect(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
