"""The metrics' floors measured in the background while a point run trains
(runs.floors_in_background): the very floors that evaluate_run then reads, never measured
twice, cancellable, and on a lowest-priority thread."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import denoiselab.metrics as metrics
from denoiselab.config import load_config
from denoiselab.runs import evaluate_run, floors_in_background, load_run
from denoiselab.runs.evaluation import _lowest_priority


def _no_more_floors(monkeypatch):
    def measured_again(*args, **kwargs):
        raise AssertionError("evaluate_run measured a floor that the background thread should have")

    monkeypatch.setattr(metrics, "reference_floor", measured_again)


@pytest.mark.parametrize("fixture", ["trained_run", "shapes_run"])
def test_background_floors_are_the_ones_evaluate_reads(fixture, request, tmp_path, monkeypatch):
    """Unconditional (one floor) and conditional (each class and the mixture): after the
    background thread, evaluate_run finds every floor it needs in the cache."""
    run = load_run(request.getfixturevalue(fixture))
    monkeypatch.setenv("DENOISELAB_CACHE", str(tmp_path))
    floors = floors_in_background(run.config)
    floors._thread.join()
    expected = run.num_classes + 1 if run.num_classes else 1
    assert floors.measured == expected
    assert len(list((tmp_path / "floors").glob("*.json"))) == expected
    _no_more_floors(monkeypatch)
    evaluate_run(run, repeats=1)  # would raise if one floor were missing or drawn differently


def test_image_data_and_point_files_start_nothing(tmp_path):
    assert floors_in_background(load_config("digits")) is None
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    assert floors_in_background(load_config("quick", [f"data.name={tmp_path / 'pts.npy'}"])) is None


def test_a_cancelled_floor_stops_and_writes_nothing(tmp_path):
    refs = [np.random.default_rng(i).normal(size=(300, 2)) for i in range(4)]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(metrics.FloorCancelled):
        metrics.cached_floor(refs, cache=tmp_path, cancel=cancel)
    assert not list(tmp_path.rglob("*.json"))
    assert metrics.cached_floor(refs, cache=tmp_path) == metrics.reference_floor(refs)


def test_two_threads_asking_for_one_floor_measure_it_once(tmp_path, monkeypatch):
    refs = [np.random.default_rng(10 + i).normal(size=(200, 2)) for i in range(4)]
    calls, real = [], metrics.reference_floor

    def counted(*args, **kwargs):
        calls.append(1)
        threading.Event().wait(0.2)  # the second thread arrives while the first measures
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics, "reference_floor", counted)
    results = [None, None]

    def ask(i):
        results[i] = metrics.cached_floor(refs, cache=tmp_path)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results[0] == results[1] == real(refs)


@pytest.mark.skipif(not hasattr(os, "setpriority") or not os.path.exists("/proc/self/task"), reason="Linux thread priorities")
def test_the_background_thread_and_its_pool_run_at_nice_19():
    from concurrent.futures import ThreadPoolExecutor

    seen = {}

    def work():
        _lowest_priority()
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        with ThreadPoolExecutor(2) as pool:
            seen["pool"] = set(pool.map(lambda _: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), range(4)))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == {"thread": 19, "pool": {19}}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != 19  # this thread is untouched
