"""The run record: one line of a RUNNING report, written and read back."""

from __future__ import annotations

from remote_executor.runrecord import RunRecord, new_instance


def running(report: str) -> dict[str, object]:
    return {"status": "RUNNING", "report": report}


def test_a_record_round_trips_through_the_report_line() -> None:
    record = RunRecord(2, 3, "remote", new_instance("remote"), 1_764_880_000_123)
    report = (
        f"~~~~ RUN_INGEST on remote-executor 0.1.0, worker remote ~~~~\n{record.line()}\nRunning."
    )
    assert RunRecord.parse(running(report)) == record
    released = record.release()
    assert RunRecord.parse(running(f"header\n{released.line()}")) == released


def test_only_the_second_line_of_a_running_result_counts() -> None:
    line = RunRecord(1, 3, "remote", "x@h:1:abc", 1).line()
    assert RunRecord.parse({"status": "SUCCESS", "report": f"h\n{line}"}) is None
    # A log that prints a record line cannot forge one: it starts further down.
    assert RunRecord.parse(running(f"h\nRunning.\n{line}")) is None
    assert RunRecord.parse(running("h")) is None
    assert RunRecord.parse({"status": "RUNNING", "report": 5}) is None
    assert RunRecord.parse(None) is None


def test_alive_means_a_fresh_heartbeat_that_was_not_released() -> None:
    record = RunRecord(1, 3, "remote", "x@h:1:abc", 100_000)
    assert record.alive(15, at_ms=114_999)
    assert not record.alive(15, at_ms=115_000)
    assert not record.release().alive(15, at_ms=record.release().at_ms)
    assert record.beat(200_000).at_ms == 200_000


def test_instances_differ_between_processes_of_one_worker_id() -> None:
    assert new_instance("remote") != new_instance("remote")
    assert new_instance("remote").startswith("remote@")
