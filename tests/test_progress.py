"""Throughput and ETA measure completed training steps (fno.training.progress)."""

import json
import statistics

import pytest

from fno.training import loop, progress
from tests.helpers import tiny_config


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_leaves_out_compiling_calls_and_paused_work():
    clock = FakeClock()
    p = progress.Progress(100, clock=clock)
    p.before_call(None, 1)
    clock.now = 5.0  # the first call of size 1 compiles: 5 s, not counted
    p.after_call(None, 1)
    for _ in range(9):  # nine steps of 0.1 s
        p.before_call(None, 1)
        clock.now += 0.1
        p.after_call(None, 1)
    with p.paused(None):
        clock.now += 0.2  # reading the metrics: not training
        scalars, line = p.report(10)
    assert scalars["steps_per_sec"] == pytest.approx(10.0)
    assert scalars["uptime"] == pytest.approx(6.1)
    # ETA: 90 steps at the run's 1.1 s per 9 timed steps (paused work included).
    assert line == "step 10/100 (10.0%): 10.0 steps/s, ETA 0m11s"

    for _ in range(10):
        p.before_call(None, 1)
        clock.now += 0.05
        p.after_call(None, 1)
    with p.paused(None):
        clock.now += 30.0  # an evaluation: not training
    p.before_call(None, 2)  # a new call size compiles again
    clock.now += 7.0
    p.after_call(None, 2)
    with p.paused(None):
        scalars, _ = p.report(22)
    assert scalars["steps_per_sec"] == pytest.approx(20.0)


def test_a_window_of_compiling_calls_reports_no_rate():
    clock = FakeClock()
    p = progress.Progress(10, clock=clock)
    p.before_call(None, 10)
    clock.now = 3.0
    p.after_call(None, 10)
    with p.paused(None):
        scalars, line = p.report(10)
    assert "steps_per_sec" not in scalars and line == "step 10/10 (100.0%)"


def test_first_window_agrees_with_later_ones(dataset, tmp_path):
    """The real loop: steps_per_sec per report window, in metrics.jsonl. JAX dispatches steps
    asynchronously, so timing the dispatches made the first window (compilation aside) look
    orders of magnitude faster or slower than the rest. An evaluation mid-run must not
    count as training time either."""
    config = tiny_config(dataset, num_train_steps=200, log_every_steps=50,
                         eval_every_steps=100, checkpoint_every_steps=0, num_plot_samples=0)
    loop.train_and_evaluate(config, str(tmp_path))
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    windows = [line for line in lines if "train_loss" in line]
    assert [w["step"] for w in windows] == [50, 100, 150, 200]
    rates = [w["steps_per_sec"] for w in windows]
    for w in windows:
        assert w["samples_per_s"] == pytest.approx(w["steps_per_sec"] * config.batch_size)
    later = statistics.median(rates[1:])
    assert 0.5 < rates[0] / later < 2.0, rates
