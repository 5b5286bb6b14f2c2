"""Each benchmark at a tiny size (``python -m bench --quick``): it runs end to end, on the
real parts, and what it counts is right. No figure of speed is asserted: those are read
from a full run's table, never checked in the suite, where shared machines make them flake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import main
from bench.log_volume import LINE_BYTES

pytestmark = pytest.mark.bench


def run_quick(name: str, results: Path) -> dict[str, Any]:
    assert main([name, "--quick", "--results", str(results)]) == 0
    document: dict[str, Any] = json.loads((results / f"{name}.json").read_text())
    assert document["table"].startswith("| ")
    assert document["goals"], "every benchmark states its goals"
    assert (results / "summary.md").read_text().startswith("### ")
    return document


def test_dispatch_measures_every_system(tmp_path: Path) -> None:
    pytest.importorskip("celery", reason="the Celery peer needs: pip install -e '.[bench]'")
    data = run_quick("dispatch", tmp_path)["data"]

    assert set(data) == {
        "floor: bare boto3 long poll",
        "remote-executor",
        "remote-executor, to its receipt only",
        "remote-executor, GMS +50 ms",
        "Celery, wait_time_seconds=20, polling_interval=0",
        "Celery, kombu's defaults",
    }
    for figures in data.values():
        assert len(figures["samples"]) == 3
        assert all(0 < sample < 60 for sample in figures["samples"])
    # Receipt to RUNNING is one read of the request's state and the RUNNING write (a
    # readiness check of the worker may land inside one task's window: the median counts).
    for system in ("remote-executor", "remote-executor, GMS +50 ms"):
        calls = sorted(data[system]["gms_calls"])
        assert calls[0] >= 2 and calls[1] == 2, calls


def test_overhead_splits_each_task(tmp_path: Path) -> None:
    data = run_quick("overhead", tmp_path)["data"]

    start, finish, total = (
        data[span]["samples"]
        for span in (
            "start: received to the child's first line",
            "finish: the child's last line to terminal accepted",
            "total (start + finish)",
        )
    )
    assert len(start) == len(finish) == 3
    assert all(s > 0 for s in start + finish)
    assert total == pytest.approx([a + b for a, b in zip(start, finish, strict=True)])


def test_real_task_runs_the_recipe_three_ways(tmp_path: Path) -> None:
    pytest.importorskip("acryl.executor", reason="the peer needs: pip install -e '.[bench]'")
    data = run_quick("real_task", tmp_path)["data"]

    assert {key: len(value["samples"]) for key, value in data.items()} == {
        "direct": 1,
        "ours": 1,
        "acryl": 1,
    }


def test_idle_counts_calls_cpu_and_memory(tmp_path: Path) -> None:
    data = run_quick("idle", tmp_path)["data"]

    assert data["sqs_calls"] >= 1  # at least the first long poll
    assert data["cpu_seconds"] > 0
    assert 0 < data["rss_mb"] <= data["peak_rss_mb"]


def test_log_volume_keeps_the_whole_log_masked(tmp_path: Path) -> None:
    data = run_quick("log_volume", tmp_path)["data"]

    assert data["complete"] is True
    assert data["capped"]["complete"] is True  # head, marker, masked tail, within the cap
    assert data["capped"]["bytes"] <= 1024 * 1024 + 64 * 1024
    assert data["lines"] == 5_000_000 // LINE_BYTES
    assert data["bytes"] > data["lines"] * LINE_BYTES  # with the child's first and last lines
    assert data["floor_mb_per_second"] > 0


def test_scale_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data = run_quick("scale", tmp_path)["data"]

    assert set(data) == {"1", "2"}
    for figures in data.values():
        assert figures["lost"] == 0
        assert figures["doubled"] == 0
        assert figures["total_seconds"] > 0


def test_bridge_measures_each_path_from_the_ui_write(tmp_path: Path) -> None:
    data = run_quick("bridge", tmp_path)["data"]

    assert {
        "floor: the producer writes GMS and sends to SQS",
        "executor bridge (Events API)",
    } <= set(data)
    assert all(len(values) == 3 and all(v > 0 for v in values) for values in data.values())
