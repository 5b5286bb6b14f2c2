"""The CLI versions benchmark (``python -m bench venvs --quick``): every row runs the CLI
it names, end to end. Like the other smoke runs, it asserts no figure of speed. It builds
acryl-datahub 1.7.0.15 with uv, so it needs its index (or UV_FIND_LINKS) reachable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.venvs import ROWS, VERSION
from tests.bench.test_bench_smoke import run_quick

pytestmark = pytest.mark.bench


def test_venvs_runs_each_row_on_the_cli_it_names(tmp_path: Path) -> None:
    pytest.importorskip("acryl.executor", reason="the peer needs: pip install -e '.[bench]'")
    pytest.importorskip("datahub.executor", reason="an acryl-datahub with its own engine")
    data = run_quick("venvs", tmp_path)["data"]

    assert {row: len(data[row]["samples"]) for row in ROWS} == dict.fromkeys(ROWS, 1)
    native = data["native_version"]
    # The version each run's own ingestion report names: a pinned row ran the pinned CLI.
    assert {row: data[row]["cli_versions"] for row in ROWS} == {
        "native": [native],
        "cold": [VERSION],
        "hit": [VERSION],
        "acryl": [VERSION],
        "datahub": [VERSION],
    }
    # The cold task built its environment; the throwaway build did too.
    assert all(seconds > 0 for seconds in data["cold_build_seconds"])
    assert data["first_build"]["build_seconds"] > 0
