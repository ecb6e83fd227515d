"""TensorBoard event files without TensorFlow: :class:`TensorBoardWriter` and its encoders.

Summaries are built with tensorboardX's protos and ``tensorboardX.summary``; images are PNG
grids, videos (rollout animations) animated GIFs encoded with Pillow.
"""

from __future__ import annotations

import io
import itertools
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from tensorboardX import summary as tbx_summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboardX.record_writer import directory_check

from fno.training.writer_base import Writer, flat_hparams, scalar

_event_file_counter = itertools.count()


class TensorBoardWriter(Writer):
    """Writes TensorBoard event files with tensorboardX, so TensorFlow is not needed.

    Summaries are written synchronously with tensorboardX's ``EventsWriter``, not with
    ``tensorboardX.SummaryWriter``: the latter hands events to a background thread through a
    queue, and its ``flush()`` does not wait for that queue, so after ``flush()`` recent
    events could still be missing from disk. Here ``flush()`` means written (and fsynced);
    wrap the writer in clu's AsyncWriter (as fno.training.writers.create_writers does) to
    keep I/O off the training loop.

    Mirrors clu's TF ``SummaryWriter`` where it can, with these differences: the N images of
    one ``write_images`` call are tiled into one grid image; videos are written as animated
    GIFs, one per tag ``"{key}/{i}"``; audio, text and histograms are not written.
    ``tag`` maps every key to its TensorBoard tag (default: the key itself).
    """

    def __init__(self, logdir: str, *, video_fps: float = 10.0,
                 tag: Callable[[str], str] | None = None):
        super().__init__()
        directory_check(logdir)
        # Files are named by the second; the suffix keeps two writers created in the
        # same second from truncating each other's file.
        suffix = f".{os.getpid()}.{next(_event_file_counter)}"
        self._events = EventsWriter(os.path.join(logdir, "events"), suffix)
        self._video_fps = video_fps
        self._tag = tag or str

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
            summary_value = summary_pb2.Summary.Value(tag=self._tag(key),
                                                      tensor=_tensor_proto(value))
            md = None if metadata is None else metadata.get(key)
            if md is not None:  # A SummaryMetadata proto (of any proto package) or bytes.
                serialized = md if isinstance(md, bytes) else md.SerializeToString()
                summary_value.metadata.ParseFromString(serialized)
            self._add(step, summary_pb2.Summary(value=[summary_value]))

    def write_scalars(self, step: int, scalars: Mapping[str, ArrayLike]) -> None:
        for key, value in scalars.items():
            self._add(step, tbx_summary.scalar(self._tag(key), scalar(value)))

    def write_images(self, step: int, images: Mapping[str, ArrayLike]) -> None:
        for key, value in images.items():
            array = _uint8_batch(key, value, "NHWC")
            self._add(step, tbx_summary.image(self._tag(key), array, dataformats="NHWC"))

    def write_videos(self, step: int, videos: Mapping[str, ArrayLike]) -> None:
        for key, value in videos.items():
            values = []
            for i, video in enumerate(_uint8_batch(key, value, "NTHWC")):
                gif = summary_pb2.Summary.Image(
                    height=video.shape[1],
                    width=video.shape[2],
                    colorspace=video.shape[3],
                    encoded_image_string=encode_gif(video, self._video_fps),
                )
                values.append(summary_pb2.Summary.Value(tag=f"{self._tag(key)}/{i}", image=gif))
            self._add(step, summary_pb2.Summary(value=values))

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        # Only the session-start record, like TF's hparams_api.hparams(): without an
        # explicit experiment TensorBoard offers every scalar as a metric.
        flat = {k: "" if v is None else v for k, v in flat_hparams(hparams).items()}
        _, session_start, _ = tbx_summary.hparams(flat, {})
        self._add(None, session_start)

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


# --------------------------------------------------------------------------- encoders


def _to_uint8(array: ArrayLike) -> np.ndarray:
    """Floats (and bools) are taken to be in [0, 1], like TF's image summaries."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        return np.clip(array, 0, 255).astype(np.uint8)
    array = np.nan_to_num(array.astype(np.float32))
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def _uint8_batch(key: str, value: ArrayLike, layout: str) -> np.ndarray:
    """``value`` as uint8 in ``layout`` (``"NHWC"``, ``"NTHWC"``), N added if it is missing."""
    array = _to_uint8(value)
    if array.ndim == len(layout) - 1:
        array = array[None]
    if array.ndim != len(layout) or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{key!r}: expected [{', '.join(layout)}] or [{', '.join(layout[1:])}] "
                         f"with C in (1, 3, 4), got {array.shape}")
    return array


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


def encode_gif(frames: np.ndarray, fps: float) -> bytes:
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
