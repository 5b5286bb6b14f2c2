"""Task: recipe to result, with the fake datahub CLI in a real subprocess."""

from __future__ import annotations

import json
import re
import resource
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from remote_executor.models import ExecutionRequest, Status, TaskKind, TaskResult
from remote_executor.secrets import MASK, MemorySecretResolver, Redactor, SecretSources
from remote_executor.task import StopKind, Task, TaskContext
from remote_executor.venvs import Environments
from tests.unit.conftest import FAKE_COMMAND

MakeRequest = Callable[..., ExecutionRequest]
MakeContext = Callable[..., TaskContext]
# Characters that JSON escapes, so the report holds the secret in another form than the log.
SECRET = 'hunter2-"db"-pässwörd'


def run_task(request: ExecutionRequest, ctx: TaskContext) -> tuple[Task, TaskResult]:
    task = Task(request, ctx)
    return task, task.run()


def all_bytes_under(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


def ran(markers: Path) -> list[dict[str, Any]]:
    """What the fake CLI recorded about each of its runs."""
    return [json.loads(path.read_text()) for path in sorted(markers.glob("*.json"))]


def test_success_with_structured_report(
    make_request: MakeRequest, make_context: MakeContext, markers: Path
) -> None:
    request = make_request({"marker_dir": str(markers), "lines": 3, "write_report": True})

    task, result = run_task(request, make_context())

    assert result.status is Status.SUCCESS
    assert result.task is TaskKind.RUN_INGEST
    assert result.structured_report is not None
    assert json.loads(result.structured_report)["source"]["report"] == {"events_produced": 3}
    lines = result.report.splitlines()
    assert lines[0] == "~~~~ RUN_INGEST on remote-executor 0.1.0, worker test-worker ~~~~"
    assert re.fullmatch(r"Succeeded: datahub exited with code 0 after \d+\.\d s\.", lines[1])
    assert f"Full log on the worker: {task.log_path}" in lines
    assert "line 0002 of the fake ingestion output" in result.report
    assert result.duration_ms is not None
    assert result.start_time_ms > 0
    assert task.report_path.exists()
    assert len(ran(markers)) == 1


def test_success_without_a_report_file_says_so(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    _, result = run_task(make_request({}), make_context())

    assert result.status is Status.SUCCESS
    assert result.structured_report is None
    assert "The CLI wrote no structured report." in result.report.splitlines()


def test_report_that_is_not_json_is_left_out(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    _, result = run_task(make_request({"raw_report": "{not json"}), make_context())

    assert result.structured_report is None
    assert "The CLI wrote no structured report." in result.report


def test_non_zero_exit_is_a_failure_with_the_code(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    _, result = run_task(make_request({"exit_code": 3}), make_context())

    assert result.status is Status.FAILURE
    assert re.search(r"^Failed: datahub exited with code 3 after \d+\.\d s\.$", result.report, re.M)


def test_missing_secret_fails_before_the_subprocess(
    make_request: MakeRequest,
    make_context: MakeContext,
    markers: Path,
    recipe_yaml: Callable[..., str],
) -> None:
    recipe = recipe_yaml({"marker_dir": str(markers), "password": "${DB_PASSWORD}"})
    ctx = make_context(secrets=SecretSources([MemorySecretResolver({"OTHER": "other-value"})]))

    task, result = run_task(make_request(recipe=recipe), ctx)

    assert result.status is Status.FAILURE
    assert (
        "Failed: Secret not resolved: secret ${DB_PASSWORD} referenced by the recipe was found "
        "in no source (memory: not among values for OTHER). The subprocess was not started."
    ) in result.report.splitlines()
    assert ran(markers) == []
    assert not (task.dir / "recipe.yml").exists()


def test_bad_recipe_fails_with_what_is_wrong(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    request = make_request(recipe="source:\n  type: fake\n   config: {}\n")

    _, result = run_task(request, make_context())

    assert result.status is Status.FAILURE
    assert (
        "Failed: Recipe error: recipe is not valid YAML or JSON at line 3, column 10: mapping "
        "values are not allowed here"
    ) in result.report.splitlines()


def test_secret_reaches_the_child_but_no_output(
    make_request: MakeRequest, make_context: MakeContext, recipe_yaml: Callable[..., str]
) -> None:
    recipe = recipe_yaml(
        {
            "password": "${DB_PASSWORD}",
            "print_env": ["DB_PASSWORD"],
            "print_env_reversed": ["DB_PASSWORD"],
            "write_report": True,
            "report_env": ["DB_PASSWORD"],
        }
    )
    redactor = Redactor()
    ctx = make_context(
        secrets=SecretSources([MemorySecretResolver({"DB_PASSWORD": SECRET})]), redactor=redactor
    )

    task, result = run_task(make_request(recipe=recipe), ctx)

    assert result.status is Status.SUCCESS
    assert f"DB_PASSWORD reversed={SECRET[::-1]}" in result.report  # the child had the value
    assert f"DB_PASSWORD={MASK}" in result.report
    assert result.structured_report is not None
    assert json.loads(result.structured_report)["env"] == {"DB_PASSWORD": MASK}
    escaped = json.dumps(SECRET)[1:-1]
    for text in (result.report, result.structured_report, task.log_path.read_text()):
        assert SECRET not in text
        assert escaped not in text
    everything = all_bytes_under(task.dir)
    assert SECRET.encode() not in everything
    assert escaped.encode() not in everything
    assert "${DB_PASSWORD}" in (task.dir / "recipe.yml").read_text()
    assert redactor.redact(SECRET) == MASK  # registered for the worker's logs too


def test_optional_reference_without_a_value_is_fine(
    make_request: MakeRequest, make_context: MakeContext, recipe_yaml: Callable[..., str]
) -> None:
    recipe = recipe_yaml(
        {
            "user": "${DB_USER:-datahub}",
            "schema": "${SCHEMA:-public}",
            "print_env": ["DB_USER"],
            "print_env_reversed": ["SCHEMA"],
        }
    )
    ctx = make_context(secrets=SecretSources([MemorySecretResolver({"SCHEMA": "analytics"})]))

    _, result = run_task(make_request(recipe=recipe), ctx)

    assert result.status is Status.SUCCESS
    assert "DB_USER=None" in result.report  # the CLI falls back to the default
    assert "SCHEMA reversed=scitylana" in result.report


def test_names_the_environment_provides_are_not_looked_up(
    make_request: MakeRequest, make_context: MakeContext, recipe_yaml: Callable[..., str]
) -> None:
    recipe = recipe_yaml({"region": "${REGION}"})
    memory = MemorySecretResolver({})

    _, result = run_task(
        make_request(recipe=recipe, extra_env_vars={"REGION": "eu-west-1"}),
        make_context(secrets=SecretSources([memory])),
    )

    assert result.status is Status.SUCCESS
    assert memory.calls == []


def test_a_variable_the_child_inherits_is_not_the_recipes_to_read(
    make_request: MakeRequest, make_context: MakeContext, recipe_yaml: Callable[..., str]
) -> None:
    memory = MemorySecretResolver({"PATH": "/from/a/secret"})

    _, result = run_task(
        make_request(recipe=recipe_yaml({"home": "${PATH}"})),
        make_context(secrets=SecretSources([memory])),
    )

    assert result.status is Status.FAILURE
    assert result.report.splitlines()[1] == (
        "Failed: Recipe error: ${PATH} names a variable of the executor's own environment; "
        "recipes may not read it (store the value as a secret and reference that name instead)"
    )
    assert memory.calls == []


def test_test_connection_adds_the_flag(
    make_request: MakeRequest, make_context: MakeContext, markers: Path
) -> None:
    request = make_request(
        {"marker_dir": str(markers), "write_report": True}, task=TaskKind.TEST_CONNECTION
    )

    task, result = run_task(request, make_context())

    [run] = ran(markers)
    assert run["argv"] == [
        "ingest", "run", "-c", str(task.dir / "recipe.yml"), "--report-to", str(task.report_path),
        "--test-source-connection",
    ]  # fmt: skip
    assert result.task is TaskKind.TEST_CONNECTION
    assert result.report.startswith("~~~~ TEST_CONNECTION on remote-executor")
    assert result.to_aspect()["structuredReport"]["type"] == "TEST_CONNECTION"


def test_run_ingest_argv_and_debug_flag(
    make_request: MakeRequest, make_context: MakeContext, markers: Path
) -> None:
    plain = make_request({"marker_dir": str(markers)}, request_id="plain")
    debug = make_request({"marker_dir": str(markers)}, request_id="debug", debug_mode=True)

    plain_task, _ = run_task(plain, make_context())
    run_task(debug, make_context())

    by_id = {Path(run["cwd"]).name: run["argv"] for run in ran(markers)}
    assert by_id["plain.1"] == [
        "ingest", "run", "-c", str(plain_task.dir / "recipe.yml"), "--report-to",
        str(plain_task.report_path),
    ]  # fmt: skip
    assert by_id["debug.1"][0] == "--debug"
    assert "--test-source-connection" not in by_id["debug.1"]
    assert Path(next(iter(ran(markers)))["cwd"]).parent == plain_task.dir.parent


def test_extra_env_vars_reach_the_child(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    request = make_request(
        {"print_env": ["MY_VAR", "TMPDIR", "DATAHUB_ENABLE_SECRET_MASKING"]},
        extra_env_vars={"MY_VAR": "hello"},
    )

    task, result = run_task(request, make_context())

    assert "MY_VAR=hello" in result.report
    assert f"TMPDIR={task.dir / 'tmp'}" in result.report
    assert "DATAHUB_ENABLE_SECRET_MASKING=true" in result.report


def test_cli_not_found_says_how_to_fix_it(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    ctx = make_context(datahub_command=("/nonexistent/datahub",))

    _, result = run_task(make_request({}), ctx)

    assert result.status is Status.FAILURE
    assert (
        "Failed: cannot start /nonexistent/datahub: No such file or directory. Install "
        "acryl-datahub in the worker's environment or set EXECUTOR_DATAHUB_COMMAND."
    ) in result.report.splitlines()


def test_file_sink_when_no_gms(make_request: MakeRequest, make_context: MakeContext) -> None:
    task, result = run_task(make_request({}), make_context(file_sink_when_no_gms=True))

    recipe = yaml.safe_load((task.dir / "recipe.yml").read_text())
    assert recipe["sink"] == {"type": "file", "config": {"filename": str(task.metadata_path)}}
    assert f"The recipe has no sink: added a file sink to {task.metadata_path}." in result.report
    assert task.metadata_path.read_text() == "[]"


def test_no_sink_added_without_gms_or_file_sink(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    task, _ = run_task(make_request({}), make_context())

    assert "sink" not in yaml.safe_load((task.dir / "recipe.yml").read_text())


def test_gms_sink_gets_the_token_by_reference(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    token = "gms-token-value-123"
    request = make_request(
        {"print_env": ["DATAHUB_GMS_URL"], "print_env_reversed": ["DATAHUB_GMS_TOKEN"]}
    )
    ctx = make_context(gms_url="http://gms.example:8080/gms", token=token)

    task, result = run_task(request, ctx)

    recipe = yaml.safe_load((task.dir / "recipe.yml").read_text())
    assert recipe["sink"] == {
        "type": "datahub-rest",
        "config": {"server": "http://gms.example:8080/gms", "token": "${DATAHUB_GMS_TOKEN}"},
    }
    assert "DATAHUB_GMS_URL=http://gms.example:8080/gms" in result.report
    assert f"DATAHUB_GMS_TOKEN reversed={token[::-1]}" in result.report
    assert token.encode() not in all_bytes_under(task.dir)


def test_run_id_and_pipeline_name_reach_the_recipe(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    request = make_request(
        {}, request_id="abc-123", ingestion_source="urn:li:dataHubIngestionSource:pg"
    )

    task, result = run_task(request, make_context())

    recipe = yaml.safe_load((task.dir / "recipe.yml").read_text())
    assert (recipe["run_id"], recipe["pipeline_name"]) == (
        "abc-123",
        "urn:li:dataHubIngestionSource:pg",
    )
    assert "fake datahub 9.9.9: run_id=abc-123" in result.report


@pytest.mark.parametrize(
    ("asks", "reason"),
    [
        (
            {"cli_version": "0.14.1"},
            "CLI version 0.14.1 is not installed on this worker, and EXECUTOR_ALLOW_INSTALL=false "
            "refuses installs: set EXECUTOR_ALLOW_INSTALL=true to let this worker install it, or "
            "build it ahead (EXECUTOR_PREWARM on this worker, or BUNDLED_VENVS when building the "
            "image)",
        ),
        (
            {"cli_version": "next-week"},
            "CLI version 'next-week' (args.version) is not a version: use a release of "
            "acryl-datahub such as 1.2.0.5, or native, latest or bundled",
        ),
        (
            {"extra_pip_requirements": ["--index-url=http://evil/ x"]},
            "extra_pip_requirements entry '--index-url=http://evil/ x' is not a requirement "
            "(such as 'pandas==2.2.3' or 'pkg @ https://host/pkg.whl'): Expected package name "
            "at the start of dependency specifier",
        ),
        (
            {"extra_pip_requirements": ["pkg @ https://${HOST}/pkg.whl"]},
            "extra_pip_requirements entry 'pkg @ https://${HOST}/pkg.whl' references ${HOST}, "
            "which the request's extra_env_vars do not set (only they are expanded here)",
        ),
    ],
)
def test_an_environment_that_cannot_be_had_fails_before_the_cli_starts(
    make_request: MakeRequest,
    make_context: MakeContext,
    markers: Path,
    asks: dict[str, Any],
    reason: str,
) -> None:
    request = make_request({"marker_dir": str(markers)}, **asks)

    _, result = run_task(request, make_context())

    assert result.status is Status.FAILURE
    assert f"Failed: CLI environment: {reason}" in result.report.splitlines()[1]
    assert ran(markers) == []


def test_bundled_without_the_image_s_environment_names_what_is_there(
    make_request: MakeRequest, make_context: MakeContext, tmp_path: Path
) -> None:
    bundled = tmp_path / "bundled"
    (bundled / "mysql-bundled" / "bin").mkdir(parents=True)
    (bundled / "mysql-bundled" / "bin" / "datahub").touch()
    ctx = make_context()
    config = replace(ctx.environments.config, bundled_dir=bundled)
    environments = Environments(config, ctx.environments.installer, FAKE_COMMAND, None)

    _, result = run_task(
        make_request({}, cli_version="bundled"), make_context(environments=environments)
    )

    assert result.status is Status.FAILURE
    assert (
        f"Failed: CLI environment: CLI version 'bundled' asks for {bundled}/fake-bundled, which "
        "this image does not have (bundled here: mysql-bundled)"
    ) in result.report


def test_redelivered_request_starts_with_a_clean_directory(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    ctx = make_context()
    first, _ = run_task(make_request({"lines": 2, "write_report": True}), ctx)
    (first.dir / "leftover.txt").write_text("old")

    second, _ = run_task(make_request({}), ctx)

    assert second.dir == first.dir
    assert not (second.dir / "leftover.txt").exists()
    assert not second.report_path.exists()
    assert "line 0001" not in second.log_path.read_text()


def test_request_id_cannot_escape_the_work_dir(
    make_request: MakeRequest, make_context: MakeContext, tmp_path: Path
) -> None:
    task = Task(make_request({}, request_id="../../etc/x y"), make_context())

    assert task.dir.parent == tmp_path / "work"
    assert task.dir.name == ".._.._etc_x_y.1"


def test_report_is_trimmed_to_the_limit(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    request = make_request({"lines": 400, "write_report": True})

    _, result = run_task(request, make_context(report_max_chars=10_000))

    assert result.status is Status.SUCCESS
    assert len(result.report) + len(result.structured_report or "") <= 10_000
    assert "The log was trimmed to its last" in result.report
    assert result.report.endswith("line 0399 of the fake ingestion output\n")


def test_cancel_before_start_never_starts(
    make_request: MakeRequest, make_context: MakeContext, markers: Path
) -> None:
    task = Task(make_request({"marker_dir": str(markers)}), make_context())
    task.stop(StopKind.CANCELLED, "KILL signal from urn:li:corpuser:ann")

    result = task.run()

    assert result.status is Status.CANCELLED
    assert "Not started: KILL signal from urn:li:corpuser:ann." in result.report.splitlines()
    assert ran(markers) == []
    assert task.stopped == (StopKind.CANCELLED, "KILL signal from urn:li:corpuser:ann")


def _run_in_thread(task: Task) -> tuple[threading.Thread, list[TaskResult]]:
    results: list[TaskResult] = []
    thread = threading.Thread(target=lambda: results.append(task.run()))
    thread.start()
    return thread, results


@pytest.mark.parametrize(
    "case",
    [
        (StopKind.CANCELLED, Status.CANCELLED, "Cancelled"),
        (StopKind.LEASE_LOST, Status.FAILURE, "Stopped"),
        (StopKind.SHUTDOWN, Status.FAILURE, "Stopped"),
    ],
)
def test_stop_while_running_ends_the_child_with_its_status(
    make_request: MakeRequest,
    make_context: MakeContext,
    markers: Path,
    wait_for: Callable[..., bool],
    case: tuple[StopKind, Status, str],
) -> None:
    kind, status, title = case
    task = Task(make_request({"marker_dir": str(markers), "sleep_seconds": 300}), make_context())
    thread, results = _run_in_thread(task)
    assert wait_for(lambda: ran(markers))

    task.stop(kind, "told to by the test")
    task.stop(StopKind.TIMEOUT, "a later reason loses")
    thread.join(timeout=30)

    [result] = results
    assert result.status is status
    assert re.search(
        rf"^{title}: datahub stopped \(told to by the test\): killed by signal SIGTERM \(15\) "
        r"after \d+\.\d s\.$",
        result.report,
        re.M,
    )


def test_timeout_from_the_request_ends_a_hung_child_as_timeout(
    make_request: MakeRequest, make_context: MakeContext, markers: Path
) -> None:
    request = make_request({"marker_dir": str(markers), "sleep_seconds": 300}, timeout_seconds=1)
    task = Task(request, make_context(timeout_seconds=3600))

    result = task.run()

    assert result.status is Status.TIMEOUT
    assert re.search(
        r"^Timed out: datahub stopped \(limit 1 s, set by args.timeout_seconds of the "
        r"request\): killed by signal SIGTERM \(15\) after \d+\.\d s\.$",
        result.report,
        re.M,
    )


def test_timeout_of_the_executor_applies_without_one_in_the_request(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    task = Task(make_request({"sleep_seconds": 300}), make_context(timeout_seconds=0.5))

    result = task.run()

    assert result.status is Status.TIMEOUT
    assert "limit 0.5 s, set by EXECUTOR_TASK_TIMEOUT_SECONDS" in result.report


def test_memory_limit_ends_a_hog_as_out_of_memory(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    task = Task(make_request({"hog_memory_mb": 2048}), make_context(memory_limit_mb=200))

    result = task.run()

    assert result.status is Status.FAILURE
    match = re.search(
        r"^Failed: datahub out of memory \(limit 200 MiB, peak (\d+) MiB\): exited with code 1 "
        r"after \d+\.\d s\.$",
        result.report,
        re.M,
    )
    assert match, result.report
    # RSS also counts the interpreter's code, which RLIMIT_DATA does not; and Linux keeps a
    # process's peak across exec, so the forked copy of this test process counts too.
    forked_copy_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 100 < int(match.group(1)) < max(300, forked_copy_mb + 20)
    assert "MemoryError" in result.report


def test_memory_within_the_limit_succeeds(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    task = Task(make_request({"hog_memory_mb": 64}), make_context(memory_limit_mb=400))

    assert task.run().status is Status.SUCCESS


def test_progress_is_running_with_the_log(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    task, _ = run_task(make_request({"lines": 2}), make_context())

    progress = task.progress()

    assert progress.status is Status.RUNNING
    assert progress.duration_ms is None
    assert "Running." in progress.report.splitlines()
    assert "line 0001 of the fake ingestion output" in progress.report


def test_a_request_timeout_past_the_visibility_cap_is_held_to_it(
    make_request: MakeRequest, make_context: MakeContext
) -> None:
    task, result = run_task(
        make_request({}, timeout_seconds=50_000),
        make_context(max_timeout_seconds=42_900.0),
    )

    assert task.timeout_seconds == 42_900.0
    assert (
        "args.timeout_seconds asked for 50000 s; limited to 42900 s, the longest SQS lets a "
        "task hold its message (12 h after receipt, less one lease)."
    ) in result.report.splitlines()
