"""A real PostgreSQL cluster, ingested with the postgres source and a password from
Secrets Manager. Needs the server binaries: Debian's `postgresql` package."""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.support import RECIPES

pytestmark = pytest.mark.integration


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4])
    )
    return candidates[-1] if candidates else None


INITDB, PG_CTL = _pg_bin("initdb"), _pg_bin("pg_ctl")
if not (INITDB and PG_CTL):
    pytest.skip(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with "
        "`apt-get install postgresql` (Debian) to run this test",
        allow_module_level=True,
    )


@dataclass(frozen=True)
class Cluster:
    """A running throwaway cluster."""

    port: int
    reader_password: str
    admin_password: str

    def set_reader_password(self, password: str) -> None:
        """Change datahub_reader's password, as a DBA rotating it would."""
        import psycopg2

        with psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.admin_password,
            dbname="shop",
        ) as conn:
            conn.cursor().execute(f"ALTER ROLE datahub_reader PASSWORD '{password}'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(args: list[str], owner: str | None) -> None:
    # initdb and postgres refuse to run as root: run them as an unprivileged user then.
    done = subprocess.run(
        args,
        user=owner,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"},
        check=False,
    )
    assert done.returncode == 0, f"{args[0]} failed: {done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    import psycopg2

    # Not under pytest's tmp_path: its 0700 parent would shut out the unprivileged owner.
    base = Path(tempfile.mkdtemp(prefix="remote-executor-pg-"))
    owner = "nobody" if os.geteuid() == 0 else None
    super_password, reader_password = secrets.token_hex(12), f"pw-{secrets.token_hex(12)}"
    (base / "pwfile").write_text(super_password)
    if owner:
        uid = pwd.getpwnam(owner).pw_uid
        for path in (base, base / "pwfile"):
            os.chown(path, uid, -1)
    port = _free_port()
    data = base / "data"
    _as_owner(
        [
            INITDB,
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "scram-sha-256",
            f"--pwfile={base / 'pwfile'}",
        ],
        owner,
    )
    _as_owner(
        [
            PG_CTL,
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
            "start",
        ],
        owner,
    )
    try:
        admin = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", password=super_password, dbname="postgres"
        )
        admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
        admin.cursor().execute("CREATE DATABASE shop")
        admin.close()
        with psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", password=super_password, dbname="shop"
        ) as conn:
            conn.cursor().execute(
                f"CREATE ROLE datahub_reader LOGIN PASSWORD '{reader_password}';"
                "CREATE SCHEMA sales;"
                "CREATE TABLE sales.orders (id serial PRIMARY KEY, total numeric);"
                "GRANT USAGE ON SCHEMA sales TO datahub_reader;"
                "GRANT SELECT ON ALL TABLES IN SCHEMA sales TO datahub_reader;"
            )
        yield Cluster(port, reader_password, super_password)
    finally:
        _as_owner([PG_CTL, "-D", str(data), "-m", "fast", "stop"], owner)
        shutil.rmtree(base, ignore_errors=True)


def _submit_postgres(running, port: int) -> str:
    recipe = (RECIPES / "postgres.yml").read_text()
    return running.submit(
        recipe, extra_env_vars={"PG_HOST_PORT": f"127.0.0.1:{port}", "PG_DATABASE": "shop"}
    )


def test_postgres_ingested_with_a_password_from_secrets_manager(start_worker, sandbox, cluster):
    arn = sandbox.aws.put_secret("it/pg-reader", cluster.reader_password)
    running = start_worker(secrets={"PG_PASSWORD": arn})

    urn = _submit_postgres(running, cluster.port)
    result = running.wait(urn)

    assert result["status"] == "SUCCESS", result["report"]
    assert (
        "urn:li:dataset:(urn:li:dataPlatform:postgres,shop.sales.orders,PROD)"
        in sandbox.gms.urns("dataset")
    )
    task_files = "".join(
        p.read_text("utf-8", "replace") for p in running.work_dir.rglob("*") if p.is_file()
    )
    places = {
        "GMS payloads": b"".join(sandbox.gms.raw_bodies).decode("utf-8", "replace"),
        "worker log": running.log.getvalue(),
        "task directory": task_files,
        "report": json.dumps(result),
    }
    for place, text in places.items():
        assert cluster.reader_password not in text, f"password found in {place}"


def test_postgres_wrong_password_fails_with_the_reason(start_worker, sandbox, cluster):
    wrong = f"wrong-{secrets.token_hex(8)}"
    arn = sandbox.aws.put_secret("it/pg-wrong", wrong)
    running = start_worker(secrets={"PG_PASSWORD": arn})

    result = running.wait(_submit_postgres(running, cluster.port))

    assert result["status"] == "FAILURE"
    assert 'password authentication failed for user "datahub_reader"' in str(result["report"])
    assert "Failed: datahub exited with code 1" in str(result["report"])
    assert wrong not in json.dumps(result) + running.log.getvalue()


def test_rotated_password_reaches_the_next_task_without_a_restart(start_worker, sandbox, cluster):
    # A rotation as Secrets Manager's rotation Lambda does it: the database gets the new
    # password and the secret a new version; the worker keeps running throughout.
    name = f"it/pg-rotating-{secrets.token_hex(4)}"
    arn = sandbox.aws.put_secret(name, cluster.reader_password)
    running = start_worker(secrets={"PG_PASSWORD": arn}, settings={"secret_cache_seconds": 1})
    first = running.wait(_submit_postgres(running, cluster.port))
    assert first["status"] == "SUCCESS", first["report"]

    rotated = f"pw-rotated-{secrets.token_hex(12)}"
    cluster.set_reader_password(rotated)
    try:
        sandbox.aws.put_secret(name, rotated)
        time.sleep(1.1)  # past the cache: the next task reads the secret again
        second = running.wait(_submit_postgres(running, cluster.port))
    finally:
        cluster.set_reader_password(cluster.reader_password)

    # Only the new password opens the database now: the second task used it.
    assert second["status"] == "SUCCESS", second["report"]
    assert running.thread.is_alive()
    resolved = [line for line in running.log.getvalue().splitlines() if "secrets.resolved" in line]
    assert len(resolved) == 2
    assert rotated not in json.dumps(second) + running.log.getvalue()
