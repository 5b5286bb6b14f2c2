"""SecretSources in order, and the file and environment sources: each name from the first
source that has it; a missing one named with where each source looked."""

from __future__ import annotations

from pathlib import Path

import pytest

from remote_executor.errors import MissingSecretError, SecretError
from remote_executor.secrets import MemorySecretResolver, SecretSources
from remote_executor.secrets.environment import EnvSecretResolver
from remote_executor.secrets.files import FileSecretResolver


def test_first_source_that_has_a_name_wins() -> None:
    first = MemorySecretResolver({"A": "from-first"}, label="first")
    second = MemorySecretResolver({"A": "from-second", "B": "b-second"}, label="second")

    resolved = SecretSources([first, second]).resolve(["A", "B"])

    assert resolved.values == {"A": "from-first", "B": "b-second"}
    assert resolved.origins == {"A": "first", "B": "second"}
    assert resolved.describe() == "A (first), B (second)"
    assert second.calls == [["B"]]  # only what the first did not have


def test_order_is_the_order_given() -> None:
    first = MemorySecretResolver({"A": "from-first"}, label="first")
    second = MemorySecretResolver({"A": "from-second"}, label="second")

    assert SecretSources([second, first]).resolve(["A"]).values == {"A": "from-second"}


def test_missing_name_says_where_each_source_looked(tmp_path: Path) -> None:
    sources = SecretSources(
        [MemorySecretResolver({"OTHER": "x-value"}), FileSecretResolver(tmp_path)]
    )

    with pytest.raises(MissingSecretError) as caught:
        sources.resolve(["db-password"])

    assert str(caught.value) == (
        "secret ${db-password} referenced by the recipe was found in no source "
        f"(memory: not among values for OTHER; file: no file {tmp_path / 'db-password'})"
    )
    assert caught.value.names == ["db-password"]


def test_every_missing_name_is_named() -> None:
    with pytest.raises(MissingSecretError) as caught:
        SecretSources([MemorySecretResolver({})]).resolve(["ZETA", "ALPHA"])

    assert str(caught.value) == (
        "secrets ${ALPHA}, ${ZETA} referenced by the recipe were found in no source "
        "(for ALPHA: memory: not among no values - for ZETA: memory: not among no values)"
    )


def test_no_source_configured() -> None:
    with pytest.raises(MissingSecretError, match=r"no source is configured"):
        SecretSources([]).resolve(["A"])


def test_optional_names_are_resolved_when_some_source_has_them() -> None:
    sources = SecretSources([MemorySecretResolver({"A": "value-a"})])

    assert sources.resolve([], ["A", "B"]).values == {"A": "value-a"}


def test_missing_error_never_shows_values() -> None:
    sources = SecretSources([MemorySecretResolver({"API_KEY": "value-that-must-not-show"})])

    with pytest.raises(MissingSecretError) as caught:
        sources.resolve(["DB_PASSWORD"])

    assert "value-that-must-not-show" not in str(caught.value)


def test_file_source_reads_a_file_per_name_and_drops_one_newline(tmp_path: Path) -> None:
    (tmp_path / "db-password").write_text("p@ss word\n\n")
    (tmp_path / "API_KEY").write_text("key-1\r\n")
    source = FileSecretResolver(tmp_path)

    assert source.lookup(["db-password", "API_KEY", "NONE"]) == {
        "db-password": "p@ss word\n",
        "API_KEY": "key-1",
    }


def test_file_source_reads_fresh_each_time(tmp_path: Path) -> None:
    # Kubernetes updates a mounted secret in place; the next task gets the new value.
    (tmp_path / "TOKEN").write_text("first-value")
    source = FileSecretResolver(tmp_path)
    assert source.lookup(["TOKEN"]) == {"TOKEN": "first-value"}

    (tmp_path / "TOKEN").write_text("second-value")

    assert source.lookup(["TOKEN"]) == {"TOKEN": "second-value"}


def test_file_source_lists_keys_as_kubernetes_mounts_them(tmp_path: Path) -> None:
    data = tmp_path / "..2026_11_22_10_00_00.123"
    data.mkdir()
    (data / "DB_PASSWORD").write_text("v-1234")
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "DB_PASSWORD").symlink_to("..data/DB_PASSWORD")

    source = FileSecretResolver(tmp_path)

    assert source.configured_names() == ["DB_PASSWORD"]
    assert source.lookup(["DB_PASSWORD", "..data"]) == {"DB_PASSWORD": "v-1234"}


def test_file_source_never_leaves_its_directory(tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("outside-value")
    inner = tmp_path / "secrets"
    inner.mkdir()

    assert FileSecretResolver(inner).lookup(["../outside", "..", "."]) == {}


def test_unreadable_file_is_an_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "LOCKED"
    path.write_text("locked-value")

    def refuse(self: Path) -> bytes:  # as for a file mode 000, also when tests run as root
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)

    with pytest.raises(SecretError) as caught:
        FileSecretResolver(tmp_path).lookup(["LOCKED"])

    assert str(caught.value) == f"secret LOCKED: cannot read {path}: Permission denied"


def test_file_that_is_not_text_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "BINARY").write_bytes(b"\xff\xfe\x00")

    with pytest.raises(SecretError) as caught:
        FileSecretResolver(tmp_path).lookup(["BINARY"])

    assert str(caught.value) == f"secret BINARY: {tmp_path / 'BINARY'} is not UTF-8 text"


def test_missing_directory_is_said(tmp_path: Path) -> None:
    source = FileSecretResolver(tmp_path / "absent")

    assert source.lookup(["A"]) == {}
    assert source.missed("A") == (
        f"file: {tmp_path / 'absent'} does not exist (EXECUTOR_SECRETS_DIR)"
    )
    assert source.configured_names() == []


def test_env_source_reads_the_workers_environment() -> None:
    source = EnvSecretResolver({"DB_PASSWORD": "from-ecs", "OTHER": "x"})

    assert source.lookup(["DB_PASSWORD", "NOPE"]) == {"DB_PASSWORD": "from-ecs"}
    assert source.missed("NOPE") == "env: no variable NOPE in the worker's environment"


def test_env_source_never_gives_a_recipe_the_workers_own_credentials() -> None:
    environ = {
        "AWS_SECRET_ACCESS_KEY": "worker-aws-secret",
        "AWS_ACCESS_KEY_ID": "AKIAWORKER",
        "AWS_SESSION_TOKEN": "worker-session",
        "DATAHUB_GMS_TOKEN": "worker-gms-token",
        "EXECUTOR_SECRETS": "A=arn",
    }
    source = EnvSecretResolver(environ)

    assert source.lookup(list(environ)) == {}
    assert source.missed("AWS_SECRET_ACCESS_KEY") == (
        "env: AWS_SECRET_ACCESS_KEY is the worker's own setting, not given to recipes"
    )
