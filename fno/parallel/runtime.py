"""Process start-up: give glibc's allocator transparent huge pages before anything else runs.

Why: on CPU, each XLA training step allocates and frees ~100 MB of scratch. glibc returns
those pages to the kernel after every step and then page-faults them back in (tens of
thousands of faults per step), a large share of a step at the paper's size.
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` makes malloc ask for transparent huge pages, which
removes most of the faults (docs/performance.md has the measurement). glibc reads tunables
only at process start, so the entry points re-execute themselves once with the variable set.

Safe by construction: Linux with glibc only (other platforms and libcs are untouched), never
when the user already set GLIBC_TUNABLES (their choice wins), and ``FNO_MALLOC_TUNING=0``
turns it off. Unknown tunables are ignored by older glibc versions.
"""

from __future__ import annotations

import os
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb=1"


def wants_allocator_tuning(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """True when this process should re-execute itself with the allocator tunable."""
    if environ.get("FNO_MALLOC_TUNING", "1") == "0" or "GLIBC_TUNABLES" in environ:
        return False
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def ensure_allocator_tuning() -> None:
    """Re-execute the current command once with ``GLIBC_TUNABLES`` set (see module doc).

    Must run before JAX (or any large library) is imported; the process keeps its PID.
    """
    if not wants_allocator_tuning():
        return
    os.environ["GLIBC_TUNABLES"] = TUNABLE
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
