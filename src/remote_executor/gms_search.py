"""Listing execution requests, as the DataHub UI lists a source's runs.

The UI's IngestionSourceExecutionRequestsResolver calls GMS's ``filter`` on the
dataHubExecutionRequest entity with the criterion ``ingestionSource`` EQUAL the source urn,
sorted by ``requestTimeMs`` descending (both fields are @Searchable on the request's input
aspect). Over HTTP that is Rest.li's ``POST /entities?action=filter`` with the parameters
``entity``, ``filter``, ``sort``, ``start`` and ``count`` (metadata-service/restli-api's
com.linkedin.entity.entities.restspec.json), answered with a SearchResult in ``value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remote_executor.errors import GmsUnavailableError
from remote_executor.gms import GmsClient

FILTER_PATH = "/entities?action=filter"
ENTITY = "dataHubExecutionRequest"
SOURCE_FIELD = "ingestionSource"
REQUESTED_FIELD = "requestTimeMs"


@dataclass(frozen=True)
class RequestPage:
    """One page of request urns, newest first, and how many match in all."""

    urns: list[str]
    total: int


def criterion(field: str, value: str, condition: str = "EQUAL") -> dict[str, Any]:
    """A Criterion; ``value`` for GMS before ``values`` existed, ``values`` for after."""
    return {"field": field, "value": value, "values": [value], "condition": condition}


def list_requests(
    gms: GmsClient,
    source_urn: str | None = None,
    requested_after_ms: int | None = None,
    start: int = 0,
    count: int = 20,
) -> RequestPage:
    """Requests of source_urn (all when None) requested after the given time, newest first."""
    criteria = []
    if source_urn is not None:
        criteria.append(criterion(SOURCE_FIELD, source_urn))
    if requested_after_ms is not None:
        criteria.append(criterion(REQUESTED_FIELD, str(requested_after_ms), "GREATER_THAN"))
    body = {
        "entity": ENTITY,
        "filter": {"or": [{"and": criteria}]},
        "sort": {"field": REQUESTED_FIELD, "order": "DESCENDING"},
        "start": start,
        "count": count,
    }
    response = gms.send("POST", FILTER_PATH, json=body)
    try:
        result = response.json()["value"]
        urns = [str(entity["entity"]) for entity in result["entities"]]
        total = int(result.get("numEntities", len(urns)))
    except (ValueError, KeyError, TypeError) as exc:
        raise GmsUnavailableError(
            f"GMS answered the request search with something that is not a SearchResult: "
            f"{response.text[:100]!r}"
        ) from exc
    return RequestPage(urns, total)


def all_requests(gms: GmsClient, requested_after_ms: int, page_size: int = 100) -> list[str]:
    """Every request urn requested after the given time, newest first, page by page."""
    urns: list[str] = []
    while True:
        page = list_requests(gms, None, requested_after_ms, len(urns), page_size)
        urns.extend(page.urns)
        if not page.urns or len(urns) >= page.total:
            return urns
