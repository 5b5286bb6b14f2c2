"""The stand-in's Events API and request search answer as GMS does, and refuse what GMS
would refuse."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from remote_executor.gms import GmsClient
from remote_executor.gms_search import criterion, list_requests
from remote_executor.sandbox import gms_ui
from remote_executor.sandbox.gms import GmsStandIn

RECIPE = {"source": {"type": "sqlalchemy", "config": {}}}
HEADERS = {"Authorization": "Bearer t", "X-RestLi-Protocol-Version": "2.0.0"}


@pytest.fixture
def gms() -> Iterator[GmsStandIn]:
    with GmsStandIn(token="t") as stand_in:
        yield stand_in


def poll(gms: GmsStandIn, **params: object) -> requests.Response:
    query = {"topic": "MetadataChangeLog_Versioned_v1", "pollTimeoutSeconds": 0, **params}
    return requests.get(
        f"{gms.url}/openapi/v1/events/poll", params=query, headers=HEADERS, timeout=20
    )


def test_every_accepted_write_is_a_change_with_its_offset(gms: GmsStandIn) -> None:
    start = poll(gms).json()
    assert (start["count"], start["events"]) == (0, [])
    source = gms_ui.create_source(gms, "a", RECIPE)
    urn = gms_ui.execute(gms, source)
    answer = poll(gms, offsetId=start["offsetId"]).json()

    assert answer["count"] == 2
    changes = [json.loads(event["value"]) for event in answer["events"]]
    assert [(c["entityUrn"], c["aspectName"]) for c in changes] == [
        (source, "dataHubIngestionSourceInfo"),
        (urn, "dataHubExecutionRequestInput"),
    ]
    assert json.loads(base64.b64decode(answer["offsetId"])) == {
        "MetadataChangeLog_Versioned_v1-0": len(gms.change_log)
    }
    assert poll(gms, offsetId=answer["offsetId"]).json()["count"] == 0
    assert poll(gms, lookbackWindowDays=1).json()["count"] == len(gms.change_log)


def test_a_poll_waits_for_the_next_write(gms: GmsStandIn) -> None:
    offset = poll(gms).json()["offsetId"]
    source = gms_ui.create_source(gms, "w", RECIPE)
    threading.Timer(0.5, gms_ui.execute, (gms, source)).start()
    started = time.monotonic()
    answer = poll(gms, offsetId=poll(gms, offsetId=offset).json()["offsetId"], pollTimeoutSeconds=5)
    assert answer.json()["count"] == 1
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        ({"topic": "PlatformEvent_v1"}, 403, None),
        ({"offsetId": "bm90IGFuIG9mZnNldA=="}, 400, "is not an offset GMS gave"),
        ({"limit": 5001}, 400, "limit must be between 0 and 5000, got 5001"),
        ({"pollTimeoutSeconds": 11}, 400, "pollTimeoutSeconds must be between 0 and 10"),
    ],
)
def test_a_poll_gms_would_refuse_is_refused(
    gms: GmsStandIn, params: dict[str, object], status: int, reason: str | None
) -> None:
    answer = poll(gms, **params)
    assert answer.status_code == status
    if reason is not None:
        assert reason in answer.text
        assert any(reason in rejected for rejected in gms.rejected)


def test_the_ui_search_lists_a_sources_runs_newest_first(gms: GmsStandIn) -> None:
    client = GmsClient(gms.url, "t", retry_seconds=0)
    source = gms_ui.create_source(gms, "list", RECIPE)
    other = gms_ui.create_source(gms, "other", RECIPE)
    mine = []
    for _ in range(3):
        mine.append(gms_ui.execute(gms, source))
        time.sleep(0.005)  # requestedAt has millisecond resolution
    gms_ui.execute(gms, other)

    page = list_requests(client, source, count=2)
    assert (page.urns, page.total) == (mine[::-1][:2], 3)
    assert list_requests(client, source, start=2, count=2).urns == [mine[0]]
    assert len(list_requests(client, None, count=10).urns) == 4


def test_a_search_on_a_field_the_stand_in_does_not_index_is_refused(gms: GmsStandIn) -> None:
    body = {
        "entity": "dataHubExecutionRequest",
        "filter": {"or": [{"and": [criterion("status", "RUNNING")]}]},
        "start": 0,
        "count": 10,
    }
    answer = requests.post(
        f"{gms.url}/entities?action=filter", json=body, headers=HEADERS, timeout=10
    )
    assert answer.status_code == 400
    assert "the stand-in does not index the field 'status'" in answer.text
