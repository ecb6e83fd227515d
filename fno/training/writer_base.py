"""What fno's metric writers share: the summaries they write, and values made plain.

fno reports scalars, images, videos (rollout animations) and hyper-parameters. A writer
derived from :class:`Writer` overrides the ``write_*`` methods of what it records; every
other kind of summary clu's interface knows (audio, text, histograms, ...) is accepted and
dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fno.training.clu_shim import MetricWriter


class Writer(MetricWriter):
    """A clu MetricWriter that drops whatever its subclass does not override."""

    def write_summaries(self, step: int, values: Mapping[str, ArrayLike],
                        metadata: Mapping[str, Any] | None = None) -> None:
        del step, values, metadata

    def write_scalars(self, step: int, scalars: Mapping[str, ArrayLike]) -> None:
        del step, scalars

    def write_images(self, step: int, images: Mapping[str, ArrayLike]) -> None:
        del step, images

    def write_videos(self, step: int, videos: Mapping[str, ArrayLike]) -> None:
        del step, videos

    def write_audios(self, step: int, audios: Mapping[str, ArrayLike], *,
                     sample_rate: int) -> None:
        del step, audios, sample_rate

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        del step, texts

    def write_histograms(self, step: int, arrays: Mapping[str, ArrayLike],
                         num_buckets: Mapping[str, int] | None = None) -> None:
        del step, arrays, num_buckets

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        del hparams

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def scalar(value: ArrayLike) -> float:
    """A metric value (Python, NumPy or JAX scalar, or a one-element array) as a float."""
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(f"Expected a scalar metric, got an array of shape {array.shape}.")
    return float(array.reshape(()))


def flat_hparams(hparams: Any, prefix: str = "") -> dict[str, Any]:
    """Nested hyper-parameters (a config) as ``{"model.width": 32, "modes.0": 16, ...}``
    with bool, int, float, str or None leaves.

    Same key scheme as clu's TF SummaryWriter. Anything with ``.items()`` counts as nested
    (ml_collections.ConfigDict is not a Mapping); lists and tuples are indexed; NumPy and
    JAX scalars become Python numbers and any other leaf its ``str``.
    """
    flat: dict[str, Any] = {}
    for key, value in hparams.items():
        name = f"{prefix}{key}"
        if hasattr(value, "items"):
            flat.update(flat_hparams(value, name + "."))
        elif isinstance(value, list | tuple):
            flat.update(flat_hparams({str(i): v for i, v in enumerate(value)}, name + "."))
        else:
            flat[name] = _plain(value)
    return flat


def _plain(value: Any) -> Any:
    """A JSON/TensorBoard friendly leaf: bool, int, float, str or None."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy/jax scalars
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
