"""AWS Secrets Manager by mapping: ``NAME=<ARN or name>`` as CloudFormation's OptionalSecrets.

Values are fetched for each task, never cached across tasks, so a rotated
secret is used by the next task without a restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from remote_executor.aws import RETRY_CONFIG, error_code
from remote_executor.errors import MissingSecretError, SecretError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_NOT_FOUND = {"ResourceNotFoundException"}
_DENIED = {"AccessDeniedException", "AccessDenied"}


def _region_of(mapping: dict[str, str]) -> str | None:
    # arn:aws:secretsmanager:<region>:<account>:secret:<name>
    for secret_id in mapping.values():
        parts = secret_id.split(":")
        if len(parts) > 3 and parts[0] == "arn" and parts[3]:
            return parts[3]
    return None


class AwsSecretResolver:
    """Resolves configured names from AWS Secrets Manager."""

    def __init__(
        self,
        mapping: dict[str, str],
        client: SecretsManagerClient | None = None,
        region: str | None = None,
    ) -> None:
        self._mapping = dict(mapping)
        self._client = client
        self._region = region

    @property
    def client(self) -> SecretsManagerClient:
        """boto3's client from its own configuration, made on first use: no mapping, no AWS."""
        if self._client is None:
            region = (
                self._region or boto3.session.Session().region_name or _region_of(self._mapping)
            )
            try:
                self._client = boto3.client(
                    "secretsmanager", region_name=region, config=RETRY_CONFIG
                )
            except BotoCoreError as exc:
                raise SecretError(f"cannot reach Secrets Manager: {exc}; set AWS_REGION") from exc
        return self._client

    def resolve(self, names: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(names))
        missing = [name for name in wanted if name not in self._mapping]
        if missing:
            raise MissingSecretError(missing, self.describe())
        return {name: self._fetch(name, self._mapping[name]) for name in wanted}

    def resolve_available(self, names: Iterable[str]) -> dict[str, str]:
        known = sorted(name for name in set(names) if name in self._mapping)
        return {name: self._fetch(name, self._mapping[name]) for name in known}

    def configured_names(self) -> list[str]:
        return sorted(self._mapping)

    def describe(self) -> str:
        if not self._mapping:
            return "EXECUTOR_SECRETS is empty"
        return f"EXECUTOR_SECRETS maps {', '.join(sorted(self._mapping))}"

    def _fetch(self, name: str, secret_id: str) -> str:
        try:
            response: Any = self.client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            code = error_code(exc)
            if code in _NOT_FOUND:
                raise SecretError(
                    f"secret {name}: AWS Secrets Manager has no secret {secret_id}"
                ) from exc
            if code in _DENIED:
                raise SecretError(
                    f"secret {name}: access denied to {secret_id}; the task role needs "
                    "secretsmanager:GetSecretValue on it"
                ) from exc
            raise SecretError(f"secret {name}: Secrets Manager answered {code}") from exc
        except BotoCoreError as exc:
            raise SecretError(
                f"secret {name}: Secrets Manager could not be reached ({exc})"
            ) from exc
        if "SecretString" in response:
            return str(response["SecretString"])
        return bytes(response["SecretBinary"]).decode("utf-8")
