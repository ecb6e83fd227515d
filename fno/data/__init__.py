"""PDE data: random fields, verified solvers, atomic dataset directories and grain sources.

* :mod:`fno.data.grf` — the periodic Gaussian random field u0 of 1D Burgers.
* :mod:`fno.data.burgers` — float64 ETDRK4 Burgers solver, ``generate_dataset`` and its CLI.
* :mod:`fno.data.grf2d` — the Neumann (cosine-series) Gaussian field of 2D Darcy flow.
* :mod:`fno.data.darcy` — the Darcy finite-difference solver (direct and preconditioned CG),
  ``generate_dataset`` and its CLI.
* :mod:`fno.data.dataset_dir` — the atomic directory writer every generator uses
  (``write_dataset``: arrays, and meta.json naming them).
* :mod:`fno.data.generator_cli` — the command line every generator shares (its own flags aside).
* :mod:`fno.data.sources` — ``open_dataset`` / ``ArraySource`` over generated, .mat, .npz and
  HDF5 data, raising ``DataError`` on bad data; the grid kind and array names are the caller's.
* :mod:`fno.data.checks` and :mod:`fno.data.formats` — the checks every dataset passes (and
  the grid rules for subsampling), and the .mat/.h5/.npz readers.
* :mod:`fno.data.datasets` — from ``config.data`` (and fno.registry) to train and test splits:
  find, generate (committed to the cache only once it reads back), download, split.
* :mod:`fno.data.navier_stokes` — the 2D vorticity solver (pseudo-spectral, ETDRK4 from
  :mod:`fno.data.etdrk4`) on the field of :mod:`fno.data.grf2d_periodic`, and its CLI.
* :mod:`fno.data.pipeline` and :mod:`fno.data.normalizer` — the grain input pipeline and the
  point-wise normaliser.
"""
