"""Structured logs: JSON lines with the event and fields, secrets masked by the processor."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from remote_executor.logs import configure_logging
from remote_executor.secrets import MASK, Redactor

SECRET = "log-secret-value-789"


@pytest.fixture(autouse=True)
def reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def json_logs_masking(*values: str) -> io.StringIO:
    """JSON logs into a string, with ``values`` masked."""
    redactor = Redactor()
    redactor.add(*values)
    stream = io.StringIO()
    configure_logging(redactor, "json", "INFO", stream)
    return stream


def test_json_lines_with_secrets_masked() -> None:
    stream = json_logs_masking(SECRET)

    structlog.get_logger("t").info(
        f"connecting with {SECRET}", url=f"postgres://u:{SECRET}@db", n=3
    )

    record = json.loads(stream.getvalue())
    assert record["event"] == f"connecting with {MASK}"
    assert record["url"] == f"postgres://u:{MASK}@db"
    assert record["n"] == 3
    assert record["level"] == "info"
    assert "timestamp" in record
    assert SECRET not in stream.getvalue()


def test_values_added_after_configuration_are_masked_too() -> None:
    redactor = Redactor()
    stream = io.StringIO()
    configure_logging(redactor, "json", "INFO", stream)

    redactor.add(SECRET)
    structlog.get_logger("t").warning("failed", error=f"auth failed for {SECRET}")

    assert json.loads(stream.getvalue())["error"] == f"auth failed for {MASK}"


def test_level_filters() -> None:
    stream = io.StringIO()
    configure_logging(Redactor(), "json", "warning", stream)

    structlog.get_logger("t").info("hidden")
    structlog.get_logger("t").error("shown")

    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["shown"]


def test_auto_is_json_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging(Redactor(), "auto", "INFO", stream)

    structlog.get_logger("t").info("hello", k="v")

    assert json.loads(stream.getvalue())["k"] == "v"


def test_console_format_masks_too() -> None:
    redactor = Redactor()
    redactor.add(SECRET)
    stream = io.StringIO()
    configure_logging(redactor, "console", "INFO", stream)

    structlog.get_logger("t").info("hello", token=SECRET)

    assert "hello" in stream.getvalue()
    assert SECRET not in stream.getvalue()


def test_values_nested_in_fields_are_masked() -> None:
    stream = json_logs_masking(SECRET)

    structlog.get_logger("t").info(
        "nested", config={"password": SECRET, "hosts": [f"u:{SECRET}@db"]}, pair=(1, SECRET)
    )

    record = json.loads(stream.getvalue())
    assert record["config"] == {"password": MASK, "hosts": [f"u:{MASK}@db"]}
    assert record["pair"] == [1, MASK]
    assert SECRET not in stream.getvalue()
