"""One error tree for the whole executor.

Every error the executor raises on purpose derives from ``ExecutorError``, so a
caller can catch one class. Foreign exceptions (botocore, requests, yaml) are
wrapped once, at the adapter that met them, with ``raise ... from exc``.

    ExecutorError
    ├── ConfigurationError          settings that cannot work (missing URL, bad mapping)
    ├── MessageError                a queue message we cannot turn into a task
    │   ├── MalformedMessageError   not JSON, or not the contract shape
    │   └── UnknownTaskError        a task name this executor does not run
    ├── RecipeError                 the recipe is not valid YAML/JSON or has no source
    ├── SecretError                 a referenced secret could not be resolved
    │   └── MissingSecretError      no source knows the name
    ├── QueueError                  SQS refused or could not be reached
    │   └── LeaseLostError          the message's lease cannot be extended any more
    ├── GmsError                    GMS could not take or give what we asked
    │   ├── GmsUnavailableError     connection failed, timed out, 5xx or 429 after retries
    │   ├── GmsRejectedError        a 4xx other than auth: the payload was refused
    │   ├── GmsAuthError            401/403: the token is missing, wrong or lacks rights
    │   └── NotGmsError             the URL answers, but it is not GMS (HTML, no /gms)
    ├── RunnerError                 the ingestion subprocess could not be started
    └── VenvError                   the CLI environment a request asks for cannot be had

``MessageError`` carries the request urn when the message named one, so the
worker can report FAILURE for it.
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Root of every error the executor raises on purpose."""


class ConfigurationError(ExecutorError):
    """The settings cannot work; the message says which one and how to fix it."""


class MessageError(ExecutorError):
    """A queue message that cannot become a task."""

    def __init__(self, message: str, urn: str | None = None) -> None:
        super().__init__(message)
        self.urn = urn


class MalformedMessageError(MessageError):
    """The body is not JSON or not the shape of DESIGN.md."""


class UnknownTaskError(MessageError):
    """The message asks for a task this executor does not run."""


class RecipeError(ExecutorError):
    """The recipe cannot be run: not parseable, or missing what every recipe needs."""


class SecretError(ExecutorError):
    """A secret referenced by a recipe could not be resolved."""


class MissingSecretError(SecretError):
    """No configured source has a value for these names."""

    def __init__(self, names: list[str], tried: str) -> None:
        listed = ", ".join("${" + name + "}" for name in names)
        plural = "s" if len(names) > 1 else ""
        super().__init__(
            f"secret{plural} {listed} referenced by the recipe "
            f"{'were' if plural else 'was'} found in no source ({tried})"
        )
        self.names = names


class QueueError(ExecutorError):
    """The queue could not be reached or refused the call."""


class LeaseLostError(QueueError):
    """The lease could not be extended: the message is gone or its receipt is stale."""


class GmsError(ExecutorError):
    """GMS did not do what we asked."""


class GmsUnavailableError(GmsError):
    """GMS could not be reached, or kept failing transiently, after retries."""


class GmsRejectedError(GmsError):
    """GMS answered a 4xx (other than auth): retrying will not help."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class GmsAuthError(GmsRejectedError):
    """GMS answered 401 or 403: the token is missing, invalid or lacks privileges."""


class NotGmsError(GmsError):
    """The URL answers, but not as GMS: usually the web app, without the /gms suffix."""


class RunnerError(ExecutorError):
    """The ingestion subprocess could not be started."""


class VenvError(ExecutorError):
    """The CLI version, plugins or packages a request asks for cannot be provided: a
    version that is none, an install that is refused or that failed."""
