"""clu's metric-writer interface without TensorFlow.

Why this module exists
----------------------
fno's writers implement ``clu.metric_writers.MetricWriter`` and combine with clu's
LoggingWriter, MultiWriter and AsyncWriter. In clu 0.0.12,
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

So: import this module (fno.training.writers does) before ``clu.periodic_actions`` or
``clu.metric_writers``. Without TensorFlow, ``metric_writers.SummaryWriter``,
``create_default_writer`` and ``write_values`` are unavailable; fno writes TensorBoard event
files with its own tensorboardX writer (fno.training.tensorboard) either way.

When to delete the shim
-----------------------
Once the minimum clu in setup.cfg imports TensorFlow lazily (upstream
google/CommonLoopUtils PR #358, "lazy import tensorflow"), i.e. once
``python -c "import clu.periodic_actions"`` works without TF, delete this module and
import clu directly.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
from typing import Any

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
        f"fno.training.clu_shim cannot import {_PACKAGE} without TensorFlow: {what}. The shim "
        f"was written for {_SHIM_WRITTEN_FOR}, installed is clu {_clu_version()}, so clu's "
        "module layout has changed. Update _TF_FREE_EXPORTS in fno/training/clu_shim.py, "
        "delete the shim if clu now imports TensorFlow lazily, or install tensorflow."
    )


def _tf_only_getattr(name: str) -> Any:
    """Module ``__getattr__`` (PEP 562) of the shim package: explain TF-only names."""
    if name in _TF_ONLY_NAMES:
        raise AttributeError(
            f"{_PACKAGE}.{name} needs TensorFlow, which is not installed (fno loaded "
            f"{_PACKAGE} without it). Use fno.training.writers.create_writers()."
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

    Idempotent. Runs when this module is imported; afterwards
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
