"""The cache of environments, with builds that are plain functions: built once, never
half-ready, never evicted in use. The builds that run uv are in tests/integration."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from remote_executor.venvs.asks import choose_extras, plugin_names
from remote_executor.venvs.cache import VenvCache
from remote_executor.venvs.installer import Installer


def builder(calls: list[Path], size: int = 1000, delay: float = 0.0) -> Any:
    def build(into: Path) -> dict[str, Any]:
        calls.append(into)
        time.sleep(delay)
        (into / "bin").mkdir(parents=True)
        (into / "bin" / "datahub").write_bytes(b"x" * size)
        return {"spec": into.name, "built_at": time.time()}

    return build


def test_two_holders_of_one_key_build_it_once(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)
    calls: list[Path] = []
    built: list[bool] = []

    def use() -> None:
        with cache.hold("k1", builder(calls, delay=0.5)) as (_, was_built):
            built.append(was_built)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(calls) == 1
    assert sorted(built) == [False, False, True]
    assert [b["key"] for b in cache.builds()] == ["k1"]


def test_a_build_that_dies_midway_is_never_ready_and_is_built_again(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)

    def dies(into: Path) -> dict[str, Any]:
        (into / "bin").mkdir(parents=True)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError), cache.hold("k1", dies):
        pass
    # What a worker killed by the kernel leaves: a half-built directory, no rename.
    (tmp_path / ".building" / "k1.999999" / "bin").mkdir(parents=True)
    assert cache.entries() == []
    assert not cache.path("k1").exists()

    calls: list[Path] = []
    with cache.hold("k1", builder(calls)) as (_, built):
        assert built
    assert len(calls) == 1
    assert list((tmp_path / ".building").iterdir()) == []
    assert [entry.key for entry in cache.entries()] == ["k1"]


def test_eviction_takes_the_least_recently_used_and_never_one_in_use(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path)
    for key in ("old", "older", "newest"):
        with cache.hold(key, builder([], size=1000)):
            pass
    size = cache.entries()[0].size_bytes

    with cache.hold("older", builder([])):
        # In use, and the least recently used of all: the first eviction would take it.
        os.utime(cache.path("older") / ".last-used", (1, 1))
        os.utime(cache.path("old") / ".last-used", (2, 2))
        assert [e.key for e in cache.entries() if e.in_use] == ["older"]
        removed = cache.prune(max_bytes=2 * size)

    assert [entry.key for entry in removed] == ["old"]  # "older" was in use
    assert sorted(entry.key for entry in cache.entries()) == ["newest", "older"]


def test_plugins_come_from_source_sink_and_extra_pip_plugins() -> None:
    assert plugin_names("postgres", "datahub-kafka", ["great-expectations", "postgres"]) == [
        "postgres",
        "datahub-kafka",
        "great-expectations",
    ]
    assert plugin_names("my_pkg.MySource", "my_pkg.MySink", []) == []


def test_extras_are_the_plugins_the_package_names_compared_normalised() -> None:
    extras, others = choose_extras(
        ["datahub-rest", "Great_Expectations", "file", "postgres"],
        ["datahub-rest", "great-expectations", "postgres", "snowflake"],
    )
    assert extras == ["datahub-rest", "great-expectations", "postgres"]
    assert others == ["file"]


def test_the_installer_child_gets_no_credential_of_the_worker(tmp_path: Path) -> None:
    # A requirement built from source runs its own code with this environment.
    worker = {
        "DATAHUB_GMS_TOKEN": "worker-token",
        "AWS_SECRET_ACCESS_KEY": "worker-key",
        "EXECUTOR_SECRETS": "DB=arn:aws:secretsmanager:x",
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "REQUESTS_CA_BUNDLE": "/etc/ca.pem",
    }
    installer = Installer(worker, {"PATH": "/usr/bin", "HOME": "/home/x"}, tmp_path / "uv")

    env = installer.environment()

    assert not {"DATAHUB_GMS_TOKEN", "AWS_SECRET_ACCESS_KEY", "EXECUTOR_SECRETS"} & set(env)
    assert env["UV_INDEX_URL"] == "https://mirror.example/simple"
    assert env["SSL_CERT_FILE"] == "/etc/ca.pem"
    assert env["UV_CACHE_DIR"] == str(tmp_path / "uv")
