"""executor check: one line per part, OK or the fix; names in the output, never values."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from remote_executor.check import (
    CheckResult,
    check_cli,
    check_gms,
    check_queue,
    check_secrets,
    check_venvs,
)
from remote_executor.errors import SecretError
from remote_executor.gms import GmsClient
from remote_executor.handoff import Handoff
from remote_executor.queue import MemoryQueue
from remote_executor.queue.sqs import SqsQueue
from remote_executor.sandbox.aws import AwsSandbox
from remote_executor.sandbox.gms import GmsStandIn
from remote_executor.secrets import MemorySecretResolver, SecretSources
from remote_executor.secrets.aws import AwsSecretResolver
from remote_executor.secrets.environment import EnvSecretResolver
from remote_executor.secrets.files import FileSecretResolver

TOKEN = "gms-token-for-check"
DB_VALUE = "db-password-value-123"
API_VALUE = "api-key-value-456"
MISSING_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"


@pytest.fixture(scope="module")
def gms() -> Iterator[GmsStandIn]:
    with GmsStandIn(token=TOKEN) as stand_in:
        yield stand_in


def lines(results: Iterator[CheckResult]) -> list[str]:
    return [result.line() for result in results]


def test_line_is_aligned() -> None:
    assert CheckResult(True, "gms", "fine").line() == "OK    gms      fine"
    assert CheckResult(False, "secrets", "bad").line() == "FAIL  secrets  bad"


def test_secrets_ok_names_without_values() -> None:
    resolver = MemorySecretResolver({"DB_PASSWORD": DB_VALUE, "API_KEY": API_VALUE})

    output = lines(check_secrets(SecretSources([resolver])))

    assert output == [
        "OK    secrets  memory: values for API_KEY, DB_PASSWORD",
        "OK    secrets  memory: API_KEY resolves",
        "OK    secrets  memory: DB_PASSWORD resolves",
    ]


def test_each_source_is_described_in_order(tmp_path: Path) -> None:
    (tmp_path / "FILE_SECRET").write_text(DB_VALUE)
    sources = SecretSources(
        [AwsSecretResolver({}), FileSecretResolver(tmp_path), EnvSecretResolver({})]
    )

    assert lines(check_secrets(sources)) == [
        "OK    secrets  aws: nothing mapped (EXECUTOR_SECRETS), no prefix",
        f"OK    secrets  file: files in {tmp_path}",
        "OK    secrets  file: FILE_SECRET resolves",
        "OK    secrets  env: the worker's environment",
    ]


def test_no_source() -> None:
    assert lines(check_secrets(SecretSources([]))) == [
        "OK    secrets  no source (EXECUTOR_SECRET_SOURCES is empty)"
    ]


def test_secret_that_fails_is_named(aws_box: AwsSandbox) -> None:
    arn = aws_box.put_secret(f"check-{uuid.uuid4().hex[:6]}", DB_VALUE)
    resolver = AwsSecretResolver(
        {"DB_PASSWORD": arn, "GONE": MISSING_ARN}, client=aws_box.client("secretsmanager")
    )

    output = lines(check_secrets(SecretSources([resolver])))

    assert output == [
        "OK    secrets  aws: EXECUTOR_SECRETS maps DB_PASSWORD, GONE",
        "OK    secrets  aws: DB_PASSWORD resolves",
        f"FAIL  secrets  aws: secret GONE: AWS Secrets Manager has no secret {MISSING_ARN}",
    ]
    assert not any(DB_VALUE in line for line in output)


def test_secret_error_does_not_stop_the_other_checks() -> None:
    class HalfBroken(MemorySecretResolver):
        def lookup(self, names: Any) -> dict[str, str]:
            if "BROKEN" in names:
                raise SecretError("secret BROKEN: access denied to arn:x; the task role needs it")
            return super().lookup(names)

    output = lines(
        check_secrets(SecretSources([HalfBroken({"BROKEN": "x-value-1", "FINE": API_VALUE})]))
    )

    assert output[1:] == [
        "FAIL  secrets  memory: secret BROKEN: access denied to arn:x; the task role needs it",
        "OK    secrets  memory: FINE resolves",
    ]


def test_no_queue() -> None:
    assert lines(check_queue(None)) == ["FAIL  queue    no queue URL: set EXECUTOR_QUEUE_URL"]


def test_memory_queue_counts_waiting_messages() -> None:
    queue = MemoryQueue("memory://q")
    queue.send("a")
    queue.send("b")

    assert lines(check_queue(queue)) == [
        "OK    queue    memory://q reachable, 2 message(s) waiting"
    ]


def test_sqs_queue(aws_box: AwsSandbox) -> None:
    url = aws_box.create_queue(f"check-{uuid.uuid4().hex[:8]}")
    queue = SqsQueue(url, aws_box.client("sqs"))
    queue.send("a")

    assert lines(check_queue(queue)) == [f"OK    queue    {url} reachable, 1 message(s) waiting"]


def test_missing_sqs_queue_says_what_the_role_needs(aws_box: AwsSandbox) -> None:
    url = f"{aws_box.endpoint_url}/123456789012/no-such-queue"

    output = lines(check_queue(SqsQueue(url, aws_box.client("sqs"))))

    assert output == [
        f"FAIL  queue    queue {url}: AWS.SimpleQueueService.NonExistentQueue: The specified "
        "queue does not exist. (the role needs sqs:GetQueueAttributes)"
    ]


def test_no_gms() -> None:
    assert lines(check_gms(None, has_token=False)) == [
        "FAIL  gms      no GMS URL: set DATAHUB_GMS_URL, e.g. https://<company>.acryl.io/gms"
    ]


def test_gms_and_token_accepted(gms: GmsStandIn) -> None:
    output = lines(check_gms(GmsClient(gms.url, TOKEN, retry_seconds=1), has_token=True))

    assert output == [
        f"OK    gms      {gms.url} answers (DataHub v1.2.0)",
        "OK    token    accepted",
    ]


def test_wrong_token_is_refused_without_showing_it(gms: GmsStandIn) -> None:
    output = lines(check_gms(GmsClient(gms.url, "wrong-token-value", retry_seconds=1), True))

    assert output[0].startswith("OK    gms")
    assert output[1].startswith("FAIL  token    GMS refused the token (401) for GET ")
    assert "check DATAHUB_GMS_TOKEN" in output[1]
    assert not any("wrong-token-value" in line or TOKEN in line for line in output)


def test_url_without_gms_suffix_is_explained(gms: GmsStandIn) -> None:
    output = lines(check_gms(GmsClient(gms.root_url, TOKEN, retry_seconds=1), True))

    assert output == [
        f"FAIL  gms      {gms.root_url} answers HTML: the URL reaches the DataHub web app, not "
        "GMS; for DataHub Cloud use https://<company>.acryl.io/gms"
    ]


def test_cli_version_is_shown(fake_command: tuple[str, ...]) -> None:
    assert lines(check_cli(fake_command)) == [f"OK    datahub  CLI 9.9.9 at {fake_command[0]}"]


def test_cli_check_says_how_secrets_are_handed_over(fake_command: tuple[str, ...]) -> None:
    older = (*fake_command, "--no-envelope")

    assert lines(check_cli(fake_command, Handoff(fake_command)))[1:] == [
        "OK    datahub  secrets are handed over on stdin"
    ]
    assert lines(check_cli(older, Handoff(older)))[1:] == [
        "OK    datahub  secrets are handed over as environment variables"
    ]


def test_cli_that_cannot_run() -> None:
    assert lines(check_cli(("/nonexistent/datahub",))) == [
        "FAIL  datahub  cannot run /nonexistent/datahub: [Errno 2] No such file or directory: "
        "'/nonexistent/datahub'; install acryl-datahub or set EXECUTOR_DATAHUB_COMMAND"
    ]


def test_cli_that_fails_shows_its_error(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import sys; sys.exit('ModuleNotFoundError: No module named datahub')")

    output = lines(check_cli((sys.executable, str(script))))

    assert len(output) == 1
    assert output[0].startswith("FAIL  datahub  ")
    assert output[0].endswith("version failed: ModuleNotFoundError: No module named datahub")


def test_venvs_check_says_where_the_cache_is_and_what_is_bundled(
    make_context: Callable[..., Any], tmp_path: Path
) -> None:
    environments = make_context().environments
    (environments.config.root).mkdir(parents=True, exist_ok=True)

    assert lines(check_venvs(environments)) == [
        f"OK    venvs    0 cached environments (0.00 of 10 GB) in {tmp_path / 'venvs'}; "
        "EXECUTOR_ALLOW_INSTALL=false"
    ]
