"""A datahub source that does everything a careless connector does with its password:
prints it in every encoding, on stdout and stderr, split across writes and across a
64 KiB line, logs it, prints the traceback of an exception holding it and puts it in
its report, twice. Its writes go straight
to the file descriptors, past the CLI's own masking, so what is masked is masked by the
executor. Run by the real ``datahub`` CLI as ``tests.integration.canary_source:CanarySource``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from datahub.configuration.common import ConfigModel
from datahub.ingestion.api.common import PipelineContext
from datahub.ingestion.api.source import Source, SourceReport
from datahub.ingestion.api.workunit import MetadataWorkUnit

log = logging.getLogger(__name__)
LONG_LINE_BYTES = 64 * 1024  # where the executor reads a line in two pieces


class CanaryConfig(ConfigModel):
    """The password, and the user it goes with."""

    password: str
    user: str = "reader"


@dataclass
class CanaryReport(SourceReport):
    """A report that carries the password, as careless connectors' reports do."""

    connected_with: str = ""


def _out(fd: int, text: str) -> None:
    os.write(fd, text.encode("utf-8"))


class CanarySource(Source):
    """Leaks ``password`` every way it can, then fails."""

    def __init__(self, config: CanaryConfig, ctx: PipelineContext) -> None:
        super().__init__(ctx)
        self.config = config
        self.report = CanaryReport()

    @classmethod
    def create(cls, config_dict: dict, ctx: PipelineContext) -> CanarySource:
        return cls(CanaryConfig.model_validate(config_dict), ctx)

    def get_workunits_internal(self) -> Iterable[MetadataWorkUnit]:
        secret = self.config.password
        basic = base64.b64encode(f"{self.config.user}:{secret}".encode()).decode()
        lines = {
            "plain": secret,
            "json": json.dumps({"password": secret}),
            "json-unicode": json.dumps({"password": secret}, ensure_ascii=False),
            "url": f"postgresql://{self.config.user}:{quote(secret, safe='')}@db:5432/x",
            "form": f"user={self.config.user}&password={quote_plus(secret)}",
            "base64": base64.b64encode(secret.encode()).decode(),
            "base64url": base64.urlsafe_b64encode(secret.encode()).decode(),
            "basic-auth": f"Authorization: Basic {basic}",
            "repr": repr({"password": secret}),
        }
        for name, text in lines.items():
            _out(1, f"canary {name}: {text}\n")
        _out(2, f"canary stderr: {secret}\n")
        half = len(secret) // 2
        _out(1, f"canary split: {secret[:half]}")
        time.sleep(0.3)  # the executor reads the first half on its own
        _out(1, f"{secret[half:]}\n")
        _out(1, "x" * (LONG_LINE_BYTES - 7) + secret + " canary long line end\n")
        log.warning("canary logged: connecting as %s with %s", self.config.user, secret)
        self.report.connected_with = secret
        try:
            raise ValueError(f"canary: cannot connect as {self.config.user!r} with {secret!r}")
        except ValueError as exc:
            _out(2, traceback.format_exc())
            self.report.failure("canary connection failed", context=secret, exc=exc)
        return []

    def get_report(self) -> SourceReport:
        return self.report
