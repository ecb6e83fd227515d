"""fno and the reference library trained with the same recipe on the same data, seed by seed.

    python benchmarks/side_by_side.py --resolution=256 --seeds=0,1,2 --workdir=/tmp/sbs \
        [--peer_python=$(../shared/peer/setup.sh)/bin/python] [--epochs=500]

For each seed: ``main.py --config=configs/burgers_paper.py:S --config.seed=K`` (fno's released
recipe, the summed loss included) and benchmarks/peer_accuracy.py (neuraloperator's FNO with
the same recipe, run in the peer environment) on the dataset fno generates for that config
(its cache), the same split, one after the other. Writes
``benchmarks/results/side_by_side_s<S>.json``: every run's test errors at the training and
the zero-shot resolutions and wall times, and per implementation the mean, the smallest and
the largest error. Runs of other seeds already in that file (same resolution and epochs) are
kept, so seeds can be added one invocation at a time.
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
sys.path.insert(0, str(ROOT))

from configs import burgers_paper  # noqa: E402
from fno import datasets  # noqa: E402


def summary(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "seeds": [r["seed"] for r in runs], "values": values}


def checked(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"error: {' '.join(command[:3])} ... exited with {done.returncode}: {tail[0]}")
    return done


def run_fno(resolution: int, seed: int, epochs: int, workdir: pathlib.Path,
            eval_resolutions: list[int]) -> dict:
    command = [sys.executable, str(ROOT / "main.py"),
               f"--config={ROOT}/configs/burgers_paper.py:{resolution}",
               f"--workdir={workdir}", f"--config.seed={seed}",
               f"--config.num_epochs={epochs}",
               f"--config.data.eval_resolutions=({','.join(map(str, eval_resolutions))},)"]
    start = time.perf_counter()
    checked(command)
    results = json.loads((workdir / "results.json").read_text())
    out = {"implementation": "fno", "seed": seed, "resolution": resolution,
           "test_rel_l2": results["test_rel_l2"], "wall_s": round(time.perf_counter() - start, 1),
           "train_s": round(results["wall_s"], 1), "command": " ".join(command[1:])}
    out.update({f"test_rel_l2_s{r}": results[f"test_rel_l2_s{r}"] for r in eval_resolutions})
    out[f"test_rel_l2_s{resolution}"] = results["test_rel_l2"]
    return out


def run_peer(python: str, data_dir: str, resolution: int, seed: int, epochs: int,
             eval_resolutions: list[int]) -> dict:
    command = [python, str(ROOT / "benchmarks" / "peer_accuracy.py"), f"--data_dir={data_dir}",
               f"--resolution={resolution}", f"--seed={seed}", f"--epochs={epochs}",
               f"--eval_resolutions={','.join(map(str, eval_resolutions))}"]
    start = time.perf_counter()
    done = checked(command)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["wall_s"] = round(time.perf_counter() - start, 1)
    out["command"] = " ".join(["$PEER_PYTHON", *command[1:]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--eval_resolutions", default="1024,8192")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--peer_python",
                        default=os.path.expanduser("~/.cache/fno-peer-venv/bin/python"))
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    evals = [int(r) for r in args.eval_resolutions.split(",") if r and int(r) != args.resolution]
    data_dir = datasets.default_data_dir(burgers_paper.get_config(str(args.resolution)))
    workdir = pathlib.Path(args.workdir)
    output = pathlib.Path(args.output or ROOT / "benchmarks" / "results" /
                          f"side_by_side_s{args.resolution}.json")
    runs = {"fno": [], "neuraloperator": []}
    if output.exists():
        previous = json.loads(output.read_text())
        if (previous["resolution"], previous["epochs"]) == (args.resolution, args.epochs):
            runs = {name: [r for r in rs if r["seed"] not in seeds]
                    for name, rs in previous["runs"].items()}
    for seed in seeds:
        fno_run = run_fno(args.resolution, seed, args.epochs,
                          workdir / f"fno_s{args.resolution}_seed{seed}", evals)
        runs["fno"].append(fno_run)
        print(json.dumps({k: v for k, v in fno_run.items() if k != "command"}), flush=True)
        peer_run = run_peer(args.peer_python, data_dir, args.resolution, seed, args.epochs,
                            evals)
        runs["neuraloperator"].append(peer_run)
        print(json.dumps({k: v for k, v in peer_run.items() if k not in ("command", "curve")}),
              flush=True)
    for rs in runs.values():
        rs.sort(key=lambda r: r["seed"])
    keys = ["test_rel_l2"] + [f"test_rel_l2_s{r}" for r in evals]
    report = {
        "resolution": args.resolution, "epochs": args.epochs, "data_dir": data_dir,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "summary": {name: {k: summary(rs, k) for k in keys} for name, rs in runs.items()},
        "runs": runs,
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    for name, s in report["summary"].items():
        t = s["test_rel_l2"]
        print(f"{name}: mean {t['mean']:.6f} (min {t['min']:.6f}, max {t['max']:.6f}) "
              f"over seeds {t['seeds']}")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
