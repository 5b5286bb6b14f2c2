"""Structured logs (structlog): an event name and fields, secrets masked at the end.

The shared Redactor masks each rendered line, so no call site has to remember to,
and a value nested in a dict, a list or an exception is masked like any other (the
Redactor knows the JSON- and repr-escaped forms the renderers write).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from remote_executor.secrets import Redactor


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
        return redactor.redact(str(renderer(logger, name, event)))

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
