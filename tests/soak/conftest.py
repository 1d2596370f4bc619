"""The soak's summary line, in its own section at the end of the session."""

from __future__ import annotations

from typing import Any

from tests.soak.report import SUMMARIES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARIES:
        terminalreporter.section("soak")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
