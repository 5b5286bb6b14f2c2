"""Options and reports shared by every test directory."""

from __future__ import annotations

import pytest

from tests.chaos.support import CHAOS_ROWS, chaos_table


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-long",
        action="store_true",
        help="run the chaos suite's generated bad messages 10,000 times instead of 1,000",
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CHAOS_ROWS:
        terminalreporter.write_sep("=", "chaos scenarios")
        terminalreporter.write_line(chaos_table())
