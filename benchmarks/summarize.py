"""Summarise benchmarks/results/cpu_steps.jsonl: ms/step per implementation and resolution.

    python benchmarks/summarize.py benchmarks/results/cpu_steps.jsonl

Each cell is the median over rounds of each run's median ms/step; the last column is
neuraloperator's time divided by fno basic's (measured back to back in the same rounds).
"""

import collections
import json
import statistics
import sys


def main(path: str) -> None:
    cells = collections.defaultdict(list)
    for line in open(path):
        r = json.loads(line)
        cells[(r["impl"], r["resolution"])].append(r["ms_per_step"])
    impls = sorted({i for i, _ in cells})
    resolutions = sorted({s for _, s in cells})
    print("impl".ljust(24) + "".join(f"s={s}".rjust(12) for s in resolutions))
    for impl in impls:
        row = [cells.get((impl, s)) for s in resolutions]
        print(impl.ljust(24) + "".join(
            (f"{statistics.median(v):.1f}" if v else "-").rjust(12) for v in row))
    peer = [k for k in impls if k.startswith("neuralop")]
    if peer:
        ratios = []
        for s in resolutions:
            a, b = cells.get((peer[0], s)), cells.get(("fno_basic", s))
            ratios.append(f"{statistics.median(a) / statistics.median(b):.2f}x" if a and b
                          else "-")
        print("neuralop / fno_basic".ljust(24) + "".join(r.rjust(12) for r in ratios))


if __name__ == "__main__":
    main(sys.argv[1])
