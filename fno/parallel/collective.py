"""Decisions that all processes of a job take together, with timeouts and failure news.

Why: in a multi-process job every host-dependent question (is the workdir lock free, is the
dataset present and identical, which checkpoint reads back) must get the same answer on
every process *before* any collective library call (orbax restore, a training step), or the
processes pair up in different collectives and the whole job aborts, losing the error. So
each process answers locally, then :func:`agree` exchanges the answers and every process
takes the same branch: all continue, or all raise one-line :class:`FnoError`\\ s (the
failing process its own message, the others one that names it).

The exchange runs over JAX's distributed key-value store (the coordination service that
``jax.distributed.initialize`` starts), not over device collectives, for two reasons: it
can time out (``FNO_BARRIER_TIMEOUT`` seconds, default 600), and a process that fails
anywhere can publish its error (:func:`report_failure`), which every process waiting in an
fno barrier sees at once instead of waiting for the timeout.

All processes must make the same sequence of calls (they do: the code paths are the same on
every process, and branches depend only on agreed values); the n-th call of each process
forms one exchange.
"""

from __future__ import annotations

import itertools
import os
import re
import time

from fno.errors import FnoError

DEFAULT_TIMEOUT_S = 600.0
_FAILURE_KEY = "fno/failure"
_POLL_S = 0.05
_calls = itertools.count()


def timeout_s() -> float:
    """Seconds a process waits for its peers at an fno barrier (``FNO_BARRIER_TIMEOUT``)."""
    raw = os.environ.get("FNO_BARRIER_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise FnoError(f"FNO_BARRIER_TIMEOUT={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise FnoError(f"FNO_BARRIER_TIMEOUT={raw} must be > 0")
    return value


def _process() -> tuple[int, int]:
    import jax

    return jax.process_index(), jax.process_count()


def _client():
    from jax._src import distributed

    client = distributed.global_state.client
    if client is None:
        raise RuntimeError("several JAX processes but no distributed client")
    return client


def _try_get(client, key: str) -> str | None:
    try:
        return client.key_value_try_get(key)
    except Exception:  # noqa: BLE001 - NOT_FOUND is an XlaRuntimeError
        return None


class AgreedError(FnoError):
    """An error every process raised at the same agreement point (see :func:`agree`)."""

    everyone = True


def exchange(what: str, value: str, timeout: float | None = None,
             watch_failures: bool = True) -> list[str]:
    """Every process's ``value`` for this call, in process order.

    Raises :class:`FnoError` when a peer reported a failure (:func:`report_failure`; unless
    ``watch_failures`` is off) or did not arrive within ``timeout`` (default
    :func:`timeout_s`).
    """
    index, count = _process()
    if count == 1:
        return [value]
    client = _client()
    tag = f"fno/{next(_calls)}/{re.sub(r'[^A-Za-z0-9_.-]', '_', what)}"
    client.key_value_set(f"{tag}/{index}", value)
    limit = timeout_s() if timeout is None else timeout
    deadline = time.monotonic() + limit
    values: list[str | None] = [None] * count
    while True:
        for i in range(count):
            if values[i] is None:
                values[i] = _try_get(client, f"{tag}/{i}")
        if all(v is not None for v in values):
            return [v for v in values if v is not None]
        failure = watch_failures and _try_get(client, _FAILURE_KEY)
        if failure:
            raise FnoError(f"stopping because {failure}")
        if time.monotonic() > deadline:
            missing = [str(i) for i, v in enumerate(values) if v is None]
            raise FnoError(f"process(es) {', '.join(missing)} did not reach '{what}' within "
                           f"{limit:g} s (FNO_BARRIER_TIMEOUT); see their output")
        time.sleep(_POLL_S)


def barrier(what: str) -> None:
    """Wait until every process gets here (bounded, see :func:`exchange`)."""
    exchange(what, "")


def agree(what: str, error: str | None) -> None:
    """Continue only if no process has an ``error``; else raise on every process.

    The process that failed raises its own message; the others raise one naming it, so a
    user sees the cause on every process's output.
    """
    index, _ = _process()
    answers = exchange(what, error or "")
    failed = [(i, message) for i, message in enumerate(answers) if message]
    if not failed:
        return
    if error:
        raise AgreedError(error)
    first, message = failed[0]
    raise AgreedError(f"process {first} failed ({what}): {message}")


def same(what: str, value: str, describe: str) -> None:
    """Require every process to hold the same ``value``; else each process whose value
    differs from process 0's raises an error saying so, and the others one naming it."""
    index, _ = _process()
    values = exchange(what, value)
    differ = [i for i, v in enumerate(values) if v != values[0]]
    if not differ:
        return
    if index in differ:
        raise AgreedError(f"{describe} on process {index} differs from process 0's "
                          f"({value} vs {values[0]})")
    raise AgreedError(f"{describe} differs between processes (process(es) "
                   f"{', '.join(map(str, differ))} differ from process 0)")


def leave_together(timeout: float) -> bool:
    """Disconnect from the job together with the other processes if they are all failing
    too (within ``timeout`` seconds); never raises. Returns whether they were.

    A process that simply exits is seen by the coordination service as lost, and the service
    then aborts the processes still connected (SIGABRT), so their own exit status and last
    output would depend on who left first. So: a short barrier proving everyone is leaving,
    then JAX's own shutdown, whose barrier then passes at once for all. A peer that is stuck
    in a device collective never arrives; then this process leaves alone after ``timeout``.
    """
    try:
        exchange("exit", "", timeout=timeout, watch_failures=False)
        import jax

        coordinator = jax.process_index() == 0  # hosts the coordination service
        jax.distributed.shutdown()
        if coordinator:
            time.sleep(0.5)  # the service goes with this process: let the others finish
        return True
    except Exception:  # noqa: BLE001 - leaving anyway
        return False


def report_failure(message: str) -> None:
    """Publish this process's fatal error, so that peers waiting in an fno barrier stop now
    with that message instead of at their timeout. Best effort: never raises."""
    try:
        index, count = _process()
        if count > 1:
            _client().key_value_set(_FAILURE_KEY, f"process {index} failed: {message}")
    except Exception:  # noqa: BLE001 - already failing; the caller exits anyway
        pass
