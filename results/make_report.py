"""Collect the paper-reproduction runs into small committed files under results/.

    python results/make_report.py RUN_DIR_256 RUN_DIR_512 RUN_DIR_1024 ...

Each RUN_DIR is a finished `main.py --config=configs/burgers_paper.py:S` workdir. Writes
results/burgers.json (per-run test errors at every resolution, steps, wall time, command),
results/burgers_table.md (the tables in the README), results/training_curves.png and
results/predictions_s{S}.png (the run's last prediction figure).
"""

import json
import os
import shutil
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER = {256: 0.0149, 512: 0.0158, 1024: 0.0160, 2048: 0.0146, 4096: 0.0142, 8192: 0.0139}
RESOLUTIONS = sorted(PAPER)


def load(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    s = results["config"]["data"]["resolution"]
    errors = {r: results["test_rel_l2" if r == s else f"test_rel_l2_s{r}"] for r in RESOLUTIONS
              if ("test_rel_l2" if r == s else f"test_rel_l2_s{r}") in results}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    return {"resolution": s, "errors": errors, "steps": results["step"],
            "wall_s": results["wall_s"], "samples_per_s": results["samples_per_s"],
            "mode": results["mode"],
            "command": f"python main.py --config=configs/burgers_paper.py:{s} "
                       f"--workdir=/tmp/fno_paper_{s}",
            "curve": [(x["step"], x["train_loss"]) for x in lines if "train_loss" in x],
            "test_curve": [(x["step"], x["test_rel_l2"]) for x in lines
                           if "test_rel_l2" in x], "run_dir": run_dir}


def main(run_dirs: list[str]) -> None:
    runs = sorted((load(d) for d in run_dirs), key=lambda r: r["resolution"])
    table = ["| trained at s | fno test rel. L2 | paper FNO | wall time | command |",
             "|---|---|---|---|---|"]
    for r in runs:
        s = r["resolution"]
        table.append(f"| {s} | {r['errors'][s]:.5f} | {PAPER[s]:.4f} | "
                     f"{r['wall_s'] / 60:.1f} min | `{r['command']}` |")
    table += ["", "Zero-shot: rows = training resolution, columns = evaluation resolution.", "",
              "| trained \\ evaluated | " + " | ".join(str(s) for s in RESOLUTIONS) + " |",
              "|---|" + "---|" * len(RESOLUTIONS)]
    for r in runs:
        table.append(f"| {r['resolution']} | " + " | ".join(
            f"{r['errors'][s]:.5f}" if s in r["errors"] else "-" for s in RESOLUTIONS) + " |")
    with open(os.path.join(HERE, "burgers_table.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    with open(os.path.join(HERE, "burgers.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "run_dir"} for r in runs], f, indent=1)

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
    print("\n".join(table))


if __name__ == "__main__":
    main(sys.argv[1:])
