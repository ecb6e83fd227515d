"""Burgers data: random initial conditions, a verified solver, and grain data sources.

* :mod:`fno.data.grf` — the periodic Gaussian random field u0 (per-sample deterministic).
* :mod:`fno.data.burgers` — float64 ETDRK4 solver, ``generate_dataset`` and its CLI.
* :mod:`fno.data.sources` — ``open_dataset`` / ``ArraySource`` over generated, .mat, .npz and
  HDF5 data, raising ``DataError`` on bad data.
* :mod:`fno.data.bench` — generation throughput.
"""
