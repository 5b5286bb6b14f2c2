"""From Settings to the parts a command runs: the datahub CLI, the secret sources, the
task context, and the logs with their redactor."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from remote_executor.config import max_task_seconds
from remote_executor.handoff import Handoff
from remote_executor.logs import configure_logging
from remote_executor.secrets import Redactor, SecretResolver, SecretSources
from remote_executor.secrets.aws import AwsSecretResolver
from remote_executor.secrets.environment import EnvSecretResolver
from remote_executor.secrets.files import FileSecretResolver
from remote_executor.settings import Settings
from remote_executor.settings_common import CommonSettings
from remote_executor.task import TaskContext
from remote_executor.venvs import Environments, Installer
from remote_executor.venvs import packages as cli_packages

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


def datahub_command(settings: Settings) -> tuple[str, ...]:
    """The datahub CLI: as configured, else beside this Python, else on PATH."""
    if settings.datahub_command:
        return tuple(shlex.split(settings.datahub_command))
    beside = Path(sys.executable).parent / "datahub"
    if beside.exists():
        return (str(beside),)
    return (shutil.which("datahub") or "datahub",)


def environments(
    settings: Settings, command: tuple[str, ...], environ: Mapping[str, str] = os.environ
) -> Environments:
    """The CLI environments: the installed CLI is known by its version only when the
    executor runs the one beside it (no EXECUTOR_DATAHUB_COMMAND)."""
    config = settings.venv_config(settings.work_dir)
    installer = Installer(
        environ=environ,
        inherited=settings.child_environment(environ),
        cache_dir=Path(environ.get("UV_CACHE_DIR") or config.root / ".uv-cache"),
        wheelhouse=settings.wheelhouse,
    )
    native = None if settings.datahub_command else cli_packages.installed()
    return Environments(config, installer, command, native)


def secret_sources(
    settings: Settings,
    environ: Mapping[str, str] = os.environ,
    client: SecretsManagerClient | None = None,
) -> SecretSources:
    """The secret sources in the order of EXECUTOR_SECRET_SOURCES."""
    made: dict[str, SecretResolver] = {
        "aws": AwsSecretResolver(
            settings.secrets,
            prefix=settings.secrets_prefix,
            client=client,
            region=settings.aws_region,
            cache_seconds=settings.secret_cache_seconds,
        ),
        "file": FileSecretResolver(settings.secrets_dir),
        "env": EnvSecretResolver(environ),
    }
    return SecretSources([made[name] for name in settings.secret_sources])


def task_context(settings: Settings, redactor: Redactor, gms_url: str | None) -> TaskContext:
    """What every task shares, wired from the settings."""
    command = datahub_command(settings)
    return TaskContext(
        datahub_command=command,
        work_dir=settings.work_dir,
        base_env=settings.child_environment(os.environ),
        secrets=secret_sources(settings),
        redactor=redactor,
        handoff=Handoff(command, settings.secret_handoff),
        gms_url=gms_url,
        token=settings.token,
        environments=environments(settings, command),
        file_sink_when_no_gms=gms_url is None,
        report_max_chars=settings.report_max_chars,
        worker_id=settings.worker_id,
        kill_grace_seconds=settings.kill_grace_seconds,
        timeout_seconds=settings.task_timeout_seconds,
        max_timeout_seconds=max_task_seconds(settings.lease_seconds),
        memory_limit_mb=settings.task_memory_limit_mb,
        log_max_mb=settings.task_log_max_mb,
    )


def redactor_and_logs(settings: CommonSettings) -> Redactor:
    """The redactor that knows the token, with logging configured to use it."""
    redactor = Redactor()
    if settings.token:
        redactor.add(settings.token)
    configure_logging(redactor, settings.log_format, settings.log_level)
    return redactor
