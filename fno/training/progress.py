"""Training throughput and ETA from completed work, not from dispatched work.

JAX dispatches a compiled call asynchronously: it returns long before the device has run
it, so timing the loop's Python (as clu's ReportProgress does) measures dispatch: the first
window reports the instant queueing of many steps, later ones the device's real pace. Here
the clock is read only where the host knows the device is done:

* around work that is not training (reading and writing metrics, evaluation, figures,
  checkpoints): :meth:`Progress.paused` waits for the state, which the steps so far
  produce, so a training window ends there, and the block's time is left out of the
  training rate;
* around a call that compiles (the first call of each size, fno.training.setup.call_size):
  it is timed alone and left out of the rate with its steps.

So ``steps_per_sec`` is the training rate of the steps of its window, and the first window
agrees with the later ones. The ETA divides the remaining steps by the rate of the whole run
so far (evaluation and checkpoints included, compilation not).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax


class Progress:
    """Times the training windows between reports; see the module docstring.

    The loop calls :meth:`before_call` before it dispatches a call and :meth:`after_call`
    once it has the call's state, and does everything else (reading the metrics,
    :meth:`report`, evaluation, checkpoints) inside :meth:`paused`.
    """

    def __init__(self, total_steps: int, clock: Callable[[], float] = time.perf_counter):
        self.total_steps = total_steps
        self._clock = clock
        self._start = self._mark = clock()  # _mark: when the device was last known idle
        self._window_seconds, self._window_steps = 0.0, 0
        self._run_steps = 0  # steps timed since the start
        self._compile_seconds = 0.0
        self._sizes: set[int] = set()  # call sizes compiled already
        self._compiling = False

    def _close_segment(self) -> None:
        """Add the time since the mark to the window; the mark moves to now."""
        now = self._clock()
        self._window_seconds += now - self._mark
        self._mark = now

    def before_call(self, state: Any, size: int) -> None:
        """Before dispatching a call of ``size`` steps: if this size compiles, wait for the
        work in flight so the compilation is timed alone."""
        self._compiling = size not in self._sizes
        if self._compiling:
            jax.block_until_ready(state)
            self._close_segment()

    def after_call(self, state: Any, size: int) -> None:
        """After dispatching a call (``state`` is its result)."""
        if not self._compiling:
            self._window_steps += size
            self._run_steps += size
            return
        jax.block_until_ready(state)
        now = self._clock()
        self._compile_seconds += now - self._mark
        self._mark = now
        self._sizes.add(size)
        self._compiling = False

    @contextlib.contextmanager
    def paused(self, state: Any) -> Iterator[None]:
        """Work that is not training: the steps in flight are finished (and counted) first,
        the block's own time is left out of the training rate."""
        jax.block_until_ready(state)
        self._close_segment()
        try:
            yield
        finally:
            self._mark = self._clock()

    def report(self, step: int) -> tuple[dict[str, float], str]:
        """Inside :meth:`paused` at ``step``: the window's scalars (``steps_per_sec``
        unless every step of the window compiled, ``uptime``) and a console line; a new
        window starts."""
        now = self._clock()
        scalars = {"uptime": now - self._start}
        line = f"step {step}/{self.total_steps} ({100 * step / max(self.total_steps, 1):.1f}%)"
        if self._window_steps and self._window_seconds > 0:
            scalars["steps_per_sec"] = self._window_steps / self._window_seconds
            line += f": {scalars['steps_per_sec']:.1f} steps/s"
        timed = now - self._start - self._compile_seconds
        if self._run_steps and timed > 0 and step < self.total_steps:
            line += f", ETA {_format_seconds((self.total_steps - step) * timed / self._run_steps)}"
        self._window_seconds, self._window_steps = 0.0, 0
        return scalars, line


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
