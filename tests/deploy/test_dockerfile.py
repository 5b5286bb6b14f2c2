"""The Dockerfile: hadolint and checkov find nothing, and it runs the worker as it should
(tini -g as PID 1, non-root, SIGTERM, HEALTHCHECK with `executor health`). No Docker
engine here: it is checked, not built."""

from __future__ import annotations

import json
import shlex
import subprocess

from click.testing import CliRunner

from remote_executor.cli import main
from tests.deploy.conftest import REPO, checkov, tool

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    found = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def last(word: str) -> str:
    return [rest for name, rest in instructions() if name == word][-1]


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert json.loads(done.stdout) == [], done.stdout
    assert done.returncode == 0


def test_checkov_fails_no_check() -> None:
    verdict = checkov("dockerfile", "--file", str(DOCKERFILE))

    assert verdict["summary"]["passed"] > 50


def test_the_worker_runs_under_tini_as_a_user_with_a_healthcheck() -> None:
    assert json.loads(last("ENTRYPOINT")) == ["tini", "-g", "--", "executor"]
    assert json.loads(last("CMD")) == ["run"]
    assert last("STOPSIGNAL") == "SIGTERM"
    assert last("HEALTHCHECK").endswith('CMD ["executor", "health"]')
    user = last("USER")
    assert user.isdigit() and int(user) >= 1000  # numeric: Kubernetes' runAsNonRoot checks it
    assert json.loads(last("VOLUME")) == ["/tmp"]
    env = last("ENV")
    assert "EXECUTOR_WORK_DIR=/tmp/remote-executor" in env
    assert "HOME=/tmp/home" in env  # writable with a read-only root filesystem
    # `executor health` exists, and its help says it is for this.
    assert "HEALTHCHECK" in CliRunner().invoke(main, ["health", "--help"]).output


def test_build_args_choose_the_datahub_version_and_plugins() -> None:
    froms = [rest for name, rest in instructions() if name == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")  # multi-stage
    install = [rest for name, rest in instructions() if name == "RUN" and "pip install" in rest]
    assert install, "no pip install in the build stage"
    words = shlex.split(install[-1])
    assert "acryl-datahub[${DATAHUB_PLUGINS}]==${DATAHUB_VERSION}" in words
    args = {rest.split("=")[0] for name, rest in instructions() if name == "ARG"}
    assert {"DATAHUB_VERSION", "DATAHUB_PLUGINS"} <= args


def test_dockerignore_lets_in_what_the_build_copies() -> None:
    kept = {
        line.lstrip("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        word.rstrip("/")
        for name, rest in instructions()
        if name == "COPY" and "--from" not in rest
        for word in rest.split()[:-1]
    }

    assert copied <= kept
