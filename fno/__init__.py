"""fno: multi-host distributed training of Fourier Neural Operators in JAX.

``fno.load(workdir)`` returns a trained model to call on NumPy arrays (fno.inference.trained). It is
imported on first use: ``import fno`` must not import JAX, because main.py tunes the
allocator before JAX starts (fno.parallel.runtime).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load":
        from fno.inference.trained import load

        return load
    raise AttributeError(f"module 'fno' has no attribute {name!r}")
