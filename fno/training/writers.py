"""The trainer's metric writers: the console, TensorBoard event files and ``metrics.jsonl``.

:func:`create_writers` combines clu's LoggingWriter with :class:`TensorBoardWriter`
(fno.training.tensorboard, tensorboardX: no TensorFlow needed) and :class:`JsonlWriter`, a
``metrics.jsonl`` file that is trivial to parse. Importing this module makes clu's writers
importable without TensorFlow (fno.training.clu_shim).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fno.storage import paths
from fno.training import metrics
from fno.training.clu_shim import MetricWriter, import_metric_writers, metric_writers
from fno.training.tensorboard import TensorBoardWriter
from fno.training.writer_base import Writer, flat_hparams, scalar

__all__ = ["JsonlWriter", "MetricWriter", "TensorBoardWriter", "create_writers", "flat_hparams",
           "import_metric_writers", "metric_writers"]


class JsonlWriter(Writer):
    """Appends ``{"step": int, "<name>": float, ...}`` per ``write_scalars`` to a JSONL file.

    For analysis scripts and tests that should not have to parse event files. Each
    line is flushed when written, so a killed run loses nothing, and the file is
    opened in append mode, so a resumed run continues it (steps replayed after a
    restore then appear twice; the later line wins). Non-finite values are written
    as ``NaN``/``Infinity``, which Python's json module reads back. Hyper-parameters
    go to ``hparams.json``; images and other summaries are ignored.
    """

    def __init__(self, logdir: str, *, filename: str = "metrics.jsonl"):
        super().__init__()
        os.makedirs(logdir, exist_ok=True)
        self.path = os.path.join(logdir, filename)
        self.hparams_path = os.path.join(logdir, "hparams.json")

    def write_scalars(self, step: int, scalars: Mapping[str, ArrayLike]) -> None:
        if "step" in scalars:
            raise ValueError("A scalar may not be named 'step' (it is the JSONL step key).")
        record = {"step": int(np.asarray(step))}
        record.update({key: scalar(value) for key, value in scalars.items()})
        # Opening per write keeps no handle to leak; metrics are written rarely.
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        paths.write_json_atomic(self.hparams_path, flat_hparams(hparams))


class _SyncingWriter(Writer):
    """Uploads a :class:`fno.storage.paths.StagedDir` after each write batch and on flush/close.

    Wraps the file writers of a remote workdir, so metrics.jsonl and the event files reach
    the bucket as whole objects (object stores cannot append) at every reporting step.
    """

    def __init__(self, writers: list[MetricWriter], staged: paths.StagedDir):
        super().__init__()
        self._inner = metric_writers.MultiWriter(writers)
        self._staged = staged

    def _after(self) -> None:
        self._inner.flush()
        self._staged.sync()

    def write_summaries(self, step, values, metadata=None) -> None:
        self._inner.write_summaries(step, values, metadata)
        self._after()

    def write_scalars(self, step, scalars) -> None:
        self._inner.write_scalars(step, scalars)
        self._after()

    def write_images(self, step, images) -> None:
        self._inner.write_images(step, images)
        self._after()

    def write_videos(self, step, videos) -> None:
        self._inner.write_videos(step, videos)
        self._after()

    def write_hparams(self, hparams) -> None:
        self._inner.write_hparams(hparams)
        self._after()

    def flush(self) -> None:
        self._after()

    def close(self) -> None:
        self._inner.close()
        self._staged.close()


def create_writers(workdir: str | os.PathLike, *, write_files: bool,
                   asynchronous: bool = True) -> MetricWriter:
    """The trainer's metric writer: logs always, and writes files in ``workdir`` if asked.

    Args:
      workdir: Directory for TensorBoard event files and ``metrics.jsonl``: a local path or
        a ``gs://`` URL. Remote files are written in a local staging directory and uploaded
        as whole objects after every write (see :class:`fno.storage.paths.StagedDir`); a resumed
        run downloads and continues ``metrics.jsonl``.
      write_files: Whether this process writes files; pass ``jax.process_index() == 0``
        so that a multi-host run writes each file once.
      asynchronous: Write files in a background thread (logging stays synchronous, so
        log lines appear immediately and in order). Call ``flush()`` to wait for them;
        errors from the background thread are raised on the next write or ``flush()``.

    Returns:
      A MetricWriter; ``flush()``/``close()`` reach every writer inside it. metrics.jsonl
      keeps the metric names; TensorBoard shows them grouped (fno.training.metrics.tensorboard_tag).
    """
    logging_writer = metric_writers.LoggingWriter()
    if not write_files:
        return logging_writer
    staged = paths.StagedDir(paths.resolve(workdir, "workdir"),
                             download=("metrics.jsonl", "hparams.json"))
    file_writers: list[MetricWriter] = [
        TensorBoardWriter(staged.local, tag=metrics.tensorboard_tag), JsonlWriter(staged.local)]
    if paths.is_remote(workdir):
        file_writers = [_SyncingWriter(file_writers, staged)]
    if asynchronous:
        return metric_writers.MultiWriter(
            [logging_writer, metric_writers.AsyncMultiWriter(file_writers)]
        )
    return metric_writers.MultiWriter([logging_writer, *file_writers])
