"""The bridge's metrics, in a registry of its own, served on /metrics like the worker's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class BridgeMetrics:
    """What an operator watches: requests forwarded and skipped, sweeps, and failures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.changes = Counter(
            "executor_bridge_changes", "Change events read from GMS.", registry=r
        )
        self.forwarded = Counter(
            "executor_bridge_forwarded",
            "Requests queued, by executor id and whether the truncated stub was sent.",
            ["executor_id", "truncated"],
            registry=r,
        )
        self.skipped_other_executor = Counter(
            "executor_bridge_skipped_other_executor",
            "Request inputs for an executor id this bridge does not serve.",
            registry=r,
        )
        self.undecodable = Counter(
            "executor_bridge_undecodable_events",
            "Events that were not a MetadataChangeLog.",
            registry=r,
        )
        self.errors = Counter(
            "executor_bridge_errors",
            "Rounds that failed (GMS or the queue), by part; each is retried.",
            ["part"],
            registry=r,
        )
        self.swept = Counter(
            "executor_bridge_swept",
            "Requests the sweeper ended, by status (ABORTED: stale RUNNING; "
            "CANCELLED: never started).",
            ["status"],
            registry=r,
        )
        self.last_commit = Gauge(
            "executor_bridge_last_commit_timestamp_seconds",
            "When the bridge last committed its offset.",
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
