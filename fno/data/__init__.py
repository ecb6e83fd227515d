"""PDE data: random fields, verified solvers, atomic dataset directories and grain sources.

* :mod:`fno.data.grf` — the periodic Gaussian random field u0 of 1D Burgers.
* :mod:`fno.data.burgers` — float64 ETDRK4 Burgers solver, ``generate_dataset`` and its CLI.
* :mod:`fno.data.grf2d` — the Neumann (cosine-series) Gaussian field of 2D Darcy flow.
* :mod:`fno.data.darcy` — the Darcy finite-difference solver (direct and preconditioned CG),
  ``generate_dataset`` and its CLI.
* :mod:`fno.data.dataset_dir` — the atomic directory writer both generators use.
* :mod:`fno.data.sources` — ``open_dataset`` / ``ArraySource`` over generated, .mat, .npz and
  HDF5 data, raising ``DataError`` on bad data.
* :mod:`benchmarks.generation_speed` — generation throughput.
"""
