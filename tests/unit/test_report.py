"""compose_report: summary, then the tail, within GMS's size limit."""

from __future__ import annotations

import json

from remote_executor.report import LOG_HEADER, MIN_TAIL_CHARS, ComposedReport, compose_report

MAX = 20_000
SUMMARY = ["~~~~ RUN_INGEST on remote-executor ~~~~", "Succeeded: datahub exited with code 0."]


def log_lines(count: int, width: int = 99) -> str:
    return "".join(f"{n:06d} {'x' * (width - 8)}\n" for n in range(count))


def total(composed: ComposedReport) -> int:
    return len(composed.report) + len(composed.structured_report or "")


def test_small_report_is_kept_whole() -> None:
    tail = log_lines(10)
    structured = json.dumps({"source": {"events_produced": 3}})

    composed = compose_report(SUMMARY, tail, structured, MAX)

    assert composed.report == "\n".join([*SUMMARY, LOG_HEADER, tail])
    assert composed.structured_report == structured


def test_long_tail_is_trimmed_from_the_front_at_a_line() -> None:
    tail = log_lines(1_000)  # 100,000 characters

    composed = compose_report(SUMMARY, tail, None, MAX)

    assert total(composed) <= MAX
    kept = composed.report.split(LOG_HEADER + "\n", 1)[1]
    assert tail.endswith(kept)
    assert kept.startswith(tuple(f"{n:06d} " for n in range(1_000)))  # whole first line
    assert kept.endswith("000999 " + "x" * 91 + "\n")
    assert f"The log was trimmed to its last {len(kept)} characters." in composed.report
    assert composed.report.startswith("\n".join(SUMMARY))


def test_tail_is_trimmed_before_the_structured_report_is_dropped() -> None:
    structured = json.dumps({"filler": "s" * 10_000})
    tail = log_lines(1_000)

    composed = compose_report(SUMMARY, tail, structured, MAX)

    assert composed.structured_report == structured
    assert "The log was trimmed to its last" in composed.report
    assert "structured report" not in composed.report
    assert total(composed) <= MAX


def test_structured_report_dropped_with_a_note_when_it_leaves_no_room() -> None:
    structured = json.dumps({"filler": "s" * (MAX - 1_000)})
    tail = log_lines(1_000)

    composed = compose_report(SUMMARY, tail, structured, MAX)

    assert composed.structured_report is None
    assert (
        f"The structured report ({len(structured)} characters) was left out: with the log it "
        f"exceeds GMS's limit of {MAX} characters."
    ) in composed.report
    assert total(composed) <= MAX
    kept = composed.report.split(LOG_HEADER + "\n", 1)[1]
    assert len(kept) > MIN_TAIL_CHARS


def test_a_single_huge_line_is_cut_inside_the_line() -> None:
    tail = "y" * 100_000

    composed = compose_report(SUMMARY, tail, None, MAX)

    assert total(composed) <= MAX
    assert composed.report.endswith("y" * 1_000)


def test_total_stays_under_the_limit_for_many_shapes() -> None:
    for structured_size in (0, 100, 5_000, 15_000, 17_500, 19_000, 30_000):
        for tail_lines in (0, 1, 150, 190, 200, 5_000):
            structured = "s" * structured_size if structured_size else None
            composed = compose_report(SUMMARY, log_lines(tail_lines), structured, MAX)
            assert total(composed) <= MAX, (structured_size, tail_lines)


def test_a_short_tail_does_not_push_out_a_structured_report_that_fits() -> None:
    structured = "{" + "x" * 9_000 + "}"

    composed = compose_report(["Succeeded."], "one line\n", structured, max_chars=10_000)

    assert composed.structured_report == structured
    assert composed.report.endswith("one line\n")
