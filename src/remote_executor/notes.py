"""What a request asked for that this executor does not do as asked, for the report."""

from __future__ import annotations

from remote_executor.models import ExecutionRequest


def unmet_asks(request: ExecutionRequest, max_timeout_seconds: float) -> list[str]:
    """One note per ask the run does not honour as asked: today, a timeout over the cap.

    The CLI version, plugins and packages are honoured (``venvs``), or the task fails.
    """
    notes = []
    requested = request.timeout_seconds
    if requested and requested > max_timeout_seconds:
        notes.append(
            f"args.timeout_seconds asked for {requested:g} s; limited to "
            f"{max_timeout_seconds:g} s, the longest SQS lets a task hold its message "
            "(12 h after receipt, less one lease)."
        )
    return notes
