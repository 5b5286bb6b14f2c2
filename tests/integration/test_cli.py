"""The `executor` command as a user runs it: real subprocesses against the sandbox."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from remote_executor.models import TERMINAL_STATUSES
from tests.integration.conftest import TOKEN
from tests.integration.support import RECIPES

pytestmark = pytest.mark.integration

GONE_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"


def executor(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run `executor ARGS` as a user would, with only the given environment added."""
    return subprocess.run(
        [sys.executable, "-m", "remote_executor", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli_env(sandbox, tmp_path: Path) -> dict[str, str]:
    """The sandbox's environment, with a work directory of the test's own."""
    return {
        **sandbox.env(),
        "EXECUTOR_WORK_DIR": str(tmp_path / "work"),
        "EXECUTOR_LOG_FORMAT": "json",
        "EXECUTOR_HEALTH_PORT": "0",
        "EXECUTOR_SECRETS": "",
        "EXECUTOR_SECRETS_DIR": str(tmp_path / "no-secret-files"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_exec_runs_a_recipe_locally_and_says_where_everything_is(cli_env, demo_db):
    done = executor(
        "exec", str(RECIPES / "demo-sqlite.yml"), "--env", f"DEMO_DB={demo_db}", env=cli_env
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nSUCCESS\n" in done.stdout
    assert "Succeeded: datahub exited with code 0" in done.stdout
    metadata = Path(done.stdout.split("metadata written:")[1].split()[0])
    assert "main.customers" in metadata.read_text()
    assert Path(done.stdout.split("full log:")[1].split()[0]).stat().st_size > 0


def test_exec_with_a_secret_from_secrets_manager(sandbox, cli_env, demo_db):
    arn = sandbox.aws.put_secret("it/exec-uri", f"sqlite:///{demo_db}")
    env = {**cli_env, "EXECUTOR_SECRETS": f"DEMO_DB_URI={arn}"}

    done = executor("exec", str(RECIPES / "demo-sqlite-secret.yml"), env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"sqlite:///{demo_db}" not in done.stdout + done.stderr


def test_exec_bad_recipe_and_missing_secret(cli_env, tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("sink:\n  type: console\n")
    missing = tmp_path / "missing.yml"
    missing.write_text("source:\n  type: sqlalchemy\n  config:\n    password: ${PG_PASSWORD}\n")

    bad_run = executor("exec", str(bad), env=cli_env)
    missing_run = executor("exec", str(missing), env=cli_env)

    assert bad_run.returncode == 1
    assert "Failed: Recipe error: recipe has no 'source' section" in bad_run.stdout
    assert missing_run.returncode == 1
    assert (
        "Failed: Secret not resolved: secret ${PG_PASSWORD} referenced by the recipe was found "
        "in no source (aws: not in EXECUTOR_SECRETS, and EXECUTOR_SECRETS_PREFIX is not set; "
        f"file: {tmp_path / 'no-secret-files'} does not exist (EXECUTOR_SECRETS_DIR); "
        "env: no variable PG_PASSWORD in the worker's environment). "
        "The subprocess was not started."
    ) in missing_run.stdout


def test_check_all_ok_names_secrets_but_never_values(sandbox, cli_env):
    arn = sandbox.aws.put_secret("it/check-password", "check-secret-value-93b1")
    env = {**cli_env, "EXECUTOR_SECRETS": f"PG_PASSWORD={arn}"}

    done = executor("check", env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("OK    gms") and "answers (DataHub v1.2.0)" in lines[0]
    assert lines[1] == "OK    token    accepted"
    assert lines[2].startswith("OK    queue") and "reachable" in lines[2]
    assert "OK    secrets  aws: PG_PASSWORD resolves" in lines
    assert lines[-3].startswith("OK    datahub  CLI 1.")
    assert lines[-2] == "OK    datahub  secrets are handed over on stdin"
    assert lines[-1].startswith("OK    venvs    0 cached environments (0.00 of 10 GB) in ")
    assert "check-secret-value-93b1" not in done.stdout + done.stderr


def test_check_says_how_to_fix_each_bad_setting(sandbox, cli_env):
    web_app = executor("check", env={**cli_env, "DATAHUB_GMS_URL": sandbox.gms.root_url})
    wrong_token = executor("check", env={**cli_env, "DATAHUB_GMS_TOKEN": "not-the-token"})
    nobody_home = executor(
        "check", env={**cli_env, "DATAHUB_GMS_URL": f"http://127.0.0.1:{free_port()}/gms"}
    )
    no_secret = executor(
        "check",
        env={
            **cli_env,
            "EXECUTOR_SECRETS": f"GONE={GONE_ARN}",
        },
    )
    no_queue = executor(
        "check",
        env={
            **cli_env,
            "EXECUTOR_QUEUE_URL": sandbox.queue_url.rsplit("/", 1)[0] + "/no-such-queue",
        },
    )

    for done in (web_app, wrong_token, nobody_home, no_secret, no_queue):
        assert done.returncode == 1
    assert (
        f"FAIL  gms      {sandbox.gms.root_url} answers HTML: the URL reaches the DataHub web "
        "app, not GMS; for DataHub Cloud use https://<company>.acryl.io/gms"
    ) in web_app.stdout
    assert "FAIL  token    GMS refused the token (401)" in wrong_token.stdout
    assert "check DATAHUB_GMS_TOKEN" in wrong_token.stdout
    assert "FAIL  gms      GMS at http://127.0.0.1:" in nobody_home.stdout
    assert "could not be reached" in nobody_home.stdout
    assert (
        "FAIL  secrets  aws: secret GONE: AWS Secrets Manager has no secret "
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"
    ) in no_secret.stdout
    assert "FAIL  queue" in no_queue.stdout and "NonExistentQueue" in no_queue.stdout


def test_run_and_submit_as_a_user_would(sandbox, cli_env, demo_db, tmp_path: Path):
    queue_url = sandbox.aws.create_queue("it-cli-run")
    health_port = free_port()
    env = {
        **cli_env,
        "EXECUTOR_QUEUE_URL": queue_url,
        "EXECUTOR_REPORT_INTERVAL_SECONDS": "1",
        "EXECUTOR_HEALTH_PORT": str(health_port),
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "remote_executor", "run", "--worker-id", "remote"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        submitted = executor(
            "submit",
            str(RECIPES / "demo-sqlite.yml"),
            "--env",
            f"DEMO_DB={demo_db}",
            "--source-urn",
            "urn:li:dataHubIngestionSource:demo",
            env=env,
        )
        assert submitted.returncode == 0, submitted.stderr
        urn = submitted.stdout.strip()
        assert urn.startswith("urn:li:dataHubExecutionRequest:")
        # Written to GMS before it was queued, as the UI writes it, so DataHub lists the run.
        written = sandbox.gms.aspect(urn, "dataHubExecutionRequestInput")
        assert written is not None
        assert written["source"] == {
            "type": "MANUAL_INGESTION_SOURCE",
            "ingestionSource": "urn:li:dataHubIngestionSource:demo",
        }
        assert (written["task"], written["executorId"]) == ("RUN_INGEST", "remote")

        result = sandbox.gms.wait_for_status(urn, TERMINAL_STATUSES, timeout_seconds=180)
        assert result is not None and result["status"] == "SUCCESS", log_path.read_text()
        healthy = executor("health", env=env)
        assert (healthy.returncode, healthy.stdout) == (0, "alive\n"), healthy.stderr
        base = f"http://127.0.0.1:{health_port}"
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as ready:
            assert ready.read() == b"ready\n"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as metrics:
            text = metrics.read().decode()
        assert 'executor_tasks_finished_total{status="SUCCESS"} 1.0' in text
        assert "executor_queue_wait_seconds_count 1.0" in text
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    log = log_path.read_text()
    assert '"event": "Starting remote executor worker"' in log
    assert '"worker_id": "remote"' in log and queue_url in log
    assert code == 0
    assert TOKEN not in log


def test_run_refuses_a_url_that_is_not_gms(sandbox, cli_env):
    done = executor("run", env={**cli_env, "DATAHUB_GMS_URL": sandbox.gms.root_url}, timeout=60)

    assert done.returncode == 1
    assert "the URL reaches the DataHub web app, not GMS" in done.stderr


def test_submit_without_gms_queues_nothing_and_says_why(sandbox, cli_env):
    url = sandbox.aws.create_queue("submit-no-gms")
    env = {**cli_env, "EXECUTOR_QUEUE_URL": url, "DATAHUB_GMS_URL": ""}

    done = executor("submit", str(RECIPES / "demo-sqlite.yml"), env=env, timeout=60)

    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: no GMS URL: set DATAHUB_GMS_URL (or --gms-url), e.g. https://<company>.acryl.io/gms"
    )
    sqs = sandbox.aws.client("sqs")
    answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert answer["Attributes"]["ApproximateNumberOfMessages"] == "0"
