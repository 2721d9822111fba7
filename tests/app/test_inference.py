"""The process-wide model work: content hash of a case, single-flight shared results, one inference worker."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
from app_helpers import make_tiny_case

from deepoxymap.ui import inference


def test_content_hash_follows_every_pixel_and_field() -> None:
    """Equal content -> equal key (two loads of one case); one pixel, one field or the id changes it."""
    a, b = make_tiny_case(), make_tiny_case()
    assert a is not b and inference.case_key(a) == inference.case_key(b)
    s0 = a.series[0]
    data = s0.stack.data.copy()
    data[0, 0, 5, 5] += 1.0
    changed = dataclasses.replace(
        a, series=(dataclasses.replace(s0, stack=dataclasses.replace(s0.stack, data=data)), *a.series[1:])
    )
    assert inference.case_key(changed) != inference.case_key(a)
    assert inference.case_key(dataclasses.replace(a, case_id="other")) != inference.case_key(a)
    assert inference.case_key(dataclasses.replace(a, label="healthy")) != inference.case_key(a)
    assert inference.content_hash(1) != inference.content_hash("1") != inference.content_hash(1.0)
    assert inference.content_hash(np.zeros(3, np.float32)) != inference.content_hash(np.zeros(3, np.float64))
    assert inference.content_hash({"a": 1, "b": 2}) == inference.content_hash({"b": 2, "a": 1})


def test_second_caller_waits_for_the_first_computation() -> None:
    """Two threads ask for one result at once: it is computed once and both get the same object."""
    store = inference.SharedResults()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def compute() -> object:
        calls.append(1)
        started.set()
        release.wait(10)
        return object()

    got: list[object] = []
    t1 = threading.Thread(target=lambda: got.append(store.get_or_compute("case", "k", compute)))
    t1.start()
    assert started.wait(10)
    t2 = threading.Thread(target=lambda: got.append(store.get_or_compute("case", "k", compute)))
    t2.start()
    time.sleep(0.1)
    assert len(got) == 0, "the second caller did not wait"
    release.set()
    t1.join(10)
    t2.join(10)
    assert len(calls) == 1 and len(got) == 2 and got[0] is got[1]
    assert store.get_or_compute("case", "k", compute) is got[0] and len(calls) == 1


def test_a_failure_reaches_every_waiter_and_is_not_stored() -> None:
    store = inference.SharedResults()
    started, release = threading.Event(), threading.Event()

    def boom() -> object:
        started.set()
        release.wait(10)
        raise RuntimeError("bad case")

    errors: list[str] = []

    def ask() -> None:
        try:
            store.get_or_compute("case", "k", boom)
        except RuntimeError as exc:
            errors.append(str(exc))

    t1 = threading.Thread(target=ask)
    t1.start()
    assert started.wait(10)
    t2 = threading.Thread(target=ask)
    t2.start()
    time.sleep(0.1)
    release.set()
    t1.join(10)
    t2.join(10)
    assert errors == ["bad case", "bad case"]
    assert store.get_or_compute("case", "k", lambda: 7) == 7  # nothing was stored: computed again


def test_an_interrupted_owner_leaves_the_work_to_the_waiter() -> None:
    """A Streamlit rerun/stop (a BaseException) in the computing thread is not an error: the waiter computes."""

    class Stop(BaseException):
        pass

    store = inference.SharedResults()
    started, release = threading.Event(), threading.Event()

    def interrupted() -> object:
        started.set()
        release.wait(10)
        raise Stop

    def owner() -> None:
        with pytest.raises(Stop):
            store.get_or_compute("case", "k", interrupted)

    got: list[int] = []
    t1 = threading.Thread(target=owner)
    t1.start()
    assert started.wait(10)
    t2 = threading.Thread(target=lambda: got.append(store.get_or_compute("case", "k", lambda: 42)))
    t2.start()
    time.sleep(0.1)
    release.set()
    t1.join(10)
    t2.join(10)
    assert got == [42]


def test_store_is_bounded_by_cases_and_entries() -> None:
    store = inference.SharedResults(max_cases=2, max_entries=3)
    for c in ("a", "b", "c"):
        for k in range(5):
            store.get_or_compute(c, k, lambda k=k: k)
    assert store.peek("a", 4) is None and store.peek("c", 4) == 4 and store.peek("c", 0) is None
    assert len(store) == 6


def test_model_calls_run_on_one_worker_thread() -> None:
    """Calls from several threads run one at a time on the same worker thread."""
    names: set[str] = set()
    active, peak = [0], [0]
    lock = threading.Lock()

    def call() -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return threading.current_thread().name

    threads = [threading.Thread(target=lambda: names.add(inference.run_model(call))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(names) == 1 and next(iter(names)).startswith("dox-inference") and peak[0] == 1
    assert inference.run_model(lambda: inference.run_model(call)).startswith("dox-inference")  # re-entrant
