"""AWS Secrets Manager: by mapping (``EXECUTOR_SECRETS=NAME=<ARN or name>``) or by prefix.

A mapping takes the ECS ``valueFrom`` forms: a whole secret, one key of a JSON
secret (``arn:...:secret:db-AbCdEf:password::``), a version stage or a version
id (``...:secret:db-AbCdEf::AWSPREVIOUS:``). With ``EXECUTOR_SECRETS_PREFIX=datahub/``
an unmapped ``${FOO}`` reads the secret ``datahub/FOO``; its absence leaves the
name to the next source. Values are cached for ``EXECUTOR_SECRET_CACHE_SECONDS``,
so a rotated secret reaches the first task after that, without a restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError

from remote_executor.aws import CLIENT_CONFIG
from remote_executor.errors import ConfigurationError, SecretError
from remote_executor.secrets.fetch import FetchKey, SecretFetcher

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


@dataclass(frozen=True)
class SecretRef:
    """Where one name's value is: a secret, and optionally a JSON key and a version."""

    secret_id: str
    json_key: str | None = None
    version_stage: str | None = None
    version_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """Read an ECS ``valueFrom``: ``<ARN or name>[:json-key[:version-stage[:version-id]]]``."""
        parts = text.strip().split(":")
        if parts[0] == "arn":
            if len(parts) < 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
                raise ConfigurationError(
                    f"{text!r} is not a Secrets Manager ARN; expected "
                    "arn:aws:secretsmanager:<region>:<account>:secret:<name>[:json-key::]"
                )
            head, extra = ":".join(parts[:7]), parts[7:]
        else:
            head, extra = parts[0], parts[1:]
        if not head or len(extra) > 3:
            raise ConfigurationError(
                f"{text!r}: expected <ARN or name>[:json-key[:version-stage[:version-id]]]"
            )
        key, stage, version = [*(part or None for part in extra), None, None, None][:3]
        return cls(head, key, stage, version)

    @property
    def fetch_key(self) -> FetchKey:
        """What one GetSecretValue call reads: the secret and the version."""
        return FetchKey(self.secret_id, self.version_stage, self.version_id)

    def describe(self) -> str:
        """The secret in words: id, and the key and version when given."""
        words = [self.secret_id]
        if self.json_key:
            words.append(f"key {self.json_key}")
        if self.version_stage:
            words.append(f"stage {self.version_stage}")
        if self.version_id:
            words.append(f"version {self.version_id}")
        return ", ".join(words)


def _region_of(refs: Sequence[SecretRef]) -> str | None:
    # arn:aws:secretsmanager:<region>:<account>:secret:<name>
    for ref in refs:
        parts = ref.secret_id.split(":")
        if len(parts) > 3 and parts[0] == "arn" and parts[3]:
            return parts[3]
    return None


def _pick_key(name: str, ref: SecretRef, raw: str) -> str:
    if ref.json_key is None:
        return raw
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SecretError(
            f"secret {name}: {ref.secret_id} is not a JSON object, "
            f"so it has no key {ref.json_key!r}"
        )
    if ref.json_key not in document:
        keys = ", ".join(sorted(str(key) for key in document)) or "none"
        raise SecretError(
            f"secret {name}: {ref.secret_id} has no key {ref.json_key!r} (its keys: {keys})"
        )
    value = document[ref.json_key]
    return value if isinstance(value, str) else json.dumps(value)


class AwsSecretResolver:
    """Resolves mapped names, then prefixed names, from AWS Secrets Manager."""

    label = "aws"

    def __init__(
        self,
        mapping: dict[str, str],
        prefix: str | None = None,
        *,
        client: SecretsManagerClient | None = None,
        region: str | None = None,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            self._refs = {name: SecretRef.parse(value) for name, value in mapping.items()}
        except ConfigurationError as exc:
            raise ConfigurationError(f"EXECUTOR_SECRETS: {exc}") from exc
        self._prefix = prefix or None
        self._region = region
        self._lock = threading.Lock()
        self._client = client
        # A test client is kept; boto3's own client is made anew after an auth error.
        self._fixed_client = client is not None
        self._fetcher = SecretFetcher(self._get_client, self._renew_client, cache_seconds, clock)

    def _get_client(self) -> SecretsManagerClient:
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _renew_client(self) -> None:
        with self._lock:
            if not self._fixed_client:
                self._client = None

    def _new_client(self) -> SecretsManagerClient:
        region = (
            self._region
            or boto3.session.Session().region_name
            or _region_of(list(self._refs.values()))
        )
        try:
            return boto3.client("secretsmanager", region_name=region, config=CLIENT_CONFIG)
        except BotoCoreError as exc:
            raise SecretError(f"cannot reach Secrets Manager: {exc}; set AWS_REGION") from exc

    def _ref(self, name: str) -> SecretRef | None:
        if name in self._refs:
            return self._refs[name]
        return SecretRef(self._prefix + name) if self._prefix else None

    def lookup(self, names: Sequence[str]) -> dict[str, str]:
        wanted = {name: ref for name in names if (ref := self._ref(name)) is not None}
        if not wanted:
            return {}
        fetched = self._fetcher.fetch({ref.fetch_key: name for name, ref in wanted.items()})
        values: dict[str, str] = {}
        for name, ref in wanted.items():
            raw = fetched.get(ref.fetch_key)
            if raw is None:
                if name in self._refs:  # a mapping is a promise: its absence is an error
                    raise SecretError(
                        f"secret {name}: AWS Secrets Manager has no secret {ref.describe()}"
                    )
                continue
            values[name] = _pick_key(name, ref, raw)
        return values

    def missed(self, name: str) -> str:
        if self._prefix:
            return f"aws: no secret {self._prefix}{name} (EXECUTOR_SECRETS_PREFIX)"
        return "aws: not in EXECUTOR_SECRETS, and EXECUTOR_SECRETS_PREFIX is not set"

    def configured_names(self) -> list[str]:
        return sorted(self._refs)

    def describe(self) -> str:
        parts = []
        if self._refs:
            parts.append(f"EXECUTOR_SECRETS maps {', '.join(sorted(self._refs))}")
        if self._prefix:
            parts.append(f"${{NAME}} reads {self._prefix}NAME")
        return "; ".join(parts) or "nothing mapped (EXECUTOR_SECRETS), no prefix"
