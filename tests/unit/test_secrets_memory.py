"""StaticSecretResolver: the in-memory twin, and the error that names what is missing."""

from __future__ import annotations

import pytest

from remote_executor.errors import MissingSecretError, SecretError
from remote_executor.secrets import StaticSecretResolver


def test_resolves_known_names() -> None:
    resolver = StaticSecretResolver({"DB_PASSWORD": "hunter22", "API_KEY": "k-123"})

    assert resolver.resolve(["DB_PASSWORD", "DB_PASSWORD"]) == {"DB_PASSWORD": "hunter22"}
    assert resolver.calls == [["DB_PASSWORD"]]


def test_one_missing_name() -> None:
    resolver = StaticSecretResolver({"API_KEY": "k-123"})

    with pytest.raises(MissingSecretError) as caught:
        resolver.resolve(["DB_PASSWORD", "API_KEY"])

    assert str(caught.value) == (
        "secret DB_PASSWORD referenced by the recipe as ${NAME} is not configured "
        "(configured: API_KEY)"
    )
    assert caught.value.names == ["DB_PASSWORD"]
    assert isinstance(caught.value, SecretError)


def test_every_missing_name_is_named() -> None:
    resolver = StaticSecretResolver({})

    with pytest.raises(MissingSecretError) as caught:
        resolver.resolve(["ZETA", "ALPHA", "MID"])

    assert str(caught.value) == (
        "secrets ALPHA, MID, ZETA referenced by the recipe as ${NAME} are not configured "
        "(no secrets are configured)"
    )
    assert caught.value.names == ["ALPHA", "MID", "ZETA"]


def test_missing_error_never_shows_values() -> None:
    resolver = StaticSecretResolver({"API_KEY": "value-that-must-not-show"})

    with pytest.raises(MissingSecretError) as caught:
        resolver.resolve(["DB_PASSWORD"])

    assert "value-that-must-not-show" not in str(caught.value)


def test_resolve_available_skips_unknown_names() -> None:
    resolver = StaticSecretResolver({"A": "value-a"})

    assert resolver.resolve_available(["A", "B"]) == {"A": "value-a"}


def test_configured_names_and_description() -> None:
    resolver = StaticSecretResolver({"B": "2222", "A": "1111"})

    assert resolver.configured_names() == ["A", "B"]
    assert resolver.describe() == "configured: A, B"
