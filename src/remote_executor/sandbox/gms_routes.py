"""The GMS stand-in's API below /gms: which endpoint answers which method and path.

    GET  /config                                      SERVER_CONFIG, what the CLI checks
    GET  /aspects/{urn}?aspect=<name>&version=0       gms_reads.get_aspect
    GET  /entitiesV2/{urn}?aspects=List(<name>,...)   gms_reads.get_entity
    POST /aspects?action=ingestProposal               gms_writes.ingest_proposal
    POST /aspects?action=ingestProposalBatch          gms_writes.ingest_proposal_batch
    POST /aspects?action=getTimeseriesAspectValues    gms_reads.timeseries_values
    POST /openapi/v3/entity/{type}                    gms_writes.upsert_entities
    POST /openapi/v3/entity/{type}/batchGet           gms_reads.batch_get
    GET  /openapi/v1/events/poll                      gms_events.poll (the change log)
    POST /entities?action=filter                      gms_search.filter_entities

Anything else is 404; a request GMS would not understand raises PayloadError (a 400).
"""

from __future__ import annotations

from urllib.parse import unquote

from remote_executor.sandbox import gms_events, gms_reads, gms_search, gms_writes
from remote_executor.sandbox.gms_schema import SERVER_CONFIG, Answer, PayloadError, error_body
from remote_executor.sandbox.gms_store import AspectStore
from remote_executor.sandbox.loopback import Request


def below_gms(request: Request) -> str | None:
    """The path below /gms ("" for /gms itself); None outside it, where the web app answers."""
    if request.path != "/gms" and not request.path.startswith("/gms/"):
        return None
    return request.path.removeprefix("/gms")


def route(store: AspectStore, request: Request) -> Answer:
    """Answers one request below /gms from store."""
    path, method = below_gms(request) or "", request.method
    if method == "GET":
        return _get(store, request, path)
    if method == "POST" and path == "/aspects":
        return _aspects_action(store, request)
    if method == "POST" and path == "/entities":
        return _entities_action(store, request)
    if method == "POST" and path.startswith("/openapi/v3/entity/"):
        return _openapi_entity(store, request, path.removeprefix("/openapi/v3/entity/"))
    return _not_found(request)


def _get(store: AspectStore, request: Request, path: str) -> Answer:
    if path == "/config":
        return 200, SERVER_CONFIG
    if path.startswith("/aspects/"):
        return gms_reads.get_aspect(store, unquote(path.removeprefix("/aspects/")), request)
    if path.startswith("/entitiesV2/"):
        return gms_reads.get_entity(store, unquote(path.removeprefix("/entitiesV2/")), request)
    if path == "/openapi/v1/events/poll":
        return gms_events.poll(store.events, request.query)
    return _not_found(request)


def reads_aspect(request: Request, aspect_name: str) -> bool:
    """Whether request is a GET /aspects or /entitiesV2 that asks for aspect_name.

    What the request asks for, not what GMS holds, for a proxy in front of GMS cannot know
    (GmsStandIn.garble_reads). An /entitiesV2 without ``aspects`` asks for all of them; one
    GMS would refuse with 400 asks for none.
    """
    path = below_gms(request)
    if request.method != "GET" or path is None:
        return False
    if path.startswith("/aspects/"):
        return request.query.get("aspect", [""])[0] == aspect_name
    if not path.startswith("/entitiesV2/"):
        return False
    try:
        wanted = gms_reads.restli_aspects(request)
    except PayloadError:
        return False
    return wanted is None or aspect_name in wanted


def _aspects_action(store: AspectStore, request: Request) -> Answer:
    action = request.query.get("action", [""])[0]
    if action == "ingestProposal":
        return gms_writes.ingest_proposal(store, request)
    if action == "ingestProposalBatch":
        return gms_writes.ingest_proposal_batch(store, request)
    if action == "getTimeseriesAspectValues":
        return gms_reads.timeseries_values(store, request)
    return _not_found(request, f"?action={action}")


def _entities_action(store: AspectStore, request: Request) -> Answer:
    action = request.query.get("action", [""])[0]
    if action == "filter":
        return gms_search.filter_entities(store, request)
    return _not_found(request, f"?action={action}")


def _openapi_entity(store: AspectStore, request: Request, entity_path: str) -> Answer:
    entity_type, _, action = entity_path.partition("/")
    if not action:
        return gms_writes.upsert_entities(store, entity_type, request)
    if action == "batchGet":
        return gms_reads.batch_get(store, request)
    return _not_found(request)


def _not_found(request: Request, what: str = "") -> Answer:
    return 404, error_body(404, f"not found: {request.path}{what}")
