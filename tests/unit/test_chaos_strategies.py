"""The chaos strategies make what they promise: bodies SQS takes and the worker must reject."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings

from remote_executor.errors import MessageError, RecipeError
from remote_executor.messages import parse_envelope, parse_input
from remote_executor.recipe import parse_recipe
from tests.chaos.strategies import (
    CHAOS_URN_PREFIX,
    MAX_BODY_BYTES,
    bad_messages,
    bad_recipe_messages,
)

# The characters SQS allows in a message body, as its SendMessage reference lists them.
SQS_BODY = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def assert_sqs_takes(body: str) -> None:
    assert SQS_BODY.fullmatch(body), "a character SQS refuses"
    assert len(body.encode()) < MAX_BODY_BYTES


@settings(max_examples=500, deadline=None)
@given(bad_messages())
def test_bad_messages_are_rejected(body: str) -> None:
    assert_sqs_takes(body)
    try:
        envelope = parse_envelope(body)
    except MessageError:
        return
    if envelope.input is None:  # truncated: GMS has no input for a chaos urn
        assert envelope.urn.startswith(CHAOS_URN_PREFIX)
        return
    with pytest.raises(MessageError):
        parse_input(envelope.urn, envelope.input)


@settings(max_examples=200, deadline=None)
@given(bad_recipe_messages())
def test_bad_recipe_messages_parse_but_their_recipe_is_refused(body: str) -> None:
    assert_sqs_takes(body)
    envelope = parse_envelope(body)
    assert envelope.input is not None
    request = parse_input(envelope.urn, envelope.input)
    with pytest.raises(RecipeError):
        parse_recipe(request.recipe)
