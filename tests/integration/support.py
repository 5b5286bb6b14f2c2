"""Small helpers shared by the integration tests."""

from __future__ import annotations

import json
import sqlite3
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
