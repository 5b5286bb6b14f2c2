"""``executor sandbox`` and ``executor demo``: the whole path on one laptop, no AWS needed."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from remote_executor.messages import build_message
from remote_executor.models import TERMINAL_STATUSES, request_urn
from remote_executor.queue.sqs import SqsQueue
from remote_executor.sandbox import Sandbox, gms_ui

DEMO_SECRET_NAME = "demo/sqlite-uri"


def serve_sandbox(
    aws_port: int, gms_port: int, token: str | None, gms_latency_seconds: float = 0.0
) -> None:
    """Run the sandbox in the foreground until Ctrl-C or SIGTERM."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with Sandbox(
        token=token, aws_port=aws_port, gms_port=gms_port, gms_latency_seconds=gms_latency_seconds
    ) as box:
        print(
            "Sandbox running: SQS + Secrets Manager at",
            box.aws.endpoint_url,
            "and a GMS stand-in at",
            box.gms.url,
        )
        print("In another shell:\n")
        for name, value in box.env().items():
            print(f"export {name}={value}")
        if box.gms.url.endswith(":8080/gms"):
            # The worker's /healthz would take 8080 too, as DataHub's GMS does.
            print("export EXECUTOR_HEALTH_PORT=8081")
        print("executor run --worker-id remote")
        print("executor submit examples/recipes/demo-sqlite.yml --env DEMO_DB=$PWD/demo.db\n")
        print("Ctrl-C stops the sandbox.", flush=True)
        done.wait()


def create_demo_database(path: Path) -> None:
    """A small SQLite database for the demo recipes (no foreign keys: DataHub's
    SQLite path rejects unnamed ones)."""
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);
            CREATE VIEW large_orders AS SELECT * FROM orders WHERE total > 100;
            INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com');
            INSERT INTO orders VALUES (1, 1, 250.0);
            """
        )


def _start_worker(box: Sandbox, work_dir: Path, secret_arn: str) -> subprocess.Popen[bytes]:
    return box.start_worker(
        work_dir / "tasks",
        work_dir / "worker.log",
        EXECUTOR_SECRETS=f"DEMO_DB_URI={secret_arn}",
        EXECUTOR_REPORT_INTERVAL_SECONDS="2",
        EXECUTOR_LOG_FORMAT="console",
    )


def _submit(box: Sandbox, recipes: Path, db_path: Path) -> dict[str, str]:
    queue = SqsQueue(box.queue_url, box.aws.client("sqs"))
    submitted = {}
    for name, extra_env in (
        ("demo-sqlite.yml", {"DEMO_DB": str(db_path)}),
        ("demo-sqlite-secret.yml", {}),
    ):
        request_id = f"demo-{uuid.uuid4().hex[:8]}"
        recipe = (recipes / name).read_text(encoding="utf-8")
        body = build_message(request_id, recipe, "remote", extra_env_vars=extra_env)
        queue.send(box.gms.write_request(body))
        submitted[name] = request_urn(request_id)
        print(f"submitted {name} as {submitted[name]}")
    return submitted


def _start_bridge(box: Sandbox, work_dir: Path) -> subprocess.Popen[bytes]:
    """``executor bridge`` for executor id remote, ready: its first poll of GMS is done."""
    polls = box.gms.event_polls
    bridge = box.start_bridge(
        work_dir / "bridge.log", {"remote": box.queue_url}, EXECUTOR_LOG_FORMAT="console"
    )
    deadline = time.monotonic() + 60
    while box.gms.event_polls < polls + 2:
        if bridge.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"executor bridge did not start: see {work_dir / 'bridge.log'}")
        time.sleep(0.05)
    return bridge


def _ui_execute(box: Sandbox, recipes: Path, db_path: Path) -> tuple[str, str]:
    """What clicking Execute on a source in the DataHub UI writes to GMS: (source, request)."""
    recipe = yaml.safe_load((recipes / "demo-sqlite.yml").read_text(encoding="utf-8"))
    env = {"extra_env_vars": json.dumps({"DEMO_DB": str(db_path)})}
    source = gms_ui.create_source(box.gms, "demo-ui", recipe, name="Demo", extra_args=env)
    urn = gms_ui.execute(box.gms, source)
    print(f"UI Execute on {source}: {urn}, queued by executor bridge")
    return source, urn


def _print_runs(box: Sandbox, source: str) -> None:
    """`executor runs --source`: the source's runs, as the UI lists them."""
    print(f"\n$ executor runs --source {source}")
    runs = subprocess.run(
        [sys.executable, "-m", "remote_executor", "runs", "--source", source],
        env={**os.environ, **box.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(runs.stdout.rstrip() or runs.stderr.rstrip())


def _wait(box: Sandbox, urn: str, worker: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        result = box.gms.wait_for_status(urn, TERMINAL_STATUSES, timeout_seconds=1)
        if result is not None or worker.poll() is not None:
            return result
    return None


def _print_outcomes(
    box: Sandbox, submitted: dict[str, str], work_dir: Path, worker: subprocess.Popen[bytes]
) -> bool:
    all_ok = True
    print()
    for name, urn in submitted.items():
        result = _wait(box, urn, worker)
        status = result["status"] if result else "NO RESULT (see the worker log)"
        all_ok = all_ok and status == "SUCCESS"
        report_file = work_dir / f"{urn.rsplit(':', 1)[1]}.report.txt"
        report_file.write_text(result.get("report", "") if result else "", encoding="utf-8")
        print(f"{name:<26} {status:<8} report: {report_file}")
    datasets = box.gms.urns("dataset")
    print(f"\n{len(datasets)} datasets reached the GMS stand-in, e.g. {sorted(datasets)[:1]}")
    print(f"worker log: {work_dir / 'worker.log'}")
    return all_ok


def run_demo(work_dir: Path, recipes: Path = Path("examples/recipes")) -> int:
    """The README's first command: 0 when the two submitted recipes and the "UI Execute"
    the bridge queues all end SUCCESS."""
    if not (recipes / "demo-sqlite.yml").exists():
        print(f"cannot find {recipes}/demo-sqlite.yml: run the demo from the repository root")
        return 2
    work_dir.mkdir(parents=True, exist_ok=True)
    db_path = work_dir / "demo.db"
    create_demo_database(db_path)
    with Sandbox(token=f"demo-{secrets.token_hex(8)}") as box:
        arn = box.aws.put_secret(DEMO_SECRET_NAME, f"sqlite:///{db_path}")
        worker = _start_worker(box, work_dir, arn)
        bridge = _start_bridge(box, work_dir)
        try:
            submitted = _submit(box, recipes, db_path)
            source, urn = _ui_execute(box, recipes, db_path)
            submitted["UI Execute (bridge)"] = urn
            ok = _print_outcomes(box, submitted, work_dir, worker)
            _print_runs(box, source)
        finally:
            for process in (bridge, worker):
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
    print("\nDemo", "succeeded" if ok else "FAILED: read the reports and the worker log above")
    return 0 if ok else 1
