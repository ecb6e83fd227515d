"""Tests for fno.training.writers: the TF-free clu import shim (fno.training.clu_shim) and
the file writers.

Import behaviour is tested in fresh subprocesses, because whether TensorFlow was
imported, and what ``clu.metric_writers`` is, are per-process facts. TensorFlow is
blocked there by an import hook, so the TF-free path is tested even on a machine
that has TF. Event files are parsed by hand (TFRecord framing + tensorboardX's
protos), the same way TensorBoard reads them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.crc32c import crc32c
from tensorboardX.proto import event_pb2, plugin_hparams_pb2, types_pb2

from fno.training import writers

REPO_ROOT = Path(__file__).resolve().parents[1]

_BLOCK_TENSORFLOW = """
import importlib.abc, sys

class _BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, _BlockTensorFlow())
"""


def _run_isolated(code: str) -> dict:
    """Runs ``code`` in a fresh interpreter without TensorFlow; returns its JSON output."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", _BLOCK_TENSORFLOW + textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- (a) import shim


def test_clu_imports_without_tensorflow():
    facts = _run_isolated("""
        import json, sys
        import fno.training.writers
        from clu import metric_writers, periodic_actions

        mw = metric_writers
        facts = {
            "registered": sys.modules["clu.metric_writers"] is mw,
            "same_interface": periodic_actions.MetricWriter is mw.MetricWriter
                and fno.training.writers.MetricWriter is mw.MetricWriter,
            "subclasses": {
                name: issubclass(getattr(mw, name), mw.MetricWriter)
                for name in ("LoggingWriter", "MultiWriter", "AsyncWriter", "AsyncMultiWriter")
            },
            "ours": issubclass(fno.training.writers.TensorBoardWriter, mw.MetricWriter)
                and issubclass(fno.training.writers.JsonlWriter, mw.MetricWriter),
            "periodic": [hasattr(periodic_actions, n)
                         for n in ("ReportProgress", "PeriodicCallback")],
            "idempotent": fno.training.writers.import_metric_writers() is mw,
            "tensorflow_loaded": "tensorflow" in sys.modules,
        }
        try:
            mw.SummaryWriter
        except AttributeError as e:
            facts["summary_writer_error"] = str(e)
        print(json.dumps(facts))
    """)
    assert facts["registered"] and facts["same_interface"] and facts["ours"]
    assert all(facts["subclasses"].values()), facts["subclasses"]
    assert facts["periodic"] == [True, True]
    assert facts["idempotent"]
    assert facts["tensorflow_loaded"] is False
    assert "needs TensorFlow" in facts["summary_writer_error"]


def test_periodic_callback_works_with_shimmed_clu():
    facts = _run_isolated("""
        import json
        import fno.training.writers
        from clu import periodic_actions

        calls = []
        action = periodic_actions.PeriodicCallback(
            every_steps=2, callback_fn=lambda step, t: calls.append(step))
        for step in range(1, 6):
            action(step)
        print(json.dumps({"calls": calls}))
    """)
    assert facts["calls"] == [2, 4]


# ----------------------------------------------------------------- (b) loud failure

_MISSING_SUBMODULE = """
class _RemovedInNewClu(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "clu.metric_writers.logging_writer":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _RemovedInNewClu())
"""

_MISSING_CLASS = """
import types
# multi_writer exists but no longer defines MultiWriter (e.g. renamed upstream).
sys.modules["clu.metric_writers.multi_writer"] = types.ModuleType(
    "clu.metric_writers.multi_writer")
"""


@pytest.mark.parametrize(
    ("simulation", "culprit"),
    [(_MISSING_SUBMODULE, "logging_writer"), (_MISSING_CLASS, "MultiWriter")],
    ids=["missing-submodule", "missing-class"],
)
def test_changed_clu_layout_fails_loudly(simulation, culprit):
    facts = _run_isolated(
        simulation
        + """
import json
try:
    import fno.training.writers
    error = None
except ImportError as e:
    error = {"type": type(e).__name__, "message": str(e)}
left_behind = "clu.metric_writers" in sys.modules
try:
    from clu import metric_writers
    later = "imported"
except Exception as e:
    later = type(e).__name__
print(json.dumps({"error": error, "left_behind": left_behind, "later": later}))
"""
    )
    assert facts["error"] is not None, "a changed clu layout must not import silently"
    assert facts["error"]["type"] == "CluLayoutError"
    message = facts["error"]["message"]
    assert f"clu {importlib.metadata.version('clu')}" in message
    assert culprit in message
    assert not facts["left_behind"], "no half-built clu.metric_writers may remain"
    assert facts["later"] != "imported"


# ------------------------------------------------------------ event file parsing


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _read_events(logdir: Path) -> list[event_pb2.Event]:
    """Parses the single event file in ``logdir``; checks TFRecord framing and CRCs."""
    paths = sorted(logdir.glob("events.out.tfevents.*"))
    assert len(paths) == 1, paths
    data = paths[0].read_bytes()
    events, offset = [], 0
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        assert length_crc == _masked_crc(header)
        payload = data[offset + 12 : offset + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])
        assert payload_crc == _masked_crc(payload)
        events.append(event_pb2.Event.FromString(payload))
        offset += 16 + length
    return events


def _values(events):
    for event in events:
        for value in event.summary.value:
            yield event.step, value


def _tensor_values(tensor) -> np.ndarray:
    dtypes = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64}
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=dtypes[tensor.dtype])
    return np.asarray(list(tensor.float_val) or list(tensor.double_val))


def _scalars(events) -> dict[tuple[str, int], float]:
    scalars = {}
    for step, value in _values(events):
        if value.WhichOneof("value") == "simple_value":
            scalars[value.tag, step] = value.simple_value
        elif value.metadata.plugin_data.plugin_name == "scalars":  # TF 2 writes tensors.
            scalars[value.tag, step] = float(_tensor_values(value.tensor)[0])
    return scalars


def _is_image(value) -> bool:
    return value.HasField("image") or value.metadata.plugin_data.plugin_name == "images"


# ---------------------------------------------- (c) TensorBoard via create_writers


def test_create_writers_writes_scalars_and_images(tmp_path):
    writer = writers.create_writers(str(tmp_path), write_files=True)
    writer.write_scalars(1, {"loss": 0.5, "lr": np.float32(1e-3)})
    writer.write_scalars(2, {"loss": jnp.asarray(0.25)})
    writer.write_images(2, {"pred": np.linspace(0, 1, 2 * 8 * 8).reshape(2, 8, 8, 1)})
    writer.flush()  # Must be enough: the trainer flushes and may never close.

    events = _read_events(tmp_path)
    assert _scalars(events) == {
        ("loss", 1): 0.5,
        ("lr", 1): pytest.approx(1e-3),
        ("loss", 2): 0.25,
    }
    images = [(step, value) for step, value in _values(events) if _is_image(value)]
    assert [(step, value.tag) for step, value in images] == [(2, "pred")]
    if images[0][1].HasField("image"):  # tensorboardX: one PNG grid of the N images.
        assert images[0][1].image.encoded_image_string.startswith(b"\x89PNG")
        assert (images[0][1].image.height, images[0][1].image.width) == (8, 16)

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "loss": 0.5, "lr": pytest.approx(1e-3)},
        {"step": 2, "loss": 0.25},
    ]
    writer.close()


def test_create_writers_without_files_only_logs(tmp_path):
    writer = writers.create_writers(str(tmp_path / "w"), write_files=False)
    writer.write_scalars(1, {"loss": 1.0})
    writer.flush()
    assert isinstance(writer, writers.metric_writers.LoggingWriter)
    assert not (tmp_path / "w").exists()


def test_tensorboard_writer_videos_and_raw_summaries(tmp_path):
    writer = writers.TensorBoardWriter(str(tmp_path))
    writer.write_videos(3, {"rollout": np.zeros((3, 4, 5, 1), np.float32)})
    writer.write_summaries(3, {"raw": np.arange(3, dtype=np.float32)})
    # Kinds of summary fno does not write are accepted and dropped.
    writer.write_texts(3, {"note": "hello"})
    writer.write_histograms(3, {"w": np.array([0.0, 1.0])})
    writer.write_audios(3, {"wave": np.zeros((2, 100, 1))}, sample_rate=8000)
    writer.close()

    by_tag = {value.tag: value for step, value in _values(_read_events(tmp_path)) if step == 3}
    assert sorted(by_tag) == ["raw", "rollout/0"]
    assert by_tag["rollout/0"].image.encoded_image_string.startswith(b"GIF8")
    np.testing.assert_array_equal(_tensor_values(by_tag["raw"].tensor), [0.0, 1.0, 2.0])
    assert list(by_tag["raw"].tensor.tensor_shape.dim)[0].size == 3


def _tensorboard_order(tag: str) -> list:
    """TensorBoard's card order (its compareTagNames): character by character, runs of
    digits as numbers."""
    return [int(part) if part.isdigit() else [ord(c) for c in part]
            for part in re.split(r"(\d+)", tag)]


def test_tensorboard_groups_metrics_with_loss_and_test_error_first(tmp_path):
    names = {"train_loss": 0.5, "train_mse": 0.1, "nonfinite_steps": 0.0,
             "samples_per_s": 80.0, "steps_per_sec": 4.0, "uptime": 9.0,
             "test_rel_l2": 0.3, "test_mse": 0.2, "test_rel_l2_s128": 0.4}
    writer = writers.create_writers(str(tmp_path), write_files=True, asynchronous=False)
    writer.write_scalars(10, names)
    writer.close()

    tags = [tag for tag, _ in _scalars(_read_events(tmp_path))]
    assert sorted(tags, key=_tensorboard_order) == [
        "loss/test", "loss/test_s128", "loss/train", "mse/test", "mse/train",
        "perf/samples_per_s", "perf/steps_per_sec", "perf/uptime", "stability/nonfinite_steps"]
    # metrics.jsonl keeps the names.
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 10, **names}


# ----------------------------------------------------------------- (d) JSONL


def test_jsonl_appends_across_writers(tmp_path):
    first = writers.JsonlWriter(str(tmp_path))
    first.write_scalars(1, {"loss": np.float32(0.5), "count": jnp.asarray(3)})
    first.write_images(1, {"img": np.zeros((1, 2, 2, 3))})  # Ignored.
    first.close()

    resumed = writers.JsonlWriter(str(tmp_path))  # A restarted run.
    resumed.write_scalars(np.int64(2), {"loss": 0.25})
    # Read before flush/close: every line must already be on disk.
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]

    assert records == [{"step": 1, "loss": 0.5, "count": 3.0}, {"step": 2, "loss": 0.25}]
    assert type(records[0]["step"]) is int and type(records[0]["count"]) is float
    with pytest.raises(ValueError, match="step"):
        resumed.write_scalars(3, {"step": 1.0})


# ----------------------------------------------------------------- (e) hparams


def test_hparams_recorded_flattened(tmp_path):
    writer = writers.create_writers(str(tmp_path), write_files=True, asynchronous=False)
    writer.write_hparams(
        {
            "lr": 1e-3,
            "model": {"modes": 16, "activation": "gelu"},
            "use_bias": np.bool_(True),
            "shape": (2, 3),
            "seed": None,
        }
    )
    writer.flush()

    expected = {
        "lr": 1e-3,
        "model.modes": 16,
        "model.activation": "gelu",
        "use_bias": True,
        "shape.0": 2,
        "shape.1": 3,
        "seed": None,
    }
    assert json.loads((tmp_path / "hparams.json").read_text()) == expected

    starts = [
        value
        for _, value in _values(_read_events(tmp_path))
        if value.tag == "_hparams_/session_start_info"
    ]
    assert len(starts) == 1
    plugin = plugin_hparams_pb2.HParamsPluginData.FromString(starts[0].metadata.plugin_data.content)
    recorded = {
        key: getattr(value, value.WhichOneof("kind"))
        for key, value in plugin.session_start_info.hparams.items()
    }
    assert recorded == {**expected, "seed": ""}
