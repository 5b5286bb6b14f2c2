"""The bridge as a datahub-actions action: ``type: remote-executor-bridge`` in a pipeline
of the actions container teams already run (its Kafka source, or ``datahub-cloud`` on the
Events API).

It forwards with the same rule as ``executor bridge`` (forward.Forwarder). datahub-actions
logs and skips an event whose action raised unless the pipeline says otherwise (default
failure_mode CONTINUE, retry_count 0), so the action retries a failed send itself, with
backoff, for ``send_retry_seconds``, before it raises; docs/deploy-bridge.md shows the
pipeline, with failure_mode THROW so that a queue down for longer stops the pipeline
instead of losing a request.
"""

from __future__ import annotations

import os
import time
from typing import Any

import structlog
from datahub_actions.action.action import Action
from datahub_actions.event.event_envelope import EventEnvelope
from datahub_actions.pipeline.pipeline_context import PipelineContext
from pydantic import BaseModel, Field

from remote_executor.bridge.forward import SQS_MAX_MESSAGE_BYTES, Forwarded, Forwarder, Sender
from remote_executor.errors import QueueError
from remote_executor.queue.sqs import SqsQueue

log = structlog.get_logger("remote_executor.bridge.actions")
MCL_EVENT = "MetadataChangeLogEvent_v1"


class BridgeActionConfig(BaseModel):
    """The action's ``config``: executor ids and their queues, as EXECUTOR_BRIDGE_QUEUES."""

    queues: dict[str, str] = Field(min_length=1)
    # As the worker and `executor bridge` read it; boto3 alone reads only AWS_DEFAULT_REGION.
    aws_region: str | None = Field(
        default_factory=lambda: os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    max_message_bytes: int = Field(default=SQS_MAX_MESSAGE_BYTES, ge=1024, le=1_048_576)
    send_retry_seconds: float = Field(default=300.0, ge=0)


class BridgeAction(Action):  # type: ignore[misc]
    """Queues the request inputs of the configured executor ids; ignores everything else.

    (The ignore above: datahub-actions is untyped, so its Action is Any to mypy.)
    """

    def __init__(self, config: BridgeActionConfig, queues: dict[str, Sender]) -> None:
        self._config = config
        self._forwarder = Forwarder(queues, config.max_message_bytes)
        self.forwarded = 0

    @classmethod
    def create(cls, config_dict: dict[str, Any], ctx: PipelineContext) -> BridgeAction:
        config = BridgeActionConfig.model_validate(config_dict)
        queues: dict[str, Sender] = {
            executor_id: SqsQueue.create(url, config.aws_region, None)
            for executor_id, url in config.queues.items()
        }
        log.info("bridge action ready", pipeline=ctx.pipeline_name, executor_ids=sorted(queues))
        return cls(config, queues)

    def act(self, event: EventEnvelope) -> None:
        if event.event_type != MCL_EVENT:
            return
        change = event.event.to_obj()
        deadline = time.monotonic() + self._config.send_retry_seconds
        wait = 1.0
        while True:
            try:
                outcome = self._forwarder.forward(change)
            except QueueError as exc:
                if time.monotonic() + wait > deadline:
                    raise
                log.warning("bridge.send_retry", error=str(exc), retry_in=wait)
                time.sleep(wait)
                wait = min(wait * 2, 30.0)
                continue
            if isinstance(outcome, Forwarded):
                self.forwarded += 1
                log.info(
                    "bridge.forwarded",
                    urn=outcome.urn,
                    executor_id=outcome.executor_id,
                    truncated=outcome.truncated,
                )
            return

    def close(self) -> None:
        pass
