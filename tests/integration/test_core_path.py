"""The core path on real parts: SQS, Secrets Manager, the datahub CLI, the GMS stand-in."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from remote_executor.models import TaskKind, request_urn
from tests.integration.support import RECIPES, make_database, structured

pytestmark = pytest.mark.integration


def test_recipe_ends_success_with_structured_report_and_metadata(start_worker, demo_db):
    running = start_worker()
    recipe = (RECIPES / "demo-sqlite.yml").read_text()

    urn = running.submit(
        recipe,
        extra_env_vars={"DEMO_DB": str(demo_db)},
        ingestion_source="urn:li:dataHubIngestionSource:demo",
    )
    result = running.wait(urn)

    assert result["status"] == "SUCCESS", result["report"]
    assert "Succeeded: datahub exited with code 0" in str(result["report"])
    assert structured(result)["source"]["type"] == "sqlalchemy"
    assert result["structuredReport"]["type"] == "RUN_INGEST"
    history = [r["status"] for r in running.sandbox.gms.results(urn)]
    assert history[0] == "RUNNING" and history[-1] == "SUCCESS"
    assert history.count("SUCCESS") == 1
    assert running.queue_is_empty()
    datasets = running.sandbox.gms.urns("dataset")
    assert "urn:li:dataset:(urn:li:dataPlatform:sqlite,main.customers,PROD)" in datasets
    assert running.sandbox.gms.rejected == []


def test_test_connection_reports_capability(start_worker, demo_db):
    running = start_worker()
    recipe = (RECIPES / "demo-sqlite.yml").read_text()

    urn = running.submit(
        recipe, task=TaskKind.TEST_CONNECTION, extra_env_vars={"DEMO_DB": str(demo_db)}
    )
    result = running.wait(urn)

    assert result["status"] == "SUCCESS", result["report"]
    assert result["structuredReport"]["type"] == "TEST_CONNECTION"
    assert structured(result)["basic_connectivity"]["capable"] is True


def test_secret_from_secrets_manager_is_used_and_never_leaks(start_worker, sandbox, tmp_path: Path):
    # The URI is the secret: only the resolved value leads to this table. (The path alone
    # is metadata: DataHub's SQLAlchemy source names the database container after it.)
    token = secrets.token_hex(6)
    db_path = tmp_path / f"vault-{token}" / "secret.db"
    db_path.parent.mkdir()
    make_database(db_path, f"only_in_secret_db_{token}")
    secret_arn = sandbox.aws.put_secret(f"it/db-uri-{token}", f"sqlite:///{db_path}")
    running = start_worker(secrets={"DB_URI": secret_arn})
    box = running.sandbox
    recipe = (RECIPES / "demo-sqlite-secret.yml").read_text().replace("DEMO_DB_URI", "DB_URI")

    urn = running.submit(recipe)
    result = running.wait(urn)

    assert result["status"] == "SUCCESS", result["report"]
    assert any(f"only_in_secret_db_{token}" in u for u in box.gms.urns("dataset"))
    leaks = [f"sqlite:///{db_path}"]
    bodies = b"\n".join(box.gms.raw_bodies).decode("utf-8", "replace")
    task_files = "\n".join(
        p.read_text("utf-8", "replace") for p in running.work_dir.rglob("*") if p.is_file()
    )
    for place, text in {
        "GMS payloads": bodies,
        "worker log": running.log.getvalue(),
        "task directory": task_files,
        "report": json.dumps(result),
    }.items():
        for leak in leaks:
            assert leak not in text, f"secret value found in {place}"


def _message(urn: str, input_value: dict) -> str:
    return json.dumps(
        {
            "entityType": "dataHubExecutionRequest",
            "entityUrn": urn,
            "changeType": "UPSERT",
            "aspectName": "dataHubExecutionRequestInput",
            "aspect": {"contentType": "application/json", "value": json.dumps(input_value)},
        }
    )


def test_bad_inputs_fail_clearly_and_the_worker_keeps_running(start_worker, demo_db):
    running = start_worker(secrets={})
    urn_shape = request_urn("it-bad-shape")
    urn_task = request_urn("it-bad-task")
    running.queue.send("this is { not json")
    running.queue.send(json.dumps({"hello": "world"}))
    running.queue.send(
        json.dumps(
            {
                "entityType": "dataHubExecutionRequest",
                "entityUrn": urn_shape,
                "aspectName": "somethingElse",
            }
        )
    )
    running.queue.send(  # written to GMS first, as a producer would: GMS takes any task name
        running.sandbox.gms.write_request(
            _message(
                urn_task,
                {
                    "task": "RUN_MONITOR",
                    "executorId": "remote",
                    "args": {"recipe": "source: {type: x}"},
                    "source": {"type": "MANUAL_INGESTION_SOURCE"},
                    "requestedAt": 1700000000000,
                },
            )
        )
    )
    bad_yaml = running.submit("source:\n  type: [unclosed\n")
    no_source = running.submit("sink:\n  type: console\n")
    missing = running.submit(
        "source:\n  type: sqlalchemy\n  config:\n    connect_uri: ${NOT_CONFIGURED_SECRET}\n"
    )
    foreign = running.submit(
        (RECIPES / "demo-sqlite.yml").read_text(),
        executor_id="someone-else",
        extra_env_vars={"DEMO_DB": str(demo_db)},
    )
    good = running.submit(
        (RECIPES / "demo-sqlite.yml").read_text(), extra_env_vars={"DEMO_DB": str(demo_db)}
    )

    assert running.wait(good)["status"] == "SUCCESS"
    expected = {
        urn_shape: "Rejected the execution request message: message aspectName is "
        "'somethingElse', expected 'dataHubExecutionRequestInput' or "
        "'EXECUTOR_SQS_TRUNCATED'",
        urn_task: "Rejected the execution request message: unknown task 'RUN_MONITOR': "
        "this executor runs RUN_INGEST and TEST_CONNECTION",
        bad_yaml: "Failed: Recipe error: recipe is not valid YAML or JSON at line 3, column 1: "
        "expected ',' or ']', but got '<stream end>'",
        no_source: "Failed: Recipe error: recipe has no 'source' section: add source.type and "
        "source.config",
        missing: "Failed: Secret not resolved: secret ${NOT_CONFIGURED_SECRET} referenced by "
        "the recipe was found in no source (aws: not in EXECUTOR_SECRETS, and "
        "EXECUTOR_SECRETS_PREFIX is not set; file: "
        f"{running.work_dir.parent / 'no-secret-files'} does not exist (EXECUTOR_SECRETS_DIR); "
        "env: no variable NOT_CONFIGURED_SECRET in the worker's environment). "
        "The subprocess was not started.",
    }
    for urn, text in expected.items():
        result = running.wait(urn)
        assert result["status"] == "FAILURE"
        assert text in str(result["report"]), result["report"]
    missing_dir = running.work_dir / f"{missing.rsplit(':', 1)[1]}.1"
    assert not (missing_dir / "recipe.yml").exists(), "the subprocess must not have been started"
    assert (missing_dir / "ingestion.log").read_text() == ""
    log = running.log.getvalue()
    assert "message body is not JSON" in log
    assert "message has no execution request urn" in log
    assert running.sandbox.gms.results(foreign) == []
    assert "message for another executor left for its owner" in log
    assert running.thread.is_alive()
