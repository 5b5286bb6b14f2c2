"""AwsSecretResolver against moto's Secrets Manager on loopback: every ECS valueFrom form,
prefix mode, the cache, BatchGetSecretValue, and the one retry after an auth error."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from remote_executor.errors import ConfigurationError, SecretError
from remote_executor.sandbox.aws import AwsSandbox
from remote_executor.secrets.aws import AwsSecretResolver, SecretRef

MISSING_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingClient:
    """The real moto client, with every API call counted by name (at the boto3 layer)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()
        client.meta.events.register("before-call.secrets-manager", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class RefusingClient(CountingClient):
    """Answers ``code`` to the first ``times`` calls of ``operation``, then passes through."""

    def __init__(self, client: Any, operation: str, code: str, times: int) -> None:
        super().__init__(client)
        self.operation, self.code, self.left = operation, code, times

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name != self.operation:
            return real

        def call(**kwargs: Any) -> Any:
            if self.left > 0:
                self.left -= 1
                self.calls[f"refused {name}"] += 1
                raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, name)
            return real(**kwargs)

        return call


@pytest.fixture(scope="module")
def client(aws_box: AwsSandbox) -> Any:
    return aws_box.client("secretsmanager")


@pytest.fixture(scope="module")
def db_arn(aws_box: AwsSandbox) -> str:
    return aws_box.put_secret("prod/db-password", "hunter2-db-value")


@pytest.fixture(scope="module")
def json_arn(aws_box: AwsSandbox) -> str:
    document = {"username": "datahub", "password": "json-held-password", "port": 5432}
    return aws_box.put_secret("prod/db-credentials", json.dumps(document))


def test_value_by_arn_and_by_name(client: Any, db_arn: str) -> None:
    by_arn = AwsSecretResolver({"DB_PASSWORD": db_arn}, client=client)
    by_name = AwsSecretResolver({"DB_PASSWORD": "prod/db-password"}, client=client)

    assert by_arn.lookup(["DB_PASSWORD"]) == {"DB_PASSWORD": "hunter2-db-value"}
    assert by_name.lookup(["DB_PASSWORD"]) == {"DB_PASSWORD": "hunter2-db-value"}


def test_secret_binary_is_decoded(client: Any) -> None:
    arn = client.create_secret(Name=unique("binary"), SecretBinary="binary-value-é".encode())["ARN"]

    assert AwsSecretResolver({"KEY": arn}, client=client).lookup(["KEY"]) == {
        "KEY": "binary-value-é"
    }


def test_json_key_form_reads_one_key(client: Any, json_arn: str) -> None:
    resolver = AwsSecretResolver(
        {"PG_PASSWORD": f"{json_arn}:password::", "PG_PORT": f"{json_arn}:port::"},
        client=client,
    )

    assert resolver.lookup(["PG_PASSWORD", "PG_PORT"]) == {
        "PG_PASSWORD": "json-held-password",
        "PG_PORT": "5432",
    }


@pytest.mark.parametrize(
    ("value_from", "expected"),
    [
        ("{json}:passwd::", "{json} has no key 'passwd' (its keys: password, port, username)"),
        ("{db}:password::", "{db} is not a JSON object, so it has no key 'password'"),
        ("{db}::NOSUCHSTAGE:", "AWS Secrets Manager has no secret {db}, stage NOSUCHSTAGE"),
        (MISSING_ARN, f"AWS Secrets Manager has no secret {MISSING_ARN}"),
    ],
    ids=["no such key", "not JSON", "no such stage", "no such secret"],
)
def test_unreadable_secret_names_it_and_never_a_value(
    client: Any, db_arn: str, json_arn: str, value_from: str, expected: str
) -> None:
    arns = {"db": db_arn, "json": json_arn}
    resolver = AwsSecretResolver({"OK": db_arn, "X": value_from.format(**arns)}, client=client)

    with pytest.raises(SecretError) as caught:
        resolver.lookup(["OK", "X"])

    assert str(caught.value) == f"secret X: {expected.format(**arns)}"
    assert "hunter2" not in str(caught.value)
    assert "json-held" not in str(caught.value)


def test_version_stage_and_version_id(aws_box: AwsSandbox, client: Any) -> None:
    name = unique("staged")
    arn = aws_box.put_secret(name, "old-value-1")
    old_id = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    [old_version] = list(old_id)
    aws_box.put_secret(name, "new-value-2")
    resolver = AwsSecretResolver(
        {
            "CURRENT": arn,
            "PREVIOUS": f"{arn}::AWSPREVIOUS:",
            "PINNED": f"{arn}:::{old_version}",
        },
        client=client,
    )

    assert resolver.lookup(["CURRENT", "PREVIOUS", "PINNED"]) == {
        "CURRENT": "new-value-2",
        "PREVIOUS": "old-value-1",
        "PINNED": "old-value-1",
    }


def test_prefix_mode_reads_prefix_plus_name(aws_box: AwsSandbox, client: Any) -> None:
    prefix = f"{unique('datahub')}/"
    aws_box.put_secret(f"{prefix}SNOWFLAKE_PASSWORD", "prefixed-value")
    aws_box.put_secret(f"{prefix}api-key", "hyphen-value")
    resolver = AwsSecretResolver({}, prefix, client=client)

    assert resolver.lookup(["SNOWFLAKE_PASSWORD", "api-key", "NOT_THERE"]) == {
        "SNOWFLAKE_PASSWORD": "prefixed-value",
        "api-key": "hyphen-value",
    }
    assert resolver.missed("NOT_THERE") == (
        f"aws: no secret {prefix}NOT_THERE (EXECUTOR_SECRETS_PREFIX)"
    )


def test_mapping_wins_over_prefix(aws_box: AwsSandbox, client: Any, db_arn: str) -> None:
    prefix = f"{unique('datahub')}/"
    aws_box.put_secret(f"{prefix}DB_PASSWORD", "prefixed-value")

    resolver = AwsSecretResolver({"DB_PASSWORD": db_arn}, prefix, client=client)

    assert resolver.lookup(["DB_PASSWORD"]) == {"DB_PASSWORD": "hunter2-db-value"}


def test_without_mapping_or_prefix_no_call_is_made() -> None:
    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"no AWS call expected, got {name}")

    resolver = AwsSecretResolver({}, client=NoCalls())  # type: ignore[arg-type]

    assert resolver.lookup(["ANY"]) == {}
    assert resolver.missed("ANY") == (
        "aws: not in EXECUTOR_SECRETS, and EXECUTOR_SECRETS_PREFIX is not set"
    )
    assert resolver.describe() == "nothing mapped (EXECUTOR_SECRETS), no prefix"


def test_several_secrets_are_read_in_one_batch_call(aws_box: AwsSandbox, client: Any) -> None:
    arns = {f"S{n}": aws_box.put_secret(unique(f"batch{n}"), f"batch-value-{n}") for n in range(3)}
    counting = CountingClient(aws_box.client("secretsmanager"))
    resolver = AwsSecretResolver(arns, client=counting)  # type: ignore[arg-type]

    values = resolver.lookup(sorted(arns))

    assert values == {f"S{n}": f"batch-value-{n}" for n in range(3)}
    assert counting.calls == {"BatchGetSecretValue": 1}


def test_more_than_twenty_take_more_batch_calls(aws_box: AwsSandbox) -> None:
    arns = {f"S{n}": aws_box.put_secret(unique(f"many{n}"), f"many-value-{n}") for n in range(23)}
    counting = CountingClient(aws_box.client("secretsmanager"))

    values = AwsSecretResolver(arns, client=counting).lookup(sorted(arns))  # type: ignore[arg-type]

    assert len(values) == 23
    assert counting.calls == {"BatchGetSecretValue": 2}


def test_batch_with_one_missing_secret_names_it(client: Any, db_arn: str) -> None:
    resolver = AwsSecretResolver({"A": db_arn, "B": MISSING_ARN}, client=client)

    with pytest.raises(SecretError, match=r"^secret B: AWS Secrets Manager has no secret"):
        resolver.lookup(["A", "B"])


def test_role_without_batch_permission_falls_back_to_single_reads(
    aws_box: AwsSandbox, db_arn: str, json_arn: str
) -> None:
    refusing = RefusingClient(
        aws_box.client("secretsmanager"), "batch_get_secret_value", "AccessDeniedException", 1
    )
    resolver = AwsSecretResolver(
        {"A": db_arn, "B": json_arn},
        client=refusing,  # type: ignore[arg-type]
        cache_seconds=0,
    )

    assert resolver.lookup(["A", "B"])["A"] == "hunter2-db-value"
    assert refusing.calls == {"refused batch_get_secret_value": 1, "GetSecretValue": 2}

    resolver.lookup(["A", "B"])  # noticed once: no second try of the batch

    assert refusing.calls == {"refused batch_get_secret_value": 1, "GetSecretValue": 4}


def test_values_are_cached_then_fetched_fresh(aws_box: AwsSandbox) -> None:
    name = unique("rotating")
    arn = aws_box.put_secret(name, "first-value")
    clock = Clock()
    counting = CountingClient(aws_box.client("secretsmanager"))
    resolver = AwsSecretResolver(
        {"ROT": arn},
        client=counting,  # type: ignore[arg-type]
        cache_seconds=60,
        clock=clock,
    )
    assert resolver.lookup(["ROT"]) == {"ROT": "first-value"}

    aws_box.put_secret(name, "second-value")
    clock.now += 59
    assert resolver.lookup(["ROT"]) == {"ROT": "first-value"}  # still cached
    clock.now += 1

    assert resolver.lookup(["ROT"]) == {"ROT": "second-value"}
    assert counting.calls == {"GetSecretValue": 2}


def test_cache_of_zero_reads_every_time(aws_box: AwsSandbox, client: Any) -> None:
    name = unique("uncached")
    arn = aws_box.put_secret(name, "first-value")
    resolver = AwsSecretResolver({"ROT": arn}, client=client, cache_seconds=0)
    resolver.lookup(["ROT"])

    aws_box.put_secret(name, "second-value")

    assert resolver.lookup(["ROT"]) == {"ROT": "second-value"}


@pytest.mark.parametrize("code", ["ExpiredTokenException", "DecryptionFailure"])
def test_auth_or_decrypt_error_is_tried_once_more(
    aws_box: AwsSandbox, db_arn: str, code: str
) -> None:
    refusing = RefusingClient(aws_box.client("secretsmanager"), "get_secret_value", code, 1)
    resolver = AwsSecretResolver({"A": db_arn}, client=refusing)  # type: ignore[arg-type]

    assert resolver.lookup(["A"]) == {"A": "hunter2-db-value"}
    assert refusing.calls == {"refused get_secret_value": 1, "GetSecretValue": 1}


def test_the_retry_uses_a_new_client_with_fresh_credentials(
    aws_box: AwsSandbox, db_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in aws_box.env().items():
        monkeypatch.setenv(name, value)
    made: list[RefusingClient] = []
    real_client = boto3.client

    def new_client(*args: Any, **kwargs: Any) -> Any:
        refusals = 0 if made else 1  # the first client's credentials have expired
        made.append(
            RefusingClient(
                real_client(*args, **kwargs),
                "get_secret_value",
                "ExpiredTokenException",
                refusals,
            )
        )
        return made[-1]

    monkeypatch.setattr(boto3, "client", new_client)
    resolver = AwsSecretResolver({"A": db_arn})

    assert resolver.lookup(["A"]) == {"A": "hunter2-db-value"}
    assert [client.calls for client in made] == [
        {"refused get_secret_value": 1},
        {"GetSecretValue": 1},
    ]


def test_auth_error_twice_fails_naming_the_secret(aws_box: AwsSandbox, db_arn: str) -> None:
    refusing = RefusingClient(
        aws_box.client("secretsmanager"), "get_secret_value", "AccessDeniedException", 2
    )
    resolver = AwsSecretResolver({"A": db_arn}, client=refusing)  # type: ignore[arg-type]

    with pytest.raises(SecretError) as caught:
        resolver.lookup(["A"])

    assert str(caught.value) == (
        f"secret A: access denied to {db_arn}; the task role needs "
        "secretsmanager:GetSecretValue on it (and kms:Decrypt on its key, if it has its own)"
    )
    assert refusing.calls == {"refused get_secret_value": 2}


def test_unreachable_endpoint_is_a_secret_error(unreachable_client: Callable[[str], Any]) -> None:
    client = unreachable_client("secretsmanager")
    resolver = AwsSecretResolver({"DB_PASSWORD": MISSING_ARN}, client=client)

    with pytest.raises(
        SecretError, match=r"^secret DB_PASSWORD: Secrets Manager could not be reached"
    ):
        resolver.lookup(["DB_PASSWORD"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prod/db", SecretRef("prod/db")),
        (MISSING_ARN, SecretRef(MISSING_ARN)),
        (f"{MISSING_ARN}:password::", SecretRef(MISSING_ARN, "password")),
        (f"{MISSING_ARN}::AWSPREVIOUS:", SecretRef(MISSING_ARN, None, "AWSPREVIOUS")),
        (f"{MISSING_ARN}:::v-123", SecretRef(MISSING_ARN, None, None, "v-123")),
        (f"{MISSING_ARN}:password", SecretRef(MISSING_ARN, "password")),
        ("prod/db:password::", SecretRef("prod/db", "password")),
    ],
)
def test_value_from_forms(text: str, expected: SecretRef) -> None:
    assert SecretRef.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "arn:aws:s3:::bucket",
        "arn:aws:secretsmanager:us-east-1:123456789012:parameter:x",
        f"{MISSING_ARN}:a:b:c:d",
        ":password",
    ],
)
def test_bad_value_from_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        SecretRef.parse(text)
