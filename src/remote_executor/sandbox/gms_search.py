"""The stand-in's search: Rest.li ``POST /entities?action=filter`` on execution requests.

What the UI calls to list a source's runs (IngestionSourceExecutionRequestsResolver: the
criterion ``ingestionSource`` EQUAL the source urn, sorted by ``requestTimeMs``
descending). Only the execution request's @Searchable fields the stand-in indexes can be
filtered on, read from the stored input aspect; anything else is a 400, so a query the
stand-in cannot answer faithfully fails loudly. Unlike GMS, whose search index follows
writes a moment later, the stand-in's is up to date at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from remote_executor.sandbox.gms_schema import Answer, JsonDict, PayloadError, request_json
from remote_executor.sandbox.gms_store import AspectStore
from remote_executor.sandbox.loopback import Request

_ENTITY = "dataHubExecutionRequest"
_INPUT = "dataHubExecutionRequestInput"
_PARAMETERS = frozenset({"entity", "filter", "sort", "start", "count"})
# The searchable fields of ExecutionRequestInput (and its source), by their index name.
_FIELDS: dict[str, Callable[[JsonDict], Any]] = {
    "ingestionSource": lambda value: (value.get("source") or {}).get("ingestionSource"),
    "requestTimeMs": lambda value: value.get("requestedAt"),
}
_CONDITIONS: dict[str, Callable[[Any, Any], bool]] = {
    "EQUAL": lambda have, want: have == want,
    "GREATER_THAN": lambda have, want: have > want,
    "GREATER_THAN_OR_EQUAL_TO": lambda have, want: have >= want,
    "LESS_THAN": lambda have, want: have < want,
    "LESS_THAN_OR_EQUAL_TO": lambda have, want: have <= want,
}


def filter_entities(store: AspectStore, request: Request) -> Answer:
    """The requests matching the filter, sorted, one page, as a SearchResult."""
    body = request_json(request)
    if not isinstance(body, dict):
        raise PayloadError("filter: the body must be a JSON object of the action's parameters")
    extra = sorted(set(body) - _PARAMETERS)
    if extra:
        raise PayloadError(f"filter: unrecognized parameter(s) {', '.join(extra)}")
    if body.get("entity") != _ENTITY:
        raise PayloadError(
            f"filter: the stand-in searches only {_ENTITY}, not {body.get('entity')!r}"
        )
    start, count = body.get("start"), body.get("count")
    if not isinstance(start, int) or not isinstance(count, int) or start < 0 or count < 0:
        raise PayloadError("filter: start and count are required non-negative integers")
    matches = _matching(store, _disjunction(body.get("filter")))
    descending = _sort_order(body.get("sort"))
    matches.sort(key=lambda item: (item[1] or 0, item[0]), reverse=descending)
    page = matches[start : start + count]
    result = {
        "entities": [{"entity": urn, "matchedFields": []} for urn, _ in page],
        "from": start,
        "pageSize": count,
        "numEntities": len(matches),
        "metadata": {"aggregations": []},
    }
    return 200, {"value": result}


def _matching(
    store: AspectStore, groups: list[list[tuple[str, str, list[Any]]]]
) -> list[tuple[str, int | None]]:
    found = []
    for urn in store.urns(_ENTITY):
        value = store.get(urn, _INPUT)
        if value is None:
            continue  # GMS indexes a request by its input; no input, nothing to find
        if any(all(_holds(value, c) for c in group) for group in groups):
            requested = value.get("requestedAt")
            found.append((urn, requested if isinstance(requested, int) else None))
    return found


def _holds(value: JsonDict, criterion: tuple[str, str, list[Any]]) -> bool:
    field, condition, wanted = criterion
    have = _FIELDS[field](value)
    if have is None:
        return False
    if isinstance(have, int):
        try:
            wanted = [int(w) for w in wanted]
        except ValueError as exc:
            raise PayloadError(f"filter: {field} compares with numbers, got {wanted!r}") from exc
    return any(_CONDITIONS[condition](have, w) for w in wanted)


def _disjunction(raw: object) -> list[list[tuple[str, str, list[Any]]]]:
    """Filter's ``or`` of ``and``s of Criterion, checked; [[]] (everything) for none."""
    if not isinstance(raw, dict) or not isinstance(raw.get("or"), list):
        raise PayloadError('filter: filter must be {"or": [{"and": [criterion, ...]}]}')
    groups = []
    for conjunction in raw["or"] or [{"and": []}]:
        criteria = conjunction.get("and") if isinstance(conjunction, dict) else None
        if not isinstance(criteria, list):
            raise PayloadError('filter: every member of or must be {"and": [...]}')
        groups.append([_criterion(c) for c in criteria])
    return groups


def _criterion(raw: object) -> tuple[str, str, list[Any]]:
    if not isinstance(raw, dict):
        raise PayloadError("filter: a criterion must be a JSON object")
    field, condition = raw.get("field"), raw.get("condition", "EQUAL")
    if field not in _FIELDS:
        raise PayloadError(f"filter: the stand-in does not index the field {field!r}")
    if condition not in _CONDITIONS or raw.get("negated"):
        raise PayloadError(f"filter: condition {condition!r} is not imitated by the stand-in")
    values = raw.get("values") or ([raw["value"]] if "value" in raw else [])
    if not values or not all(isinstance(v, str) for v in values):
        raise PayloadError("filter: a criterion needs string values (or a value)")
    return str(field), str(condition), list(values)


def _sort_order(raw: object) -> bool:
    """True for DESCENDING; the stand-in sorts only by requestTimeMs."""
    if raw is None:
        return False
    if not isinstance(raw, dict) or raw.get("field") != "requestTimeMs":
        raise PayloadError("filter: the stand-in sorts only by requestTimeMs")
    if raw.get("order") not in ("ASCENDING", "DESCENDING"):
        raise PayloadError("filter: sort order must be ASCENDING or DESCENDING")
    return bool(raw["order"] == "DESCENDING")
