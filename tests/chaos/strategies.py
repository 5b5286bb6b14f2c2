"""Hypothesis strategies for SQS message bodies the worker must reject.

``bad_messages()``: bodies that ``parse_envelope`` or ``parse_input`` refuse with a
MessageError, plus truncated-form bodies (aspectName EXECUTOR_SQS_TRUNCATED) whose input a
test GMS does not have. Most start from a valid ``build_message`` body and break exactly one
thing; the rest are noise (not JSON, random bytes, JSON that is not a message).

``bad_recipe_messages()``: messages that parse, but whose recipe ``parse_recipe`` refuses with
a RecipeError: the worker rejects those later, in the task, not while decoding the message.

Every body is one SQS would take: only the characters SQS allows, and under MAX_BODY_BYTES.
All request urns start with CHAOS_URN_PREFIX, so that no test GMS has an input for them.
Each body is bad by construction: no filter() throws most examples away.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from remote_executor.messages import INPUT_ASPECT, TRUNCATED_ASPECT, build_message
from remote_executor.models import URN_PREFIX, TaskKind

CHAOS_URN_PREFIX = f"{URN_PREFIX}chaos-"
# SQS takes 256 KiB; the margin leaves room for a producer's own envelope.
MAX_BODY_BYTES = 200_000
_HUGE_BYTES = 120_000  # what one huge field may add to a body, escaping included

# What SQS refuses outside the surrogates: C0 controls other than tab, LF and CR; U+FFFE/U+FFFF.
_SQS_FORBIDDEN = [chr(c) for c in (*range(0x9), 0xB, 0xC, *range(0xE, 0x20), 0xFFFE, 0xFFFF)]
_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters=_SQS_FORBIDDEN)
_TEXT = st.text(_CHARS, max_size=40)
# str.strip() removes all of these, so a recipe made of them is blank.
_BLANKS = st.characters(categories=("Zs", "Zl", "Zp"), include_characters="\t\n\r\x85")
_PLAIN = st.booleans() | st.integers() | st.floats()  # JSON scalars but null and strings
_NON_TEXT = st.none() | _PLAIN
_JSON = st.recursive(
    _NON_TEXT | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_LISTS = st.lists(_JSON, max_size=4)
_OBJECTS = st.dictionaries(_TEXT, _JSON, max_size=4)
_NOT_OBJECT = _NON_TEXT | _TEXT | _LISTS
_NOT_STRING = _NON_TEXT | _LISTS | _OBJECTS
_DROP = object()  # as a replacement: remove the key

Defect = Callable[[Any], SearchStrategy[Any]]  # the original value -> replacements


def _marginal_bytes(unit: str) -> int:
    """Bytes one more repetition of unit adds, JSON-encoded twice (the worst case, input)."""

    def size(text: str, ascii_only: bool) -> int:
        twice = json.dumps(json.dumps(text, ensure_ascii=ascii_only), ensure_ascii=ascii_only)
        return len(twice.encode())

    return max(size(unit * 2, flag) - size(unit, flag) for flag in (True, False))


def _huge(chars: SearchStrategy[str] = _CHARS) -> SearchStrategy[str]:
    """A short unit repeated up to _HUGE_BYTES, escaping included."""
    unit = st.text(chars, min_size=1, max_size=8)
    return unit.map(lambda u: u * max(1, _HUGE_BYTES // _marginal_bytes(u)))


def _unparseable(text: str) -> str:
    """text, unless it is JSON: then "~" + text, which no JSON text starts with."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # the worker cannot read it either
        return text or "~"  # "" counts as absent for the args that hold JSON
    return f"~{text}"


def _not_an_object(text: str) -> str:
    """text, unless it is a JSON object, which could happen to be a whole message."""
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return f"~{text}" if isinstance(decoded, dict) else text


def _garbage(longest: int = 40) -> SearchStrategy[str]:
    """Text that is not JSON: typed, random, huge, or random bytes read as UTF-8."""
    raw_bytes = st.binary(max_size=longest).map(lambda b: b.decode("utf-8", errors="replace"))
    sqs_safe = raw_bytes.map(lambda s: "".join("\ufffd" if c in _SQS_FORBIDDEN else c for c in s))
    return st.one_of(st.text(_CHARS, max_size=longest), _huge(), sqs_safe).map(_unparseable)


def _cut(text: str) -> SearchStrategy[str]:
    """Proper prefixes of text; of a JSON object never JSON, and never empty."""
    return st.integers(1, max(1, len(text) - 1)).map(lambda n: text[:n])


def _valid(executor_id: str = "remote") -> SearchStrategy[tuple[dict[str, Any], dict[str, Any]]]:
    """A valid message, decoded: (message, its input value)."""
    recipe = st.builds(
        lambda kind, path: yaml.safe_dump(
            {"source": {"type": kind, "config": {"path": path}}}, allow_unicode=True
        ),
        st.sampled_from(["sqlite", "postgres", "file", "snowflake"]),
        _TEXT,
    )
    body = st.builds(
        build_message,
        request_id=_TEXT.map(lambda text: f"{CHAOS_URN_PREFIX[len(URN_PREFIX) :]}{text}"),
        recipe=recipe,
        executor_id=st.just(executor_id),
        task=st.sampled_from(TaskKind),
        ingestion_source=st.none() | _TEXT,
        extra_env_vars=st.dictionaries(st.from_regex(r"[A-Z_]{1,12}", fullmatch=True), _TEXT),
    )
    return body.map(json.loads).map(lambda m: (m, json.loads(m["aspect"]["value"])))


def _replaced(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A deep copy of document with the value at path replaced, or removed for _DROP."""
    copied: dict[str, Any] = json.loads(json.dumps(document))
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    if value is _DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copied


def _other_text(*valid: str) -> SearchStrategy[str]:
    """Any text but the valid ones, from near misses (case, spaces) to huge noise."""
    near = st.sampled_from(valid).flatmap(
        lambda v: st.sampled_from([v.lower(), v.upper(), f" {v}", f"{v}\n", v[:-1], f"{v}s"])
    )
    return (near | _TEXT | _huge()).map(lambda text: text if text not in valid else f"x{text}")


def _json_arg(
    wrong: SearchStrategy[Any], wrong_raw: SearchStrategy[Any], typed: list[str]
) -> Defect:
    """A bad args.extra_env_vars or args.extra_pip_requirements, which hold JSON text.

    wrong: JSON values of another type; wrong_raw: those of them read as they are, not as JSON
    text (neither strings nor None, which stands for absent).
    """
    return lambda original: st.one_of(
        st.sampled_from(typed), _garbage(), _cut(original), wrong.map(json.dumps), wrong_raw
    )


def _timeout(original: Any) -> SearchStrategy[Any]:
    numbers = st.integers(max_value=0) | st.floats(max_value=0.0) | st.just(float("nan"))
    words = st.sampled_from(["nan", "inf", "-inf", "Infinity", "soon", "5m", "1h", "0x10"])
    return words | numbers | numbers.map(str) | _TEXT.map(lambda text: f"~{text}")


_ENVELOPE_DEFECTS: dict[tuple[str, ...], Defect] = {
    ("entityUrn",): lambda urn: st.one_of(
        st.just(_DROP),
        _NOT_STRING,
        st.sampled_from(
            [URN_PREFIX, URN_PREFIX[:-1], urn[len(URN_PREFIX) :], "urn:li:dataHubIngestionSource:x"]
        ),
        _other_text(urn).map(lambda text: f"x{text}" if text.startswith(URN_PREFIX) else text),
    ),
    ("aspectName",): lambda name: st.one_of(
        st.just(_DROP),
        _NOT_STRING,
        st.sampled_from(["dataHubExecutionRequestResult", "dataHubExecutionRequestSignal"]),
        _other_text(INPUT_ASPECT, TRUNCATED_ASPECT),
    ),
    ("aspect",): lambda aspect: st.one_of(
        st.just(_DROP),
        _NOT_OBJECT,
        st.just(aspect["value"]),  # the value without its wrapper
        st.just({"contentType": "application/json"}),
    ),
    ("aspect", "value"): lambda value: st.one_of(
        st.just(_DROP),
        _NOT_STRING,
        st.just(json.loads(value)),  # an object, not the JSON string of one
        _garbage(),
        _cut(value),
        st.sampled_from("}],x#").map(lambda junk: f"{value}{junk}"),
        st.just(yaml.safe_dump(json.loads(value))).map(_unparseable),
        _NOT_OBJECT.map(json.dumps),
        st.just(json.dumps(value)),  # encoded twice
    ),
}

_INPUT_DEFECTS: dict[tuple[str, ...], Defect] = {
    ("task",): lambda task: (
        st.just(_DROP) | _NOT_STRING | _other_text(*(k.value for k in TaskKind))
    ),
    ("executorId",): lambda _: st.one_of(st.just(_DROP), st.just(""), _NOT_STRING),
    ("args",): lambda args: st.one_of(
        st.just(_DROP), _NOT_OBJECT, st.just(json.dumps(args)), st.just(list(args.values()))
    ),
    ("args", "recipe"): lambda recipe: st.one_of(
        st.just(_DROP),
        _NOT_STRING,
        st.just(yaml.safe_load(recipe)),  # the recipe as an object, not as text
        st.text(_BLANKS, max_size=40),
        _huge(_BLANKS),
    ),
    ("args", "extra_env_vars"): _json_arg(_NOT_OBJECT, _PLAIN | _LISTS, ["FOO=bar", "{'A': 1}"]),
    ("args", "extra_pip_requirements"): _json_arg(
        _NON_TEXT | _TEXT | _OBJECTS,
        _PLAIN | _OBJECTS,
        ["acryl-datahub[postgres]", "pandas==2.0, numpy", "[acryl-datahub]", "{}"],
    ),
    # EXECUTOR_TASK_TIMEOUT_SECONDS's per-request override
    ("args", "timeout_seconds"): _timeout,
    # args is a map of strings; a false-y version counts as absent, so only truthy ones
    ("args", "version"): lambda _: st.one_of(
        st.integers(min_value=1), st.just(True), st.lists(_TEXT, min_size=1)
    ),
}


def _dump(document: Any, ascii_only: bool) -> str:
    return json.dumps(document, ensure_ascii=ascii_only)


@st.composite
def _broken_envelope(draw: st.DrawFn, path: tuple[str, ...]) -> str:
    message, _ = draw(_valid())
    original: Any = message
    for key in path:
        original = original[key]
    event(f"envelope: {'.'.join(path)}")
    broken = _replaced(message, path, draw(_ENVELOPE_DEFECTS[path](original)))
    return _dump(broken, draw(st.booleans()))


@st.composite
def _broken_input(draw: st.DrawFn, path: tuple[str, ...]) -> str:
    message, value = draw(_valid())
    original = value.get(path[0]) if len(path) == 1 else value["args"].get(path[1], "")
    event(f"input: {'.'.join(path)}")
    broken = _replaced(value, path, draw(_INPUT_DEFECTS[path](original)))
    ascii_only = draw(st.booleans())
    return _dump(
        {**message, "aspect": {**message["aspect"], "value": _dump(broken, ascii_only)}}, ascii_only
    )


@st.composite
def _truncated(draw: st.DrawFn) -> str:
    """The truncated form: the worker must fetch the input from GMS, which has none."""
    message, _ = draw(_valid())
    event("truncated")
    aspect = draw(st.just(_DROP) | st.just(message["aspect"]) | _JSON)
    broken = _replaced({**message, "aspectName": TRUNCATED_ASPECT}, ("aspect",), aspect)
    return _dump(broken, draw(st.booleans()))


_SOME_BODY = build_message("chaos-noise", "source: {type: file}", "remote")
# Bodies that are not a message at all, or a valid one cut short or with a tail.
_NOISE: dict[str, SearchStrategy[str]] = {
    "not JSON": _garbage(200),
    "JSON, not an object": _NOT_OBJECT.map(json.dumps),
    "object, not a message": _OBJECTS.map(
        lambda d: json.dumps({k: v for k, v in d.items() if k != "entityUrn"})
    ),
    "cut short": _cut(_SOME_BODY),
    "nested too deep": st.integers(2_000, 50_000).map(lambda n: "[" * n + "]" * n),
    "trailing junk": _garbage().map(lambda junk: f"{_SOME_BODY}}}{junk}"),
}


@st.composite
def _labelled(draw: st.DrawFn, label: str, strategy: SearchStrategy[str]) -> str:
    event(label)  # shown by pytest --hypothesis-show-statistics
    return draw(strategy)


def bad_messages() -> SearchStrategy[str]:
    """SQS bodies the worker must reject; see the module docstring."""
    return st.one_of(
        *(_labelled(f"noise: {kind}", noise) for kind, noise in _NOISE.items()),
        _truncated(),
        *(_broken_envelope(path) for path in _ENVELOPE_DEFECTS),
        *(_broken_input(path) for path in _INPUT_DEFECTS),
    )


def _never_a_recipe(text: str) -> str:
    """text, unless YAML reads it as a mapping with a source: then a flow list holding it."""
    safe = f"[{json.dumps(text)}]"
    if not text.strip():  # parse_input refuses a blank recipe before parse_recipe sees it
        return safe
    try:
        loaded = yaml.safe_load(text)
    except Exception:  # YAMLError, or ValueError for "2001-13-45": parse_recipe refuses it
        return text
    return safe if isinstance(loaded, dict) and "source" in loaded else text


_BAD_RECIPES: dict[str, SearchStrategy[str]] = {
    "not YAML": st.sampled_from(
        ["source: [", "source:\n\ttype: x", "source: {type: x", "a: b: c", "@source: x", "`x`"]
    ),
    "random text": _TEXT.map(_never_a_recipe),
    "no source": _OBJECTS.map(lambda d: {k: v for k, v in d.items() if k != "source"}).flatmap(
        lambda d: st.sampled_from([d, {**d, "Source": {"type": "x"}}, {"sources": []}])
    ),
    "bad source": st.one_of(
        _NOT_OBJECT.map(lambda source: {"source": source}),
        st.just({"source": {"config": {}}}),
        # JSON floats would turn into strings in YAML 1.1 ("1e+300", "Infinity")
        (st.none() | st.booleans() | st.integers() | _OBJECTS).map(
            lambda kind: {"source": {"type": kind}}
        ),
    ),
}


@st.composite
def bad_recipe_messages(draw: st.DrawFn, executor_id: str = "remote") -> str:
    """Messages for executor_id, valid but for a recipe parse_recipe refuses (RecipeError)."""
    message, value = draw(_valid(executor_id))
    kind = draw(st.sampled_from(sorted(_BAD_RECIPES)))
    event(f"recipe: {kind}")
    recipe = draw(_BAD_RECIPES[kind])
    if not isinstance(recipe, str):
        dump = draw(st.sampled_from([json.dumps, yaml.safe_dump]))
        recipe = dump(recipe)
    value["args"]["recipe"] = recipe
    return _dump({**message, "aspect": {**message["aspect"], "value": json.dumps(value)}}, True)
