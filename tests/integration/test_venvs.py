"""The CLI version each request asks for, installed for real by uv from a wheelhouse.

Every test runs with the index unreachable (UV_INDEX_URL and PIP_INDEX_URL point at a
closed port): what installs comes from EXECUTOR_WHEELHOUSE, downloaded once per
machine by the ``wheelhouse`` fixture. The pinned release differs from the one
installed beside the executor.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from remote_executor.venvs.cache import VenvCache
from tests.integration.support import RECIPES, structured

pytestmark = pytest.mark.integration

PINNED = "1.7.0.15"  # its constraints resolve on today's index (1.7.0.16's pin a yanked certifi)
EXTRAS = "datahub-rest,sqlalchemy,mysql"
CACHE = Path.home() / ".cache" / "remote-executor-tests" / f"wheelhouse-{PINNED}"
DEAD_INDEX = "http://127.0.0.1:9/simple"


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Wheels of acryl-datahub[datahub-rest,sqlalchemy,mysql]==PINNED under its own
    constraints, downloaded once per machine (about 50 MB, 10 s)."""
    done = CACHE / ".complete"
    if done.exists():
        return CACHE
    CACHE.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(CACHE)]
    subprocess.run([*pip, "--no-deps", f"acryl-datahub=={PINNED}"], check=True)
    wheel = next(CACHE.glob(f"acryl_datahub-{PINNED}-*.whl"))
    constraints = CACHE.parent / f"constraints-{PINNED}.txt"
    with zipfile.ZipFile(wheel) as archive:
        constraints.write_bytes(archive.read("datahub/constraints.txt"))
    subprocess.run(
        [*pip, "--constraint", str(constraints), f"acryl-datahub[{EXTRAS}]=={PINNED}"],
        check=True,
    )
    done.touch()
    return CACHE


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uv cache for the session, as a worker's persistent volume would keep it."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, uv_cache: Path) -> Iterator[None]:
    """No index answers."""
    for name in ("UV_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.setenv(name, DEAD_INDEX)
    for name in ("UV_EXTRA_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_FIND_LINKS", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_cache))
    yield


@pytest.fixture
def venv_worker(start_worker, wheelhouse: Path, tmp_path: Path, offline: None):  # type: ignore[no-untyped-def]
    """``venv_worker(**settings)``: a worker whose environments come from the wheelhouse."""

    def start(**settings: object):  # type: ignore[no-untyped-def]
        given = {"venv_dir": tmp_path / "venvs", "wheelhouse": wheelhouse, **settings}
        return start_worker(settings=given)

    return start


def submit_demo(running, demo_db: Path, **kwargs: object) -> str:  # type: ignore[no-untyped-def]
    recipe = (RECIPES / "demo-sqlite.yml").read_text()
    return running.submit(recipe, extra_env_vars={"DEMO_DB": str(demo_db)}, **kwargs)  # type: ignore[no-any-return]


def test_a_pinned_version_runs_that_version_and_the_next_request_reuses_it(
    venv_worker, demo_db: Path, tmp_path: Path
) -> None:
    assert importlib.metadata.version("acryl-datahub") != PINNED
    running = venv_worker()

    first = running.wait(submit_demo(running, demo_db, version=PINNED))
    second = running.wait(submit_demo(running, demo_db, version=PINNED))

    for result in (first, second):
        assert result["status"] == "SUCCESS", result["report"]
        assert structured(result)["cli"]["cli_version"] == PINNED  # type: ignore[index]
    spec = f"acryl-datahub[datahub-rest,sqlalchemy]=={PINNED}"
    assert f"Installing {spec} into a new environment" in str(first["report"])
    assert f"CLI: {spec}, environment {tmp_path / 'venvs'}/" in str(first["report"])
    assert "Using cached environment" in str(second["report"])
    assert [build["spec"] for build in VenvCache(tmp_path / "venvs").builds()] == [spec]
    assert "urn:li:dataset:(urn:li:dataPlatform:sqlite,main.customers,PROD)" in (
        running.sandbox.gms.urns("dataset")
    )


def test_two_requests_at_once_build_their_environment_once(
    venv_worker, demo_db: Path, tmp_path: Path
) -> None:
    running = venv_worker(max_concurrent_tasks=2)

    urns = [submit_demo(running, demo_db, version=PINNED) for _ in range(2)]
    results = [running.wait(urn) for urn in urns]

    statuses = [r["status"] for r in results]
    assert statuses == ["SUCCESS", "SUCCESS"], [r["report"] for r in results]
    assert len(VenvCache(tmp_path / "venvs").builds()) == 1
    reports = "\n".join(str(r["report"]) for r in results)
    assert reports.count("Installing acryl-datahub") == 1
    assert reports.count("Using cached environment") == 1


def test_a_build_stopped_midway_is_not_ready_and_the_next_request_builds_it(
    venv_worker, demo_db: Path, tmp_path: Path
) -> None:
    running = venv_worker()
    cache = VenvCache(tmp_path / "venvs")

    stopped = running.wait(submit_demo(running, demo_db, version=PINNED, timeout_seconds=1.5))

    assert stopped["status"] == "TIMEOUT", stopped["report"]
    assert (
        "Timed out while preparing the CLI environment: limit 1.5 s, set by "
        "args.timeout_seconds of the request."
    ) in str(stopped["report"]).splitlines()
    assert cache.entries() == [] and cache.builds() == []
    assert list((tmp_path / "venvs" / ".building").glob("*")) == []

    result = running.wait(submit_demo(running, demo_db, version=PINNED))
    assert result["status"] == "SUCCESS", result["report"]
    assert len(cache.builds()) == 1


def test_a_version_that_does_not_exist_fails_with_the_installer_s_words(
    venv_worker, demo_db: Path
) -> None:
    running = venv_worker()

    failed = running.wait(submit_demo(running, demo_db, version="99.0.0"))
    after = running.wait(submit_demo(running, demo_db))

    report = str(failed["report"])
    assert failed["status"] == "FAILURE"
    assert "Failed: CLI environment: uv pip install exited with 1:" in report
    assert "acryl-datahub==99.0.0" in report
    assert after["status"] == "SUCCESS", after["report"]  # the worker goes on


def test_a_source_whose_plugin_is_not_installed_here_gets_it_in_its_environment(
    venv_worker, tmp_path: Path
) -> None:
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("pymysql")  # the executor's own environment lacks it
    running = venv_worker()
    recipe = json.dumps(
        {"source": {"type": "mysql", "config": {"host_port": "127.0.0.1:9", "database": "x"}}}
    )

    result = running.wait(running.submit(recipe, version=PINNED))

    report = str(result["report"])
    assert f"acryl-datahub[datahub-rest,mysql]=={PINNED}" in report
    assert result["status"] == "FAILURE"  # nothing listens: the plugin loaded and connected
    assert "Failed: datahub exited with code 1" in report
    assert "Can't connect to MySQL server on '127.0.0.1'" in report
    assert "ModuleNotFoundError" not in report
    venv = next(entry.path for entry in VenvCache(tmp_path / "venvs").entries())
    assert list(venv.glob("lib/python*/site-packages/pymysql/__init__.py"))


def test_allow_install_false_refuses_and_the_worker_goes_on(venv_worker, demo_db: Path) -> None:
    running = venv_worker(allow_install=False)

    refused = running.wait(submit_demo(running, demo_db, version=PINNED))
    native = running.wait(submit_demo(running, demo_db, version="native"))

    assert refused["status"] == "FAILURE"
    assert (
        f"Failed: CLI environment: CLI version {PINNED} is not installed on this worker, and "
        "EXECUTOR_ALLOW_INSTALL=false refuses installs"
    ) in str(refused["report"])
    assert native["status"] == "SUCCESS", native["report"]


def test_concurrent_holders_keep_their_environment_through_a_prune(
    venv_worker, demo_db: Path, tmp_path: Path
) -> None:
    running = venv_worker(venv_cache_max_gb=0.001)  # every build is over the bound
    urn = submit_demo(running, demo_db, version=PINNED)
    result = running.wait(urn)

    # The one build prunes the others, never itself while its task runs.
    assert result["status"] == "SUCCESS", result["report"]
    assert len(VenvCache(tmp_path / "venvs").entries()) == 1


def test_bundled_runs_the_environment_the_image_prebuilt(
    venv_worker, demo_db: Path, tmp_path: Path, wheelhouse: Path
) -> None:
    bundled = tmp_path / "bundled"
    env = {**os.environ, "EXECUTOR_BUNDLED_VENV_DIR": str(bundled)}
    env.update(EXECUTOR_WHEELHOUSE=str(wheelhouse), EXECUTOR_VENV_DIR=str(tmp_path / "build"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "remote_executor",
            "venvs",
            "build",
            "--bundled",
            f"sqlalchemy@{PINNED}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"built {bundled}/sqlalchemy-bundled" in built.stdout
    running = venv_worker(bundled_venv_dir=bundled)

    result = running.wait(submit_demo(running, demo_db, version="bundled"))

    assert result["status"] == "SUCCESS", result["report"]
    assert f"CLI: acryl-datahub {PINNED}, bundled at {bundled}/sqlalchemy-bundled." in str(
        result["report"]
    )
    assert structured(result)["cli"]["cli_version"] == PINNED  # type: ignore[index]
