"""fno and neuraloperator on the same Navier-Stokes trajectories with the same recipe.

    python benchmarks/side_by_side_ns.py --model=2d --epochs=500 --seeds=0 --workdir=/tmp/sbs \
        --data_dir=DIR --peer_python=$(benchmarks/peer/setup.sh)/bin/python

For each seed: ``main.py --config=configs/ns_paper.py:<model> --config.seed=K`` (the released
``fourier_2d_time.py`` / ``fourier_3d.py`` recipe; ``--epochs`` shortens the schedule, lr
halving every 100 epochs as released) and benchmarks/peer_accuracy_ns.py (neuraloperator's
FNO, same windows, split, batch and recipe), one after the other, on ``--data_dir`` (fno's
generated ν = 1e-3 set: ``python -m fno.data.navier_stokes --num_samples=1200 ...``).
``--output_steps``, ``--num_train`` and ``--num_test`` set the window and split on both
sides (the paper's ν = 1e-4 and 1e-5 rows predict 20 and 10 steps). Writes
``benchmarks/results/side_by_side_ns<model>[_nu<ν>]_e<epochs>.json`` (ν from the data's
meta.json, named where it is not 1e-3): every run's test
relative L2 over the window and per step, wall times, and per implementation the mean,
smallest and largest error, and next to it a PNG of the error per rollout step
(``--plot_only`` redraws it from the JSON). ``--spectral_init=normal`` trains fno with
neuraloperator's draw of the spectral weights instead of the released one, recorded as its
own implementation ("fno, normal init"). Runs of other seeds and implementations already in
that file are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def checked(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"error: {' '.join(command[:3])} ... failed: {tail[0]}")
    return done


def fno_label(args) -> str:
    return "fno" if args.spectral_init == "uniform" else f"fno, {args.spectral_init} init"


def fno_run(args, seed: int) -> dict:
    variant = "" if args.spectral_init == "uniform" else f"_{args.spectral_init}"
    workdir = (pathlib.Path(args.workdir)
               / f"fno_ns{args.model}{args.tag}_e{args.epochs}{variant}_seed{seed}")
    start = time.perf_counter()
    checked([sys.executable, "main.py", f"--config=configs/ns_paper.py:{args.model}",
             f"--workdir={workdir}", f"--config.seed={seed}",
             f"--config.num_epochs={args.epochs}", f"--config.data.dir={args.data_dir}",
             f"--config.model.spectral_init={args.spectral_init}",
             f"--config.data.output_steps={args.output_steps}",
             f"--config.data.num_train={args.num_train}",
             f"--config.data.num_test={args.num_test}",
             "--config.num_plot_samples=0"])
    results = json.loads((workdir / "results.json").read_text())
    steps = sorted(k for k in results if k.startswith("test_rel_l2_step"))
    return {"implementation": fno_label(args), "seed": seed, "test_rel_l2": results["test_rel_l2"],
            "test_rel_l2_step": [round(results[k], 6) for k in steps],
            "wall_s": round(time.perf_counter() - start, 1), "train_s": round(results["wall_s"], 1)}


def peer_run(args, seed: int) -> dict:
    start = time.perf_counter()
    done = checked([args.peer_python, "benchmarks/peer_accuracy_ns.py",
                    f"--data_dir={args.data_dir}", f"--model={args.model}",
                    f"--epochs={args.epochs}", f"--seed={seed}", "--threads=2",
                    f"--output_steps={args.output_steps}", f"--num_train={args.num_train}",
                    f"--num_test={args.num_test}"])
    run = json.loads(done.stdout.strip().splitlines()[-1])
    run.pop("curve", None)
    return {**run, "wall_s": round(time.perf_counter() - start, 1)}


def plot(record: dict, path: pathlib.Path) -> None:
    """The test error of every predicted step, per implementation (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    styles = {"fno": "-", "neuraloperator": "--"}
    for impl in dict.fromkeys(r["implementation"] for r in record["runs"]):
        runs = [r for r in record["runs"] if r["implementation"] == impl]
        style = styles.get(impl, ":")
        if runs:
            curve = [statistics.fmean(v) for v in zip(*(r["test_rel_l2_step"] for r in runs),
                                                      strict=True)]
            ax.plot(range(1, len(curve) + 1), curve, style, label=impl)
    ax.set_xlabel("predicted step (time units after the input window)")
    ax.set_ylabel("test relative L2")
    nu = f"{record.get('nu', 1e-3):.0e}".replace("e-0", "e-")
    ax.set_title(f"Navier-Stokes nu={nu}, "
                 f"FNO-{record['model'].upper()}, "
                 f"{record['epochs']} of 500 epochs", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("2d", "3d"), default="2d")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--workdir")
    parser.add_argument("--data_dir")
    parser.add_argument("--peer_python", default=None)
    parser.add_argument("--spectral_init", choices=("uniform", "normal"), default="uniform")
    parser.add_argument("--output_steps", type=int, default=40)
    parser.add_argument("--num_train", type=int, default=1000)
    parser.add_argument("--num_test", type=int, default=200)
    parser.add_argument("--nu", type=float, default=None,
                        help="names the record (default: the data's meta.json)")
    parser.add_argument("--plot_only", action="store_true")
    args = parser.parse_args()
    nu = args.nu
    if nu is None and args.data_dir:
        nu = json.loads((pathlib.Path(args.data_dir) / "meta.json").read_text())["nu"]
    args.tag = "" if nu in (None, 1e-3) else f"_nu{nu:g}"
    output = (ROOT / "benchmarks" / "results"
              / f"side_by_side_ns{args.model}{args.tag}_e{args.epochs}.json")
    record = json.loads(output.read_text()) if output.exists() else {"runs": []}
    if args.plot_only:
        plot(record, output.with_suffix(".png"))
        return
    if not (args.workdir and args.data_dir):
        parser.error("--workdir and --data_dir are required (unless --plot_only)")
    command = "python benchmarks/side_by_side_ns.py " + " ".join(
        "--data_dir=DIR" if a.startswith("--data_dir") else a for a in sys.argv[1:]
        if not a.startswith(("--workdir", "--peer_python")))
    for seed in (int(s) for s in args.seeds.split(",")):
        rerun = {fno_label(args)} | ({"neuraloperator"} if args.peer_python else set())
        record["runs"] = [r for r in record["runs"]
                          if not (r["seed"] == seed and r["implementation"] in rerun)]
        record["runs"].append({**fno_run(args, seed), "command": command})
        print(json.dumps(record["runs"][-1]), flush=True)
        if args.peer_python:
            record["runs"].append({**peer_run(args, seed), "command": command})
            print(json.dumps(record["runs"][-1]), flush=True)
    by_impl: dict[str, list] = {}
    for run in record["runs"]:
        by_impl.setdefault(run["implementation"], []).append(run)
    record.update({
        "model": args.model, "epochs": args.epochs, "data_dir": os.path.basename(args.data_dir),
        "nu": nu, "output_steps": args.output_steps, "num_train": args.num_train,
        "num_test": args.num_test,
        "summary": {impl: {"mean": statistics.fmean(r["test_rel_l2"] for r in runs),
                           "min": min(r["test_rel_l2"] for r in runs),
                           "max": max(r["test_rel_l2"] for r in runs),
                           "seeds": [r["seed"] for r in runs]}
                    for impl, runs in by_impl.items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": command,
    })
    output.write_text(json.dumps(record, indent=1) + "\n")
    plot(record, output.with_suffix(".png"))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
