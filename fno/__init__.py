"""fno: multi-host distributed training of Fourier Neural Operators in JAX."""

__version__ = "0.1.0"
