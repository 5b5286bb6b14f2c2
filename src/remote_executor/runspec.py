"""From request to argv, environment and stdin: the rules that keep a recipe away from the
executor's own credentials.

A recipe author controls the recipe and the request's ``extra_env_vars``; the worker's
operator controls its environment. So:

- A recipe may not reference (``${NAME}`` or a bare ``$NAME``) a name the executor owns:
  the GMS token and URL (and their legacy names), every ``AWS_*`` and ``EXECUTOR_*``
  name, and every variable the child inherits from the worker. The one exception is
  ``${DATAHUB_GMS_TOKEN}`` as the ``token`` of a ``datahub-rest`` sink whose ``server``
  is the executor's own GMS: that is where the token is meant to go, and the injected
  default sink is exactly that. Only then does the token reach the child.
- ``extra_env_vars`` must be valid POSIX names without NUL characters, and may not set
  what the executor sets or inherits: the reserved names above, ``PATH``, ``TMPDIR``,
  ``VIRTUAL_ENV``, ``LD_*``, ``PYTHON*`` and ``DATAHUB_*`` except the tuning variables
  in ``ALLOWED_DATAHUB_VARIABLES``. The executor's own variables are applied last.

Everything here is pure: it reads no clock, no file and no environment.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote_executor.errors import RecipeError
from remote_executor.models import TaskKind
from remote_executor.recipe import SERVER_ENV, TOKEN_ENV, parse_recipe
from remote_executor.runner import RunSpec
from remote_executor.secrets.references import find_references, variable_name

LEGACY_NAMES = frozenset({"DATAHUB_ACCESS_TOKEN", "DATAHUB_BASE_URL"})
RESERVED_PREFIXES = ("AWS_", "EXECUTOR_")
# Names a request's extra_env_vars may not set, besides the reserved ones.
ENV_ONLY_NAMES = frozenset({"PATH", "TMPDIR", "VIRTUAL_ENV"})
ENV_ONLY_PREFIXES = ("LD_", "PYTHON", "DATAHUB_")
# DATAHUB_* variables of the CLI that tune a run and redirect nothing (no endpoint, no
# credential, no masking switch): extra_env_vars may set these.
ALLOWED_DATAHUB_VARIABLES = frozenset(
    {
        "DATAHUB_DEBUG",
        "DATAHUB_BIGQUERY_SCHEMA_PARALLELISM",
        "DATAHUB_SNOWFLAKE_SCHEMA_PARALLELISM",
        "DATAHUB_VERTEXAI_DISABLE_PARALLELISM",
        "DATAHUB_DATASET_URN_TO_LOWER",
        "DATAHUB_EMIT_MODE",
        "DATAHUB_POWERBI_M_QUERY_PARSE_TIMEOUT",
        "DATAHUB_TRACE_POWERBI_MQUERY_PARSER",
        "DATAHUB_PROGRESS_REPORT_MAX_FAILURES",
        "DATAHUB_PROGRESS_REPORT_MAX_INFOS",
        "DATAHUB_PROGRESS_REPORT_MAX_WARNINGS",
        "DATAHUB_REPORT_FAILURE_SAMPLE_SIZE",
        "DATAHUB_REPORT_INFO_SAMPLE_SIZE",
        "DATAHUB_REPORT_WARNING_SAMPLE_SIZE",
        "DATAHUB_REST_EMITTER_BATCH_MAX_PAYLOAD_BYTES",
        "DATAHUB_REST_EMITTER_BATCH_MAX_PAYLOAD_LENGTH",
        "DATAHUB_REST_EMITTER_DEFAULT_POOL_CONNECTIONS",
        "DATAHUB_REST_EMITTER_DEFAULT_POOL_MAXSIZE",
        "DATAHUB_REST_EMITTER_DEFAULT_RETRY_MAX_TIMES",
        "DATAHUB_REST_SINK_DEFAULT_MAX_THREADS",
        "DATAHUB_REST_SINK_DEFAULT_MODE",
        "DATAHUB_REST_SINK_DEFAULT_TCP_KEEPALIVE",
        "DATAHUB_SQL_AGG_QUERY_LOG",
        "DATAHUB_SQL_AGG_SKIP_JOINS",
        "DATAHUB_SQL_PARSE_CACHE_SIZE",
        "DATAHUB_KAFKA_SINK_INIT_PROBE_TIMEOUT",
        "DATAHUB_KAFKA_SINK_LINGER_MS",
        "DATAHUB_KAFKA_SINK_MAX_MESSAGE_BYTES",
        "DATAHUB_KAFKA_SINK_QUEUE_MAX_KBYTES",
        "DATAHUB_KAFKA_SINK_QUEUE_MAX_MESSAGES",
    }
)
_POSIX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ANY_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_-]+)(?::[-=+?][^}]*)?\}")
_ANY_BARE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Reserved:
    """The names a recipe may not read: the executor's own, and what its child inherits."""

    inherited: frozenset[str]
    gms_url: str | None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return (
            name in (TOKEN_ENV, SERVER_ENV)
            or name in LEGACY_NAMES
            or name in self.inherited
            or name.startswith(RESERVED_PREFIXES)
        )

    def sink_target(self) -> str:
        """Where the token may go, for the error message."""
        return self.gms_url or "the executor's GMS (none is configured)"


def check_extra_env(extra: Mapping[str, str], reserved: Reserved) -> None:
    """RecipeError naming the first variable of ``extra_env_vars`` that may not be set."""
    for name, value in extra.items():
        if not _POSIX_NAME.fullmatch(name):
            raise RecipeError(
                f"extra_env_vars name {name!r} is not a valid environment variable name "
                "(letters, digits and underscores, not starting with a digit)"
            )
        if "\0" in value:
            raise RecipeError(f"extra_env_vars value of {name} contains a NUL character")
        owned = name in reserved or name in ENV_ONLY_NAMES or name.startswith(ENV_ONLY_PREFIXES)
        if owned and name not in ALLOWED_DATAHUB_VARIABLES:
            raise RecipeError(
                f"extra_env_vars may not set {name}: the executor sets or inherits it "
                "(see docs/configuration.md for the DATAHUB_ variables a request may set)"
            )


def _referenced(text: str) -> list[str]:
    """Every name ``text`` references, once per occurrence, braced or bare."""
    return [m.group(1) for m in _ANY_REFERENCE.finditer(text)] + [
        m.group(1) for m in _ANY_BARE.finditer(text)
    ]


def _sink_takes_token(recipe: dict[str, Any], reserved: Reserved) -> bool:
    sink = recipe.get("sink")
    if not isinstance(sink, dict) or sink.get("type") != "datahub-rest":
        return False
    config = sink.get("config")
    if not isinstance(config, dict) or config.get("token") != f"${{{TOKEN_ENV}}}":
        return False
    server = config.get("server")
    if server == f"${{{SERVER_ENV}}}":
        return reserved.gms_url is not None
    return (
        isinstance(server, str)
        and reserved.gms_url is not None
        and server.rstrip("/") == reserved.gms_url.rstrip("/")
    )


def check_recipe(prepared_text: str, original_text: str, reserved: Reserved) -> bool:
    """RecipeError if the recipe the child runs reads a reserved name; True when the child
    needs the GMS token (the one allowed use: the token of a datahub-rest sink to our GMS).

    ``prepared_text`` is the recipe after ``prepare_recipe`` (default sink added, datahub
    reporters removed); names it renamed for the CLI are recognised from ``original_text``.
    """
    required, optional = find_references(original_text)
    renamed = {variable_name(n) for n in required | optional} - required - optional
    allowed_token = allowed_server = 0
    recipe = parse_recipe(prepared_text)
    if _sink_takes_token(recipe, reserved):
        allowed_token = 1
        allowed_server = 1 if recipe["sink"]["config"]["server"] == f"${{{SERVER_ENV}}}" else 0
    counts: dict[str, int] = {}
    for name in _referenced(prepared_text):
        if name in reserved and name not in renamed:
            counts[name] = counts.get(name, 0) + 1
    for name, count in counts.items():
        allowed = {TOKEN_ENV: allowed_token, SERVER_ENV: allowed_server}.get(name, 0)
        if count > allowed:
            raise RecipeError(_credential_message(name, reserved))
    return allowed_token == 1 and counts.get(TOKEN_ENV, 0) == 1


def _credential_message(name: str, reserved: Reserved) -> str:
    if name in (TOKEN_ENV, "DATAHUB_ACCESS_TOKEN"):
        return (
            f"${{{name}}} names a credential of the executor; recipes may use it only as "
            f"the token of a datahub-rest sink to {reserved.sink_target()}"
        )
    return (
        f"${{{name}}} names a variable of the executor's own environment; recipes may not "
        "read it (store the value as a secret and reference that name instead)"
    )


@dataclass(frozen=True)
class Invocation:
    """What one run of the CLI is made of, before it becomes a RunSpec."""

    datahub_command: tuple[str, ...]
    task: TaskKind
    debug_mode: bool
    config_argument: str
    report_path: Path


def argv(invocation: Invocation) -> list[str]:
    """``datahub [--debug] ingest run -c <config> --report-to <file> [--test-source-...]``."""
    words = list(invocation.datahub_command)
    if invocation.debug_mode:
        words.append("--debug")
    # --report-to <file> alone keeps the CLI's default datahub reporter off; adding
    # --no-default-report would also drop the file report (CLI 1.x sets report_to=None).
    words += ["ingest", "run", "-c", invocation.config_argument]
    words += ["--report-to", str(invocation.report_path)]
    if invocation.task is TaskKind.TEST_CONNECTION:
        words.append("--test-source-connection")
    return words


def environment(
    inherited: Mapping[str, str],
    extra_env_vars: Mapping[str, str],
    own: Mapping[str, str],
    handed: Mapping[str, str],
) -> dict[str, str]:
    """Inherited, then the request's variables, then the executor's, then the handed values.

    ``check_extra_env`` has already refused any request variable that would collide.
    """
    return {**inherited, **extra_env_vars, **own, **handed}


def own_variables(
    tmp_dir: Path, gms_url: str | None, venv_bin: Path | None = None, path: str = ""
) -> dict[str, str]:
    """The variables the executor sets in every child; a CLI from an environment gets it
    activated (``VIRTUAL_ENV``, its ``bin`` first on ``PATH``, the inherited ``path`` after)."""
    own = {
        "TMPDIR": str(tmp_dir),
        "PYTHONUNBUFFERED": "1",
        "DATAHUB_ENABLE_SECRET_MASKING": "true",
    }
    if gms_url:
        own[SERVER_ENV] = gms_url
    if venv_bin is not None:
        own["VIRTUAL_ENV"] = str(venv_bin.parent)
        own["PATH"] = f"{venv_bin}:{path}" if path else str(venv_bin)
    return own


def handed_values(values: Mapping[str, str], token: str | None) -> dict[str, str]:
    """What the child is handed: the resolved values (keyed by the variable the recipe
    reads), and the token only where the sink's ``${DATAHUB_GMS_TOKEN}`` may take it."""
    handed = dict(values)
    if token:
        handed[TOKEN_ENV] = token
    return handed


def provided_names(extra_env_vars: Collection[str], needs_token: bool) -> set[str]:
    """Names the recipe references that need no secret source: the request's own variables,
    the GMS URL, and the token where the sink may take it."""
    return {*extra_env_vars, SERVER_ENV, *([TOKEN_ENV] if needs_token else [])}


def run_spec(
    invocation: Invocation,
    env: dict[str, str],
    *,
    cwd: Path,
    log_path: Path,
    stdin: bytes | None,
    memory_limit_mb: int | None,
    identity: str,
    log_max_bytes: int | None,
) -> RunSpec:
    """The RunSpec of one run."""
    return RunSpec(
        argv(invocation),
        env,
        cwd,
        log_path,
        stdin=stdin,
        memory_limit_mb=memory_limit_mb,
        identity=identity,
        log_max_bytes=log_max_bytes,
    )
