"""``executor bridge`` as a real process, for the bridge's integration tests."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from remote_executor.sandbox import Sandbox


@dataclass
class BridgeProcess:
    """One bridge process and its JSON log; restartable with the same settings."""

    sandbox: Sandbox
    log_dir: Path
    queues: dict[str, str]
    settings: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        """The log of the latest start."""
        return self.log_dir / f"bridge-{self.starts}.log"

    def start(self) -> BridgeProcess:
        """Start, and wait until it is ready: its first poll of GMS's change log is done."""
        self.port = None
        self.starts += 1
        self.process = self.sandbox.start_bridge(self.log_path, self.queues, **self.settings)
        self.wait_ready()
        return self

    def wait_ready(self, timeout_seconds: float = 60) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the bridge exited {self.process.returncode}:\n{self.log}")
            self.port = self.port or self._logged_port()
            if self.port is not None and self._get("/readyz")[0] == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"the bridge never got ready:\n{self.log}")

    def metrics(self) -> str:
        status, body = self._get("/metrics")
        assert status == 200, body
        return body

    def metric(self, line_start: str) -> float:
        """The value of the first metric line starting with line_start (0 when absent)."""
        for line in self.metrics().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing flushed."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM, and its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)

    @property
    def log(self) -> str:
        """The logs of every start, in order."""
        paths = [self.log_dir / f"bridge-{n}.log" for n in range(1, self.starts + 1)]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def events(self, name: str, latest_only: bool = False) -> list[dict[str, object]]:
        """The JSON log lines whose event is name, of every start or of the latest."""
        found = []
        text = self.log_path.read_text(errors="replace") if latest_only else self.log
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == name:
                found.append(record)
        return found

    def _logged_port(self) -> int | None:
        ports = [int(str(e["port"])) for e in self.events("health endpoints", latest_only=True)]
        return ports[-1] if ports else None

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)
