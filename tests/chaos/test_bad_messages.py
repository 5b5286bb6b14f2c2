"""Generated bad messages through a real worker: it stays alive and dead-letters every one."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from remote_executor.sandbox import Sandbox
from tests.chaos.strategies import bad_messages
from tests.chaos.support import ChaosQueue, WorkerProcess, record, terminal_statuses, wait_until

# SendMessageBatch takes at most 10 messages and 256 KiB in all.
BATCH_BYTES = 250_000
WAVE = 100


def generate(count: int) -> list[str]:
    bodies: list[str] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(bad_messages())
    def collect(body: str) -> None:
        bodies.append(body)

    collect()
    return bodies


def send_all(sandbox: Sandbox, queue: ChaosQueue, bodies: list[str]) -> None:
    client = sandbox.aws.client("sqs")
    batch: list[str] = []

    def flush() -> None:
        if batch:
            entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(batch)]
            response = client.send_message_batch(QueueUrl=queue.url, Entries=entries)
            assert not response.get("Failed"), response["Failed"]
            batch.clear()

    for body in bodies:
        size = len(body.encode())
        if len(batch) == 10 or sum(len(b.encode()) for b in batch) + size > BATCH_BYTES:
            flush()
        batch.append(body)
    flush()


def test_generated_bad_messages_all_land_in_the_dead_letter_queue(
    sandbox: Sandbox,
    queue: ChaosQueue,
    workers: type[WorkerProcess],
    request: pytest.FixtureRequest,
) -> None:
    count = 10_000 if request.config.getoption("--chaos-long") else 1_000
    bodies = generate(count)
    assert len(bodies) >= count
    worker = workers(EXECUTOR_MAX_CONCURRENT_TASKS="8")
    letters: list[dict[str, Any]] = []

    def taken(count: int) -> bool:
        letters.extend(queue.take_dead_letters())
        return len(letters) >= count

    # In waves, emptying the dead-letter queue as we go: moto slows down as a queue grows.
    for start in range(0, len(bodies), WAVE):
        send_all(sandbox, queue, bodies[start : start + WAVE])
        assert wait_until(lambda: taken(min(start + WAVE, len(bodies))), 300)  # noqa: B023
        assert worker.alive(), worker.log()[-3000:]
    good = queue.submit("after-the-storm", {})
    assert wait_until(lambda: terminal_statuses(sandbox, good))
    assert terminal_statuses(sandbox, good) == ["SUCCESS"]
    if not wait_until(queue.is_empty, 30):
        left = [line for line in worker.log().splitlines() if '"message ended"' not in line]
        pytest.fail(
            f"queue not empty (visible, in flight) = {queue.counts()}; "
            f"{len(letters)} dead letters for {len(bodies)} bodies; worker log without the "
            "'message ended' lines, last 60:\n" + "\n".join(left[-60:])
        )

    assert Counter(m["Body"] for m in letters) == Counter(bodies)
    reasons = [m["MessageAttributes"]["reason"]["StringValue"] for m in letters]
    assert all(reason.strip() for reason in reasons)
    assert "Traceback" not in worker.log()
    record(
        f"{len(bodies)} generated bad messages",
        len(bodies),
        lost=len(bodies) - len(letters),
        doubled=len(letters) - len(bodies),
        processes_left=0,
        recover_seconds=None,
    )
