"""Small helpers shared by the integration tests."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "examples" / "recipes"


def make_database(path: Path, table: str) -> None:
    """An SQLite database with one table of the given name."""
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, label TEXT)")


def structured(result: dict[str, object]) -> dict[str, object]:
    """The decoded structured report of a result."""
    report = result["structuredReport"]
    assert isinstance(report, dict)
    return json.loads(str(report["serializedValue"]))  # type: ignore[no-any-return]


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """host:port of a listener that never accepts: connects succeed, nothing answers, as a
    firewalled or overloaded database does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def processes_of(request_id: str) -> list[int]:
    """Live processes whose command line names the request (its recipe path does)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if request_id.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found
