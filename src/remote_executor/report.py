"""The human report GMS shows: a summary, then the log tail, within GMS's size limit.

GMS keeps an aspect under about 1 MB; the CLI trims its own report to 800,000
characters for that reason. The report and the structured report share that
budget: the log tail is trimmed from the front first, and the structured
report is dropped (with a note) only when it alone leaves no room for a tail.
"""

from __future__ import annotations

from dataclasses import dataclass

LOG_HEADER = "~~~~ Execution log (tail) ~~~~"
MIN_TAIL_CHARS = 2_000


@dataclass(frozen=True)
class ComposedReport:
    """The two texts that go into the result aspect."""

    report: str
    structured_report: str | None


def compose_report(
    summary: list[str], tail: str, structured: str | None, max_chars: int
) -> ComposedReport:
    """Summary lines, then as much of the tail as fits beside the structured report."""
    head = "\n".join(summary)
    notes: list[str] = []
    used = len(head) + len(LOG_HEADER) + 200  # room for the notes and newlines
    tail_room = min(MIN_TAIL_CHARS, len(tail))
    if structured is not None and used + len(structured) + tail_room > max_chars:
        notes.append(
            f"The structured report ({len(structured)} characters) was left out: with the "
            f"log it exceeds GMS's limit of {max_chars} characters."
        )
        structured = None
    budget = max(0, max_chars - used - (len(structured) if structured else 0))
    if len(tail) > budget:
        cut = len(tail) - budget
        newline = tail.find("\n", cut)
        tail = tail[newline + 1 :] if 0 <= newline < cut + 1000 else tail[cut:]
        notes.append(f"The log was trimmed to its last {len(tail)} characters.")
    parts = [head, *notes, LOG_HEADER, tail]
    return ComposedReport(report="\n".join(parts), structured_report=structured)
