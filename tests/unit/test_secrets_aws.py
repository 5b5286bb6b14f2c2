"""AwsSecretResolver against moto's Secrets Manager on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from remote_executor.errors import MissingSecretError, SecretError
from remote_executor.sandbox.aws import AwsSandbox
from remote_executor.secrets.aws import AwsSecretResolver

MISSING_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"


@pytest.fixture(scope="module")
def client(aws_box: AwsSandbox) -> Any:
    return aws_box.client("secretsmanager")


@pytest.fixture(scope="module")
def db_arn(aws_box: AwsSandbox) -> str:
    return aws_box.put_secret("prod/db-password", "hunter2-db-value")


def test_value_by_arn(client: Any, db_arn: str) -> None:
    resolver = AwsSecretResolver({"DB_PASSWORD": db_arn}, client=client)

    assert resolver.resolve(["DB_PASSWORD"]) == {"DB_PASSWORD": "hunter2-db-value"}


def test_value_by_name(client: Any, db_arn: str) -> None:
    resolver = AwsSecretResolver({"DB_PASSWORD": "prod/db-password"}, client=client)

    assert resolver.resolve(["DB_PASSWORD"]) == {"DB_PASSWORD": "hunter2-db-value"}


def test_secret_binary_is_decoded(client: Any) -> None:
    arn = client.create_secret(Name="binary-key", SecretBinary="binary-value-é".encode())["ARN"]
    resolver = AwsSecretResolver({"KEY": arn}, client=client)

    assert resolver.resolve(["KEY"]) == {"KEY": "binary-value-é"}


def test_rotated_value_is_used_by_the_next_resolve(aws_box: AwsSandbox, client: Any) -> None:
    arn = aws_box.put_secret("rotating", "first-value")
    resolver = AwsSecretResolver({"ROT": arn}, client=client)
    assert resolver.resolve(["ROT"]) == {"ROT": "first-value"}

    aws_box.put_secret("rotating", "second-value")

    assert resolver.resolve(["ROT"]) == {"ROT": "second-value"}


def test_missing_arn_names_the_name_and_the_arn(client: Any, db_arn: str) -> None:
    resolver = AwsSecretResolver({"DB_PASSWORD": db_arn, "GONE": MISSING_ARN}, client=client)

    with pytest.raises(SecretError) as caught:
        resolver.resolve(["DB_PASSWORD", "GONE"])

    assert str(caught.value) == f"secret GONE: AWS Secrets Manager has no secret {MISSING_ARN}"
    assert not isinstance(caught.value, MissingSecretError)
    assert "hunter2-db-value" not in str(caught.value)


def test_unmapped_name_is_missing_without_calling_aws(db_arn: str) -> None:
    class NoCalls:
        def get_secret_value(self, **_: Any) -> Any:
            raise AssertionError("no AWS call expected")

    resolver = AwsSecretResolver({"DB_PASSWORD": db_arn}, client=NoCalls())  # type: ignore[arg-type]

    with pytest.raises(MissingSecretError) as caught:
        resolver.resolve(["DB_PASSWORD", "API_KEY"])

    assert str(caught.value) == (
        "secret API_KEY referenced by the recipe as ${NAME} is not configured "
        "(EXECUTOR_SECRETS maps DB_PASSWORD)"
    )


def test_empty_mapping_says_so() -> None:
    resolver = AwsSecretResolver({})

    with pytest.raises(MissingSecretError, match=r"\(EXECUTOR_SECRETS is empty\)$"):
        resolver.resolve(["X_1"])


def test_resolve_available_skips_unmapped_names(client: Any, db_arn: str) -> None:
    resolver = AwsSecretResolver({"DB_PASSWORD": db_arn}, client=client)

    assert resolver.resolve_available(["DB_PASSWORD", "OTHER"]) == {
        "DB_PASSWORD": "hunter2-db-value"
    }
    assert resolver.configured_names() == ["DB_PASSWORD"]


def test_unreachable_endpoint_is_a_secret_error() -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "secretsmanager",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
    )
    resolver = AwsSecretResolver({"DB_PASSWORD": MISSING_ARN}, client=client)

    with pytest.raises(
        SecretError, match=r"^secret DB_PASSWORD: Secrets Manager could not be reached"
    ):
        resolver.resolve(["DB_PASSWORD"])
