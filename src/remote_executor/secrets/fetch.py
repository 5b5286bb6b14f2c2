"""The calls behind AwsSecretResolver: a short cache, BatchGetSecretValue, one retry.

Several uncached secrets are read in one BatchGetSecretValue call (20 at most
per call); a role without ``secretsmanager:BatchGetSecretValue`` falls back to
one GetSecretValue per secret, once noticed. A version stage or id can only be
read by GetSecretValue. An auth or decrypt error is tried once more with a new
client (fresh credentials), bypassing the cache, before the task fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from remote_executor.aws import describe, error_code
from remote_executor.errors import SecretError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

log = structlog.get_logger(__name__)

BATCH_LIMIT = 20
_NOT_FOUND = "ResourceNotFoundException"
_DENIED = {"AccessDeniedException", "AccessDenied"}
# Worth one more try with a new client: credentials that expired or rotated under
# the old one (ECS, IRSA), or a KMS grant that was still propagating.
_RETRIED = {
    *_DENIED,
    "ExpiredTokenException",
    "ExpiredToken",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "InvalidClientTokenId",
    "DecryptionFailure",
    "KMSAccessDeniedException",
    "KMSInvalidStateException",
}


class FetchKey(NamedTuple):
    """One readable value: a secret at a version (both None: the current one)."""

    secret_id: str
    version_stage: str | None = None
    version_id: str | None = None


class _Failure(NamedTuple):
    code: str
    text: str


def _text(answer: dict[str, Any]) -> str | None:
    if answer.get("SecretString") is not None:
        return str(answer["SecretString"])
    try:
        return bytes(answer["SecretBinary"]).decode("utf-8")
    except (KeyError, TypeError, UnicodeDecodeError):
        return None


def _matches(requested: str, answer: dict[str, Any]) -> bool:
    arn = str(answer.get("ARN", ""))
    # A partial ARN leaves out the six characters Secrets Manager appends to the name.
    return requested in (arn, answer.get("Name")) or (
        requested.startswith("arn:") and arn.startswith(requested + "-")
    )


class SecretFetcher:
    """Raw values by FetchKey; None where Secrets Manager has no such secret."""

    def __init__(
        self,
        client: Callable[[], SecretsManagerClient],
        renew_client: Callable[[], None],
        cache_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._renew_client = renew_client
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[FetchKey, tuple[str | None, float]] = {}
        self._batch_allowed = True

    def fetch(self, wanted: dict[FetchKey, str]) -> dict[FetchKey, str | None]:
        """Values for ``wanted`` (key to the name asking for it, for error messages)."""
        now = self._clock()
        values: dict[FetchKey, str | None] = {}
        with self._lock:
            for key in wanted:
                cached = self._cache.get(key)
                if cached is not None and now - cached[1] < self._cache_seconds:
                    values[key] = cached[0]
        todo = [key for key in wanted if key not in values]
        if not todo:
            return values
        fresh, failures = self._read_or_explain(todo, wanted)
        again = [key for key, failure in failures.items() if failure.code in _RETRIED]
        if again:
            self._renew_client()
            more, failures_again = self._read_or_explain(again, wanted)
            fresh.update(more)
            failures = {**{k: f for k, f in failures.items() if k not in more}, **failures_again}
        for key, failure in sorted(failures.items()):
            raise SecretError(self._explain(wanted[key], key, failure))
        with self._lock:
            for key, value in fresh.items():
                self._cache[key] = (value, now)
        return {**values, **fresh}

    def _read_or_explain(
        self, keys: list[FetchKey], wanted: dict[FetchKey, str]
    ) -> tuple[dict[FetchKey, str | None], dict[FetchKey, _Failure]]:
        try:
            return self._read(keys)
        except BotoCoreError as exc:
            names = ", ".join(sorted({wanted[key] for key in keys}))
            raise SecretError(
                f"secret {names}: Secrets Manager could not be reached ({exc})"
            ) from exc

    def _read(
        self, keys: list[FetchKey]
    ) -> tuple[dict[FetchKey, str | None], dict[FetchKey, _Failure]]:
        values: dict[FetchKey, str | None] = {}
        failures: dict[FetchKey, _Failure] = {}
        current = [key for key in keys if key.version_stage is None and key.version_id is None]
        single = [key for key in keys if key not in current]
        if len(current) > 1 and self._batch_allowed:
            for start in range(0, len(current), BATCH_LIMIT):
                single += self._read_batch(current[start : start + BATCH_LIMIT], values, failures)
        else:
            single += current
        for key in single:
            try:
                values[key] = self._read_one(key)
            except ClientError as exc:
                if error_code(exc) == _NOT_FOUND:
                    values[key] = None
                else:
                    failures[key] = _Failure(error_code(exc), describe(exc))
        return values, failures

    def _read_one(self, key: FetchKey) -> str | None:
        arguments: dict[str, str] = {"SecretId": key.secret_id}
        if key.version_stage:
            arguments["VersionStage"] = key.version_stage
        if key.version_id:
            arguments["VersionId"] = key.version_id
        answer: Any = self._client().get_secret_value(**arguments)
        value = _text(answer)
        if value is None:
            raise ClientError(
                {"Error": {"Code": "NotText", "Message": "its binary value is not UTF-8 text"}},
                "GetSecretValue",
            )
        return value

    def _read_batch(
        self,
        keys: list[FetchKey],
        values: dict[FetchKey, str | None],
        failures: dict[FetchKey, _Failure],
    ) -> list[FetchKey]:
        """Read ``keys`` in one call into ``values``/``failures``; return those left to read
        one by one."""
        ids = [key.secret_id for key in keys]
        try:
            answer: Any = self._client().batch_get_secret_value(SecretIdList=ids)
        except ClientError as exc:
            if error_code(exc) not in _DENIED:
                for key in keys:
                    failures[key] = _Failure(error_code(exc), describe(exc))
                return []
            self._batch_allowed = False
            # Expected, not a fault: IAM grants BatchGetSecretValue only on "*", which
            # least-privilege roles (the CloudFormation template's among them) leave out.
            log.info(
                "secrets.batch_denied",
                detail="the role may not call secretsmanager:BatchGetSecretValue; "
                "reading secrets one by one from now on",
            )
            return keys
        left: list[FetchKey] = []
        for key in keys:
            found = next((a for a in answer["SecretValues"] if _matches(key.secret_id, a)), None)
            error = next((e for e in answer["Errors"] if e["SecretId"] == key.secret_id), None)
            text = _text(found) if found is not None else None
            if text is not None:
                values[key] = text
            elif error is not None and error["ErrorCode"] == _NOT_FOUND:
                values[key] = None
            elif error is not None:
                failures[key] = _Failure(
                    error["ErrorCode"], f"{error['ErrorCode']}: {error.get('Message', '')}"
                )
            else:
                left.append(key)  # answered in a form we could not match: ask plainly
        return left

    @staticmethod
    def _explain(name: str, key: FetchKey, failure: _Failure) -> str:
        secret = ", ".join(
            part
            for part in (
                key.secret_id,
                key.version_stage and f"stage {key.version_stage}",
                key.version_id and f"version {key.version_id}",
            )
            if part
        )
        if failure.code in _DENIED:
            return (
                f"secret {name}: access denied to {secret}; the task role needs "
                "secretsmanager:GetSecretValue on it (and kms:Decrypt on its key, if it has "
                "its own)"
            )
        if failure.code in _RETRIED:
            return f"secret {name}: Secrets Manager refused {secret} twice ({failure.text})"
        return f"secret {name}: Secrets Manager could not read {secret} ({failure.text})"
