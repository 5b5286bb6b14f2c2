"""Structured logs (structlog): an event name and fields, secrets masked by a processor.

The redaction processor masks every string field with the shared Redactor, so
no call site has to remember to.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from remote_executor.secrets import Redactor


def _redacting(redactor: Redactor) -> structlog.types.Processor:
    def process(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        return {
            key: redactor.redact(value) if isinstance(value, str) else value
            for key, value in event.items()
        }

    return process


def configure_logging(
    redactor: Redactor, log_format: str = "auto", level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Configure structlog once for the process: JSON for machines, console for people."""
    out = stream or sys.stderr
    if log_format == "auto":
        log_format = "console" if out.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )

    def render(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        # Once more on the rendered line: values nested in lists, dicts or objects too.
        return redactor.redact(str(renderer(logger, name, event)))

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redacting(redactor),
            render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
