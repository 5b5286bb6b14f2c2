"""TaskWorkspace and prune: one directory per task attempt, redacted reports, bounded disk."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from remote_executor.secrets import MASK, Redactor
from remote_executor.workspace import FINISHED_MARKER, TaskWorkspace, prune

SECRET = "hunter22-secret"


def redactor(*values: str) -> Redactor:
    r = Redactor()
    r.add(*values)
    return r


def finished(root: Path, request_id: str, at: float) -> TaskWorkspace:
    """A task directory that finished at ``at`` (seconds since the epoch)."""
    ws = TaskWorkspace(root, request_id, 1)
    ws.reset()
    ws.finish()
    os.utime(ws.dir / FINISHED_MARKER, (at, at))
    return ws


def unfinished(root: Path, request_id: str, at: float) -> TaskWorkspace:
    """A task directory whose task never finished, last changed at ``at``."""
    ws = TaskWorkspace(root, request_id, 1)
    ws.reset()
    os.utime(ws.dir, (at, at))
    return ws


def names(paths: list[Path]) -> set[str]:
    return {path.name for path in paths}


def test_directory_is_named_by_safe_request_id_and_attempt(tmp_path: Path) -> None:
    ws = TaskWorkspace(tmp_path, "urn:li:dataHubExecutionRequest:ab/c d-e_f.g", 3)

    assert ws.name == "urn_li_dataHubExecutionRequest_ab_c_d-e_f.g.3"
    assert ws.dir == tmp_path / ws.name
    assert ws.log_path == ws.dir / "ingestion.log"
    assert ws.report_path == ws.dir / "report.json"
    assert ws.recipe_path == ws.dir / "recipe.yml"
    assert ws.metadata_path == ws.dir / "metadata.json"
    assert ws.tmp_dir == ws.dir / "tmp"


def test_attempts_of_one_request_get_their_own_directories(tmp_path: Path) -> None:
    first, second = TaskWorkspace(tmp_path, "r", 1), TaskWorkspace(tmp_path, "r", 2)

    assert first.dir != second.dir


@pytest.mark.parametrize("request_id", ["..", "../../etc", "/abs/path", ""])
def test_no_request_id_leaves_the_root(tmp_path: Path, request_id: str) -> None:
    ws = TaskWorkspace(tmp_path, request_id, 1)
    ws.reset()

    assert ws.dir.parent == tmp_path
    assert ws.dir.resolve().parent == tmp_path.resolve()


def test_reset_clears_an_old_log_and_creates_a_private_directory(tmp_path: Path) -> None:
    ws = TaskWorkspace(tmp_path / "work", "req", 1)
    ws.reset()
    ws.log_path.write_text("output of an earlier run\n")
    (ws.dir / FINISHED_MARKER).touch()

    ws.reset()

    assert ws.log_path.read_text() == ""
    assert sorted(p.name for p in ws.dir.iterdir()) == ["ingestion.log", "tmp"]
    assert stat.S_IMODE(ws.dir.stat().st_mode) == 0o700


def test_finish_removes_tmp_and_marks_the_directory(tmp_path: Path) -> None:
    ws = TaskWorkspace(tmp_path, "req", 1)
    ws.reset()
    (ws.tmp_dir / "spill.bin").write_bytes(b"x" * 100)
    before = time.time()

    ws.finish()

    assert not ws.tmp_dir.exists()
    assert ws.log_path.exists()
    assert (ws.dir / FINISHED_MARKER).stat().st_mtime >= before - 1


def test_truncated_report_is_redacted_on_disk_and_not_returned(tmp_path: Path) -> None:
    ws = TaskWorkspace(tmp_path, "req", 1)
    ws.reset()
    ws.report_path.write_text(f'{{"source": {{"password": "{SECRET}", "events": [1, 2')

    assert ws.structured_report(redactor(SECRET)) is None

    on_disk = ws.report_path.read_text()
    assert SECRET not in on_disk
    assert on_disk == f'{{"source": {{"password": "{MASK}", "events": [1, 2'


def test_valid_report_is_redacted_on_disk_and_returned(tmp_path: Path) -> None:
    ws = TaskWorkspace(tmp_path, "req", 1)
    ws.reset()
    ws.report_path.write_text(json.dumps({"uri": f"postgresql://u:{SECRET}@db/x", "n": 3}))

    report = ws.structured_report(redactor(SECRET))

    assert report is not None
    assert json.loads(report) == {"uri": f"postgresql://u:{MASK}@db/x", "n": 3}
    assert ws.report_path.read_text() == report
    assert sorted(p.name for p in ws.dir.iterdir()) == ["ingestion.log", "report.json", "tmp"]


def test_undecodable_bytes_in_the_report_do_not_crash(tmp_path: Path) -> None:
    ws = TaskWorkspace(tmp_path, "req", 1)
    ws.reset()
    ws.report_path.write_bytes(b'{"note": "\xff\xfe", "password": "' + SECRET.encode() + b'"}')

    report = ws.structured_report(redactor(SECRET))

    assert report is not None
    assert json.loads(report) == {"note": "\ufffd\ufffd", "password": MASK}
    assert SECRET.encode() not in ws.report_path.read_bytes()


def test_missing_report_is_none_and_not_created(tmp_path: Path) -> None:
    ws = TaskWorkspace(tmp_path, "req", 1)
    ws.reset()

    assert ws.structured_report(redactor(SECRET)) is None
    assert not ws.report_path.exists()


@pytest.fixture
def work(tmp_path: Path) -> dict[str, TaskWorkspace]:
    """Five finished tasks, an active one (finished earliest) and an unfinished one."""
    root = tmp_path / "work"
    made = {f"done{i}": finished(root, f"done{i}", 1000.0 * i) for i in range(1, 6)}
    made["active"] = finished(root, "active", 10.0)
    made["unfinished"] = unfinished(root, "unfinished", 4500.0)
    return made


def test_prune_keeps_the_newest_finished_and_leaves_running_tasks(
    tmp_path: Path, work: dict[str, TaskWorkspace]
) -> None:
    removed = prune(tmp_path / "work", keep=2, active={work["active"].name})

    assert names(removed) == {work[k].name for k in ("done1", "done2", "done3")}
    assert {p.name for p in (tmp_path / "work").iterdir()} == {
        work[k].name for k in ("done4", "done5", "active", "unfinished")
    }


def test_prune_at_start_up_counts_unfinished_at_their_own_mtime(
    tmp_path: Path, work: dict[str, TaskWorkspace]
) -> None:
    removed = prune(
        tmp_path / "work", keep=2, active={work["active"].name}, include_unfinished=True
    )

    assert names(removed) == {work[k].name for k in ("done1", "done2", "done3", "done4")}
    assert {p.name for p in (tmp_path / "work").iterdir()} == {
        work[k].name for k in ("done5", "unfinished", "active")
    }
    # The kept leftover is marked finished at its own time: later prunes count it.
    marker = work["unfinished"].dir / ".finished"
    assert marker.stat().st_mtime == 4500.0
    assert names(prune(tmp_path / "work", keep=1, active={work["active"].name})) == {
        work["unfinished"].name
    }


def test_keep_zero_removes_every_finished_one_and_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "work"
    for i in range(3):
        finished(root, f"done{i}", 1000.0 + i)
    (root / "worker.log").write_text("not a task\n")
    outside = tmp_path / "outside"
    (outside / FINISHED_MARKER).parent.mkdir()
    (outside / FINISHED_MARKER).touch()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "someone-elses-dir").mkdir()

    removed = prune(root, keep=0, include_unfinished=True)

    assert names(removed) == {"done0.1", "done1.1", "done2.1"}
    assert sorted(p.name for p in root.iterdir()) == ["link", "someone-elses-dir", "worker.log"]
    assert (outside / FINISHED_MARKER).exists()


def test_prune_of_a_missing_root_removes_nothing(tmp_path: Path) -> None:
    assert prune(tmp_path / "never-created", keep=0, include_unfinished=True) == []


def test_prune_of_a_root_that_is_a_file_logs_and_returns_nothing(tmp_path: Path) -> None:
    root = tmp_path / "work"
    root.write_text("")

    with capture_logs() as logs:
        assert prune(root, keep=0) == []

    assert [entry["event"] for entry in logs] == ["work directory not listed"]


def test_negative_keep_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep must be 0 or more"):
        prune(tmp_path, keep=-1)


class _Meanwhile(Collection[str]):
    """No task active; the first question about ``when`` runs ``then``, as another thread
    could at that moment."""

    def __init__(self, when: str, then: Callable[[], None]) -> None:
        self._when, self._then = when, then
        self.ran = False

    def __contains__(self, name: object) -> bool:
        if name == self._when and not self.ran:
            self.ran = True
            self._then()
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize(("when", "gone"), [("e.1", "a.1"), ("a.1", "e.1")])
def test_a_directory_removed_meanwhile_is_skipped(tmp_path: Path, when: str, gone: str) -> None:
    # "a.1" vanishes after it was listed and checked; "e.1" after listing, before its check.
    root = tmp_path / "work"
    for i, request_id in enumerate(["a", "b", "c", "d", "e"]):
        finished(root, request_id, 1000.0 + i)

    meanwhile = _Meanwhile(when, lambda: os.rename(root / gone, tmp_path / gone))

    removed = prune(root, keep=0, active=meanwhile)

    assert meanwhile.ran
    assert names(removed) == {"a.1", "b.1", "c.1", "d.1", "e.1"} - {gone}
    assert list(root.iterdir()) == []


def test_a_directory_reset_meanwhile_is_not_removed(tmp_path: Path) -> None:
    root = tmp_path / "work"
    old = finished(root, "a", 1000.0)
    finished(root, "b", 2000.0)

    meanwhile = _Meanwhile("b.1", old.reset)

    removed = prune(root, keep=0, active=meanwhile)

    assert meanwhile.ran
    assert names(removed) == {"b.1"}
    assert old.log_path.exists()
