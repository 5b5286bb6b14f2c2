"""Loops survive their iterations' errors; a dead loop is named for /healthz."""

from __future__ import annotations

import threading

import pytest

from remote_executor.loops import MAX_RESTARTS, Loop, Loops


def test_an_iteration_that_raises_is_counted_and_the_loop_goes_on() -> None:
    calls: list[int] = []
    errors: list[str] = []
    enough = threading.Event()

    def iteration() -> None:
        calls.append(1)
        if len(calls) >= 5:
            enough.set()
        raise ValueError("not JSON")

    loop = Loop("cancel-watcher", iteration, 0.001, on_error=lambda name, _: errors.append(name))
    loops = Loops()
    loops.add(loop.start())
    assert enough.wait(10)
    loop.stop()
    assert loop.errors >= 5
    assert errors[:5] == ["cancel-watcher"] * 5
    assert loop.alive
    assert loops.dead is None


def test_a_loop_is_restarted_and_named_dead_only_when_restarts_run_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threading, "excepthook", lambda _args: None)
    restarted: list[str] = []

    def iteration() -> None:
        raise SystemExit("bug")

    loop = Loop("lease-keeper", iteration, 0.001, on_restart=lambda n, _: restarted.append(n))
    loops = Loops()
    loops.add(loop.start())
    loop._thread.join(10)
    assert restarted == ["lease-keeper"] * MAX_RESTARTS
    assert loop.restarts == MAX_RESTARTS
    assert not loop.alive
    assert loops.dead == "background loop lease-keeper died: SystemExit('bug')"
    loops.remove(loop)
    assert loops.dead is None


def test_stop_waits_for_the_iteration_in_flight() -> None:
    started = threading.Event()
    release = threading.Event()
    done: list[bool] = []

    def iteration() -> None:
        started.set()
        release.wait(10)
        done.append(True)

    loop = Loop("heartbeat", iteration, 0.0).start()
    assert started.wait(10)
    threading.Timer(0.2, release.set).start()
    loop.stop(join_seconds=None)
    assert done == [True]


def test_a_restarted_loop_goes_on_iterating(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    enough = threading.Event()

    def iteration() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # escapes the iteration's own guard
        if len(calls) >= 3:
            enough.set()

    loop = Loop("reaper", iteration, 0.001).start()
    assert enough.wait(10)
    loop.stop()
    assert loop.restarts == 1
    assert loop.alive
