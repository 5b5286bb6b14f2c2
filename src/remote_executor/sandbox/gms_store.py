"""The GMS stand-in's database: the latest value of every aspect, and GMS's rules on writes.

Thread-safe, as the stand-in serves from threads, and every value goes in and out as a copy,
so that neither a test nor a handler can change stored state behind the lock's back.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Set
from dataclasses import dataclass

from remote_executor.sandbox.gms_events import EventLog, change_log
from remote_executor.sandbox.gms_schema import RESULT_ASPECT, JsonDict, Proposal

# GMS's ExecutionRequestResultValidator refuses any update once a result reaches one of these.
IMMUTABLE_STATUSES = frozenset({"SUCCESS", "CANCELLED", "ABORTED", "DUPLICATE"})


@dataclass(frozen=True)
class StoredAspect:
    """One aspect's latest value, and when it was written (epoch milliseconds, as GMS keeps)."""

    value: JsonDict
    written_ms: int


class AspectStore:
    """Aspects by urn, plus the history of each execution request's results.

    GMS keeps only the latest value; the history is the stand-in's own, for tests that wait
    for a short-lived status such as RUNNING. Every write (not a seed) is logged in
    ``events``, in the order it was committed.
    """

    def __init__(self) -> None:
        self.events = EventLog()
        self._changed = threading.Condition()
        self._aspects: dict[str, dict[str, StoredAspect]] = {}
        self._results: dict[str, list[JsonDict]] = {}
        self._accepted_at: dict[str, list[tuple[str, float]]] = {}
        self._refused: list[str] = []

    def get(self, urn: str, aspect_name: str) -> JsonDict | None:
        with self._changed:
            stored = self._aspects.get(urn, {}).get(aspect_name)
            return None if stored is None else copy.deepcopy(stored.value)

    def of(self, urn: str, wanted: Set[str] | None = None) -> dict[str, StoredAspect]:
        """urn's aspects in the order first written, only those in wanted unless it is None."""
        with self._changed:
            return {
                name: StoredAspect(copy.deepcopy(stored.value), stored.written_ms)
                for name, stored in self._aspects.get(urn, {}).items()
                if wanted is None or name in wanted
            }

    def urns(self, entity_type: str) -> list[str]:
        prefix = f"urn:li:{entity_type}:"
        with self._changed:
            return [urn for urn in self._aspects if urn.startswith(prefix)]

    def results(self, urn: str) -> list[JsonDict]:
        with self._changed:
            return copy.deepcopy(self._results.get(urn, []))

    def last_result(self, urn: str) -> JsonDict | None:
        with self._changed:
            history = self._results.get(urn)
            return copy.deepcopy(history[-1]) if history else None

    def accepted_times(self, urn: str) -> list[tuple[str, float]]:
        with self._changed:
            return list(self._accepted_at.get(urn, []))

    @property
    def refused(self) -> list[str]:
        with self._changed:
            return list(self._refused)

    def seed(self, proposal: Proposal) -> None:
        """Stores a validated proposal as if it were already in GMS's database: never refused,
        and not in the change log, for it was written before anyone listened."""
        with self._changed:
            self._store(proposal, logged=False)

    def write_all(self, proposals: list[Proposal]) -> str | None:
        """Stores all proposals, or none and returns GMS's reason to refuse the first it would."""
        with self._changed:
            for proposal in proposals:
                reason = refusal(self._latest(proposal), proposal)
                if reason is not None:
                    self._refused.append(reason)
                    return reason
            for proposal in proposals:
                self._store(proposal, logged=True)
            return None

    def wait_for_status(
        self, urn: str, statuses: Set[str], timeout_seconds: float
    ) -> JsonDict | None:
        """The latest result of urn with one of statuses, even if it was since updated."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: self._matching_result(urn, statuses), timeout_seconds
            )
            return copy.deepcopy(found)

    def _matching_result(self, urn: str, statuses: Set[str]) -> JsonDict | None:
        for result in reversed(self._results.get(urn, [])):
            if result.get("status") in statuses:
                return result
        return None

    def _latest(self, proposal: Proposal) -> JsonDict | None:
        """Caller holds the lock."""
        stored = self._aspects.get(proposal.urn, {}).get(proposal.aspect_name)
        return None if stored is None else stored.value

    def _store(self, proposal: Proposal, logged: bool) -> None:
        """Caller holds the lock, so the log's order is the order of commits."""
        value = copy.deepcopy(proposal.value)
        now = time.time()
        now_ms = int(now * 1000)
        entity = self._aspects.setdefault(proposal.urn, {})
        if logged:
            self.events.append(change_log(proposal, self._latest(proposal), now_ms), now_ms)
        entity[proposal.aspect_name] = StoredAspect(value, now_ms)
        if proposal.aspect_name == RESULT_ASPECT:
            self._results.setdefault(proposal.urn, []).append(value)
            self._accepted_at.setdefault(proposal.urn, []).append((str(value.get("status")), now))
        self._changed.notify_all()


def refusal(previous: JsonDict | None, proposal: Proposal) -> str | None:
    """GMS's ExecutionRequestResultValidator: a finished request's result is immutable."""
    if proposal.aspect_name != RESULT_ASPECT or previous is None:
        return None
    if previous.get("status") not in IMMUTABLE_STATUSES:
        return None
    return (
        f"Invalid update to immutable state for aspect {RESULT_ASPECT}. Execution urn:"
        f" {proposal.urn} previous status: {previous['status']}. Denied status update:"
        f" {proposal.value.get('status')}"
    )
