"""Every secret source and every ECS valueFrom form, through a real worker and the real
datahub CLI. Each secret is a connection URI: only the resolved value leads the CLI to
its database, whose one table names the test that made it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.integration.support import make_database

pytestmark = pytest.mark.integration


def recipe(name: str) -> str:
    return (
        "source:\n  type: sqlalchemy\n  config:\n    platform: sqlite\n"
        f'    connect_uri: "${{{name}}}"\n'
    )


def database(tmp_path: Path, label: str) -> tuple[str, str]:
    """A fresh SQLite database; its URI and the name of its one table."""
    table = f"{label}_{secrets.token_hex(4)}"
    path = tmp_path / f"{table}.db"
    make_database(path, table)
    return f"sqlite:///{path}", table


def ingested(sandbox, table: str) -> bool:
    return any(f".{table}," in urn for urn in sandbox.gms.urns("dataset"))


def test_each_source_and_value_from_form(start_worker, sandbox, tmp_path: Path):
    uris = {label: database(tmp_path, label) for label in ("json", "old", "prefix", "file", "env")}
    json_arn = sandbox.aws.put_secret(
        f"it/json-{secrets.token_hex(4)}",
        json.dumps({"uri": uris["json"][0], "user": "reader"}),
    )
    staged = f"it/staged-{secrets.token_hex(4)}"
    staged_arn = sandbox.aws.put_secret(staged, uris["old"][0])
    sandbox.aws.put_secret(staged, "sqlite:////nonexistent/current.db")  # AWSCURRENT now
    prefix = f"it-{secrets.token_hex(4)}/"
    sandbox.aws.put_secret(f"{prefix}prefixed-uri", uris["prefix"][0])
    files = tmp_path / "mounted"
    files.mkdir()
    (files / "FILE_URI").write_text(uris["file"][0] + "\n")
    running = start_worker(
        secrets={"JSON_URI": f"{json_arn}:uri::", "OLD_URI": f"{staged_arn}::AWSPREVIOUS:"},
        settings={"secrets_prefix": prefix, "secrets_dir": files},
        environ={"ENV_URI": uris["env"][0]},
    )

    names = {
        "json": "JSON_URI",
        "old": "OLD_URI",
        "prefix": "prefixed-uri",  # a hyphen, which the CLI alone would read as a default
        "file": "FILE_URI",
        "env": "ENV_URI",
    }
    urns = {label: running.submit(recipe(name)) for label, name in names.items()}

    for label, urn in urns.items():
        result = running.wait(urn)
        assert result["status"] == "SUCCESS", (label, result["report"])
        assert ingested(sandbox, uris[label][1]), label
    source = {"json": "aws", "old": "aws", "prefix": "aws", "file": "file", "env": "env"}
    for label, urn in urns.items():
        note = f"Secrets {names[label]} ({source[label]}), handed over on stdin."
        assert note in str(running.wait(urn)["report"])


@pytest.mark.parametrize("order", [["file", "env"], ["env", "file"]])
def test_the_first_source_in_order_wins(start_worker, sandbox, tmp_path: Path, order):
    in_file, in_env = database(tmp_path, "in_file"), database(tmp_path, "in_env")
    files = tmp_path / "mounted"
    files.mkdir()
    (files / "DB_URI").write_text(in_file[0])
    running = start_worker(
        settings={"secrets_dir": files, "secret_sources": order},
        environ={"DB_URI": in_env[0]},
    )

    result = running.wait(running.submit(recipe("DB_URI")))

    assert result["status"] == "SUCCESS", result["report"]
    winner, loser = (in_file, in_env) if order[0] == "file" else (in_env, in_file)
    assert ingested(sandbox, winner[1])
    assert not ingested(sandbox, loser[1])
    assert f"Secrets DB_URI ({order[0]})" in str(result["report"])


@pytest.mark.parametrize(
    ("handoff", "how"), [("auto", "on stdin"), ("env", "as environment variables")]
)
def test_both_hand_off_paths_with_the_real_cli(start_worker, sandbox, tmp_path: Path, handoff, how):
    uri, table = database(tmp_path, f"handoff_{handoff}")
    arn = sandbox.aws.put_secret(f"it/handoff-{secrets.token_hex(4)}", uri)
    running = start_worker(secrets={"DB_URI": arn}, settings={"secret_handoff": handoff})

    result = running.wait(running.submit(recipe("DB_URI")))

    assert result["status"] == "SUCCESS", result["report"]
    assert ingested(sandbox, table)
    assert f"Secrets DB_URI (aws), handed over {how}." in str(result["report"])
    assert uri not in json.dumps(result) + running.log.getvalue()


def test_unreadable_secret_fails_before_the_subprocess_naming_the_source(
    start_worker, sandbox, tmp_path: Path
):
    arn = sandbox.aws.put_secret(f"it/plain-{secrets.token_hex(4)}", "not-a-json-document")
    running = start_worker(secrets={"DB_URI": f"{arn}:uri::"})

    urn = running.submit(recipe("DB_URI"))
    result = running.wait(urn)

    assert result["status"] == "FAILURE"
    assert (
        f"Failed: Secret not resolved: secret DB_URI: {arn} is not a JSON object, so it has no "
        "key 'uri'. The subprocess was not started."
    ) in str(result["report"])
    assert "not-a-json-document" not in json.dumps(result) + running.log.getvalue()
    assert not (running.work_dir / f"{urn.rsplit(':', 1)[1]}.1" / "recipe.yml").exists()
