"""``render.gcpause.gc_paused``: the collector off inside, back as it was outside, however
the block ends and however many threads or nested blocks are inside."""

from __future__ import annotations

import gc
import threading

import pytest

from tlrules.render.gcpause import gc_paused


def test_nested_blocks_restart_the_collector_when_the_last_one_ends() -> None:
    assert gc.isenabled()
    with gc_paused:
        assert not gc.isenabled()
        with gc_paused:
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block is still inside
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused() -> None:
    gc.disable()
    try:
        with gc_paused:
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_decorated_function_that_raises_restarts_the_collector() -> None:
    @gc_paused
    def fails() -> None:
        assert not gc.isenabled()
        raise KeyError("x")

    with pytest.raises(KeyError):
        fails()
    assert gc.isenabled()


def test_threads_share_one_count() -> None:
    inside, leave = threading.Barrier(2), threading.Event()
    seen: list[bool] = []

    def hold() -> None:
        with gc_paused:
            inside.wait()
            leave.wait()

    worker = threading.Thread(target=hold)
    worker.start()
    with gc_paused:
        inside.wait()
    seen.append(gc.isenabled())  # this thread is out, the worker still inside
    leave.set()
    worker.join()
    assert seen == [False]
    assert gc.isenabled()
