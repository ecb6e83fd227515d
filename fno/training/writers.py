"""Metric writers for fno: clu's writer interface without a TensorFlow dependency.

Why this module exists
----------------------
The trainer reports metrics through ``clu.metric_writers.MetricWriter`` and uses
``clu.periodic_actions`` (ReportProgress, PeriodicCallback). In clu 0.0.12,
``clu/metric_writers/__init__.py`` unconditionally imports ``summary_writer``
(and ``utils``, which imports it too), which does ``import tensorflow``.
``clu.periodic_actions`` does ``from clu import metric_writers``. So neither
imports without TensorFlow, although TF is not among clu's requirements and we
do not want a 1.5 GB dependency just to write event files.

What it does
------------
On import, :func:`import_metric_writers` makes ``clu.metric_writers`` (and
therefore ``clu.periodic_actions``) importable:

* TensorFlow installed: nothing special, clu is imported as is.
* TensorFlow absent: a package module for ``clu.metric_writers`` is built from
  its import spec *without running its ``__init__.py``* and registered in
  ``sys.modules``; its TF-free submodules are then imported normally and their
  public classes re-exported. Any surprise in clu's layout raises
  :class:`CluLayoutError` instead of degrading silently.

So: ``import fno.training.writers`` before ``clu.periodic_actions`` or ``clu.metric_writers``.
Without TensorFlow, ``metric_writers.SummaryWriter``, ``create_default_writer``
and ``write_values`` are unavailable; use :func:`create_writers`, which writes
TensorBoard event files with :class:`TensorBoardWriter` (tensorboardX) instead,
plus a ``metrics.jsonl`` file (:class:`JsonlWriter`) that is trivial to parse.

When to delete the shim
-----------------------
Once the minimum clu in setup.cfg imports TensorFlow lazily (upstream
google/CommonLoopUtils PR #358, "lazy import tensorflow"), i.e. once
``python -c "import clu.periodic_actions"`` works without TF, delete
:func:`import_metric_writers` and its helpers and import clu directly. The
writers below stay useful either way.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import io
import itertools
import json
import os
import sys
import time
import types
import wave
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging
from numpy.typing import ArrayLike
from tensorboardX import summary as tbx_summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboardX.record_writer import directory_check

from fno.storage import paths

_PACKAGE = "clu.metric_writers"
_SHIM_WRITTEN_FOR = "clu 0.0.12"

# TF-free submodules of clu.metric_writers and the names clu's __init__.py
# re-exports from them. Not listed, because they import TensorFlow:
# summary_writer (SummaryWriter) and utils (create_default_writer, write_values).
_TF_FREE_EXPORTS: dict[str, tuple[str, ...]] = {
    "interface": ("MetricWriter",),
    "multi_writer": ("MultiWriter",),
    "logging_writer": ("LoggingWriter",),
    "async_writer": ("AsyncWriter", "AsyncMultiWriter", "ensure_flushes"),
}
_WRITER_CLASSES = ("MultiWriter", "LoggingWriter", "AsyncWriter", "AsyncMultiWriter")
_TF_ONLY_NAMES = frozenset({"SummaryWriter", "create_default_writer", "write_values"})


class CluLayoutError(ImportError):
    """clu.metric_writers no longer looks like the layout this shim was written for."""


def tensorflow_available() -> bool:
    """Whether ``import tensorflow`` can be attempted (without importing it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # A blocking import hook, or sys.modules entry of None.
        return False


def _clu_version() -> str:
    try:
        return importlib.metadata.version("clu")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _layout_error(what: str) -> CluLayoutError:
    return CluLayoutError(
        f"fno.training.writers cannot import {_PACKAGE} without TensorFlow: {what}. The shim was "
        f"written for {_SHIM_WRITTEN_FOR}, installed is clu {_clu_version()}, so clu's module "
        "layout has changed. Update _TF_FREE_EXPORTS in fno/writers.py, delete the shim if "
        "clu now imports TensorFlow lazily, or install tensorflow."
    )


def _tf_only_getattr(name: str) -> Any:
    """Module ``__getattr__`` (PEP 562) of the shim package: explain TF-only names."""
    if name in _TF_ONLY_NAMES:
        raise AttributeError(
            f"{_PACKAGE}.{name} needs TensorFlow, which is not installed (fno loaded "
            f"{_PACKAGE} without it). Use create_writers() or TensorBoardWriter."
        )
    raise AttributeError(f"module {_PACKAGE!r} has no attribute {name!r}")


def _install_tf_free_package() -> types.ModuleType:
    """Registers ``clu.metric_writers`` without running its TF-importing ``__init__``."""
    import clu

    before = set(sys.modules)
    try:
        spec = importlib.util.find_spec(_PACKAGE)
        if spec is None or spec.submodule_search_locations is None:
            raise _layout_error(f"{_PACKAGE} is not a package any more")
        # Sets __spec__, __path__ (so submodules are found), __file__ and __loader__;
        # executing the module (its __init__.py) is exactly what we skip.
        package = importlib.util.module_from_spec(spec)
        sys.modules[_PACKAGE] = package
        clu.metric_writers = package  # What the import system does for a loaded submodule.
        for submodule, names in _TF_FREE_EXPORTS.items():
            try:
                module = importlib.import_module(f"{_PACKAGE}.{submodule}")
            except ImportError as e:
                raise _layout_error(f"importing {_PACKAGE}.{submodule} failed ({e!r})") from e
            for name in names:
                if not hasattr(module, name):
                    raise _layout_error(f"{_PACKAGE}.{submodule} has no attribute {name!r}")
                setattr(package, name, getattr(module, name))
        for name in _WRITER_CLASSES:
            cls = getattr(package, name)
            if not (isinstance(cls, type) and issubclass(cls, package.MetricWriter)):
                raise _layout_error(f"{_PACKAGE}.{name} is not a MetricWriter subclass")
        package.__getattr__ = _tf_only_getattr
        package.__all__ = [name for names in _TF_FREE_EXPORTS.values() for name in names]
    except BaseException:
        # Leave no half-built package behind: a later import must fail the normal way.
        for name in set(sys.modules) - before:
            if name == _PACKAGE or name.startswith(_PACKAGE + "."):
                del sys.modules[name]
        if clu.__dict__.get("metric_writers") is not None and _PACKAGE not in sys.modules:
            del clu.metric_writers
        raise
    return package


def import_metric_writers() -> types.ModuleType:
    """Returns ``clu.metric_writers``, importing it without TensorFlow if TF is absent.

    Idempotent. Runs when ``fno.training.writers`` is imported; afterwards
    ``from clu import metric_writers, periodic_actions`` works with or without TF.

    Raises:
      CluLayoutError: TF is absent and clu's layout differs from what the shim expects.
    """
    existing = sys.modules.get(_PACKAGE)
    if existing is not None:
        return existing
    if tensorflow_available():
        return importlib.import_module(_PACKAGE)
    return _install_tf_free_package()


metric_writers = import_metric_writers()
MetricWriter = metric_writers.MetricWriter


# --------------------------------------------------------------------------- helpers


def flatten_hparams(hparams: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested configs to ``{"model.width": 32, "modes.0": 16, ...}``.

    Same key scheme as clu's TF SummaryWriter, so both backends show the same names.
    Anything with ``.items()`` counts as nested (ml_collections.ConfigDict is not a
    Mapping); lists and tuples are indexed.
    """
    flat: dict[str, Any] = {}
    for key, value in hparams.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) or hasattr(value, "items"):
            flat.update(flatten_hparams(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat.update(flatten_hparams({str(i): v for i, v in enumerate(value)}, name + "."))
        else:
            flat[name] = value
    return flat


def _plain_hparam(value: Any) -> Any:
    """A JSON/TensorBoard friendly leaf: bool, int, float, str or None."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy/jax scalars
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _to_float(value: ArrayLike) -> float:
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(f"Expected a scalar metric, got an array of shape {array.shape}.")
    return float(array.reshape(()))


def _to_uint8(array: ArrayLike) -> np.ndarray:
    """Floats (and bools) are taken to be in [0, 1], like TF's image summaries."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        return np.clip(array, 0, 255).astype(np.uint8)
    array = np.nan_to_num(array.astype(np.float32))
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_channels(key: str, array: np.ndarray, layout: str) -> None:
    if array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{key!r}: expected {layout} with C in (1, 3, 4), got {array.shape}.")


_NUMPY_TO_TF_DTYPE = {
    np.dtype(np.float16): types_pb2.DT_HALF,
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.uint16): types_pb2.DT_UINT16,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
}


def _tensor_proto(value: ArrayLike) -> tensor_pb2.TensorProto:
    array = np.asarray(value)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]
    )
    if array.dtype.kind in "SUO":
        strings = [s.encode() if isinstance(s, str) else bytes(s) for s in array.ravel()]
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=strings
        )
    if array.dtype not in _NUMPY_TO_TF_DTYPE:  # e.g. bfloat16, uint32
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
    little_endian = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return tensor_pb2.TensorProto(
        dtype=_NUMPY_TO_TF_DTYPE[array.dtype],
        tensor_shape=shape,
        tensor_content=little_endian.tobytes(),
    )


def _encode_wav(clip: np.ndarray, sample_rate: int) -> bytes:
    """[T, C] floats in [-1, 1] -> 16-bit PCM WAV (stdlib; tensorboardX needs soundfile)."""
    pcm = np.round(np.clip(clip.astype(np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with io.BytesIO() as buffer:
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(clip.shape[1])
            wav.setsampwidth(2)
            wav.setframerate(sample_rate)
            wav.writeframes(pcm.tobytes())
        return buffer.getvalue()


def _encode_gif(frames: np.ndarray, fps: float) -> bytes:
    """[T, H, W, C] uint8 -> animated GIF (Pillow; tensorboardX needs moviepy)."""
    from PIL import Image  # Pillow comes with matplotlib and tensorboardX's images.

    if frames.shape[-1] == 1:
        frames = frames[..., 0]
    images = [Image.fromarray(frame) for frame in frames]
    with io.BytesIO() as buffer:
        images[0].save(
            buffer,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(1, round(1000 / fps)),
            loop=0,
        )
        return buffer.getvalue()


# --------------------------------------------------------------------------- writers

_event_file_counter = itertools.count()
_DEFAULT_HISTOGRAM_BUCKETS = 30  # As tf.summary.histogram, i.e. clu's TF SummaryWriter.


class TensorBoardWriter(MetricWriter):
    """Writes TensorBoard event files with tensorboardX, so TensorFlow is not needed.

    Summaries are built with ``tensorboardX.summary`` and written synchronously with
    tensorboardX's ``EventsWriter``, not with ``tensorboardX.SummaryWriter``: the
    latter hands events to a background thread through a queue, and its ``flush()``
    does not wait for that queue, so after ``flush()`` recent events could still be
    missing from disk. Here ``flush()`` means written (and fsynced); wrap the writer
    in clu's AsyncWriter (as :func:`create_writers` does) to keep I/O off the
    training loop.

    Mirrors clu's TF ``SummaryWriter`` where it can, with these differences: the N
    images of one ``write_images`` call are tiled into one grid image; audio clips
    and videos (as animated GIFs) are written one per tag ``"{key}/{i}"``; non-finite
    values are left out of histograms.
    """

    def __init__(self, logdir: str, *, video_fps: float = 10.0):
        super().__init__()
        directory_check(logdir)
        # Files are named by the second; the suffix keeps two writers created in the
        # same second from truncating each other's file.
        suffix = f".{os.getpid()}.{next(_event_file_counter)}"
        self._events = EventsWriter(os.path.join(logdir, "events"), suffix)
        self._video_fps = video_fps

    def _add(self, step: int | None, summary: summary_pb2.Summary) -> None:
        event = event_pb2.Event(wall_time=time.time(), summary=summary)
        if step is not None:
            event.step = int(step)
        self._events.write_event(event)

    def write_summaries(
        self,
        step: int,
        values: Mapping[str, ArrayLike],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        for key, value in values.items():
            summary_value = summary_pb2.Summary.Value(tag=key, tensor=_tensor_proto(value))
            md = None if metadata is None else metadata.get(key)
            if md is not None:  # A SummaryMetadata proto (of any proto package) or bytes.
                serialized = md if isinstance(md, bytes) else md.SerializeToString()
                summary_value.metadata.ParseFromString(serialized)
            self._add(step, summary_pb2.Summary(value=[summary_value]))

    def write_scalars(self, step: int, scalars: Mapping[str, ArrayLike]) -> None:
        for key, value in scalars.items():
            self._add(step, tbx_summary.scalar(key, _to_float(value)))

    def write_images(self, step: int, images: Mapping[str, ArrayLike]) -> None:
        for key, value in images.items():
            array = _to_uint8(value)
            if array.ndim == 3:
                array = array[None]
            if array.ndim != 4:
                raise ValueError(f"{key!r}: expected [N, H, W, C] or [H, W, C], got {array.shape}")
            _check_channels(key, array, "[N, H, W, C]")
            self._add(step, tbx_summary.image(key, array, dataformats="NHWC"))

    def write_videos(self, step: int, videos: Mapping[str, ArrayLike]) -> None:
        for key, value in videos.items():
            array = _to_uint8(value)
            if array.ndim == 4:
                array = array[None]
            if array.ndim != 5:
                raise ValueError(f"{key!r}: expected [N, T, H, W, C], got {array.shape}")
            _check_channels(key, array, "[N, T, H, W, C]")
            values = []
            for i, video in enumerate(array):
                gif = summary_pb2.Summary.Image(
                    height=video.shape[1],
                    width=video.shape[2],
                    colorspace=video.shape[3],
                    encoded_image_string=_encode_gif(video, self._video_fps),
                )
                values.append(summary_pb2.Summary.Value(tag=f"{key}/{i}", image=gif))
            self._add(step, summary_pb2.Summary(value=values))

    def write_audios(self, step: int, audios: Mapping[str, ArrayLike], *, sample_rate: int) -> None:
        for key, value in audios.items():
            array = np.asarray(value)
            if array.ndim != 3:
                raise ValueError(f"{key!r}: expected audio of shape [N, T, C], got {array.shape}")
            values = []
            for i, clip in enumerate(array):
                audio = summary_pb2.Summary.Audio(
                    sample_rate=sample_rate,
                    num_channels=clip.shape[1],
                    length_frames=clip.shape[0],
                    encoded_audio_string=_encode_wav(clip, sample_rate),
                    content_type="audio/wav",
                )
                values.append(summary_pb2.Summary.Value(tag=f"{key}/{i}", audio=audio))
            self._add(step, summary_pb2.Summary(value=values))

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        for key, value in texts.items():
            self._add(step, tbx_summary.text(key, value))

    def write_histograms(
        self,
        step: int,
        arrays: Mapping[str, ArrayLike],
        num_buckets: Mapping[str, int] | None = None,
    ) -> None:
        for key, value in arrays.items():
            values = np.asarray(value, dtype=np.float64).ravel()
            values = values[np.isfinite(values)]
            if values.size == 0:
                logging.warning("Histogram %r at step %d has no finite values.", key, step)
                continue
            buckets = (num_buckets or {}).get(key) or _DEFAULT_HISTOGRAM_BUCKETS
            self._add(step, tbx_summary.histogram(key, values, buckets))

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        # Only the session-start record, like TF's hparams_api.hparams(): without an
        # explicit experiment TensorBoard offers every scalar as a metric.
        flat = {k: _plain_hparam(v) for k, v in flatten_hparams(hparams).items()}
        flat = {k: "" if v is None else v for k, v in flat.items()}
        _, session_start, _ = tbx_summary.hparams(flat, {})
        self._add(None, session_start)

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


class JsonlWriter(MetricWriter):
    """Appends ``{"step": int, "<name>": float, ...}`` per ``write_scalars`` to a JSONL file.

    For analysis scripts and tests that should not have to parse event files. Each
    line is flushed when written, so a killed run loses nothing, and the file is
    opened in append mode, so a resumed run continues it (steps replayed after a
    restore then appear twice; the later line wins). Non-finite values are written
    as ``NaN``/``Infinity``, which Python's json module reads back. Hyper-parameters
    go to ``hparams.json``; images, texts and other summaries are ignored.
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
        record.update({key: _to_float(value) for key, value in scalars.items()})
        # Opening per write keeps no handle to leak; metrics are written rarely.
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        flat = {k: _plain_hparam(v) for k, v in flatten_hparams(hparams).items()}
        tmp_path = self.hparams_path + ".tmp"
        with open(tmp_path, "w", encoding="utf-8") as f:
            json.dump(flat, f, indent=2, sort_keys=True)
        os.replace(tmp_path, self.hparams_path)  # Atomic: never a half-written file.

    def write_summaries(
        self,
        step: int,
        values: Mapping[str, ArrayLike],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        del step, values, metadata

    def write_images(self, step: int, images: Mapping[str, ArrayLike]) -> None:
        del step, images

    def write_videos(self, step: int, videos: Mapping[str, ArrayLike]) -> None:
        del step, videos

    def write_audios(self, step: int, audios: Mapping[str, ArrayLike], *, sample_rate: int) -> None:
        del step, audios, sample_rate

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        del step, texts

    def write_histograms(
        self,
        step: int,
        arrays: Mapping[str, ArrayLike],
        num_buckets: Mapping[str, int] | None = None,
    ) -> None:
        del step, arrays, num_buckets

    def flush(self) -> None:
        pass  # Every write is flushed already.

    def close(self) -> None:
        pass


class _SyncingWriter(MetricWriter):
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

    def write_audios(self, step, audios, *, sample_rate) -> None:
        self._inner.write_audios(step, audios, sample_rate=sample_rate)
        self._after()

    def write_texts(self, step, texts) -> None:
        self._inner.write_texts(step, texts)
        self._after()

    def write_histograms(self, step, arrays, num_buckets=None) -> None:
        self._inner.write_histograms(step, arrays, num_buckets)
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
      A MetricWriter; ``flush()``/``close()`` reach every writer inside it.
    """
    logging_writer = metric_writers.LoggingWriter()
    if not write_files:
        return logging_writer
    staged = paths.StagedDir(paths.resolve(workdir, "workdir"),
                               download=("metrics.jsonl", "hparams.json"))
    if "SummaryWriter" in vars(metric_writers):  # clu's TF writer: TensorFlow is installed.
        tensorboard = metric_writers.SummaryWriter(staged.local)
    else:
        tensorboard = TensorBoardWriter(staged.local)
    file_writers: list[MetricWriter] = [tensorboard, JsonlWriter(staged.local)]
    if paths.is_remote(workdir):
        file_writers = [_SyncingWriter(file_writers, staged)]
    if asynchronous:
        return metric_writers.MultiWriter(
            [logging_writer, metric_writers.AsyncMultiWriter(file_writers)]
        )
    return metric_writers.MultiWriter([logging_writer, *file_writers])
