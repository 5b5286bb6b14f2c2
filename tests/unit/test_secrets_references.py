"""find_references: which ${NAME} a recipe needs, and which it can do without."""

from __future__ import annotations

from remote_executor.secrets import find_references


def test_plain_reference_is_required() -> None:
    assert find_references("password: ${DB_PASSWORD}") == ({"DB_PASSWORD"}, set())


def test_default_forms_are_optional() -> None:
    text = "user: ${A:-x}\nschema: ${B-x}\nempty: ${C:-}\n"

    assert find_references(text) == (set(), {"A", "B", "C"})


def test_a_name_required_anywhere_is_required() -> None:
    text = "a: ${TOKEN:-none}\nb: ${TOKEN}\n"

    assert find_references(text) == ({"TOKEN"}, set())


def test_many_references_in_one_value() -> None:
    text = "uri: postgresql://${USER}:${PASS}@${HOST:-localhost}/db_${ENV_1}"

    assert find_references(text) == ({"USER", "PASS", "ENV_1"}, {"HOST"})


def test_not_references() -> None:
    text = "a: price$NAME\nb: ${1ABC}\nc: {NAME}\ne: ${}\n"

    assert find_references(text) == (set(), set())


def test_no_references() -> None:
    assert find_references("source:\n  type: file\n") == (set(), set())


def test_a_value_starting_with_a_bare_name_is_an_optional_reference() -> None:
    # The CLI expands `password: $PG_PASSWORD` when the variable is set and keeps the
    # text otherwise, so the name is resolved when configured but never required.
    required, optional = find_references("password: $PG_PASSWORD\nquery: SELECT a$b\n")

    assert required == set()
    assert optional == {"PG_PASSWORD"}
