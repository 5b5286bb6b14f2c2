"""find_references: which ${NAME} a recipe needs, and which it can do without."""

from __future__ import annotations

from remote_executor.secrets import find_references, rename_references, variable_name


def test_plain_reference_is_required() -> None:
    assert find_references("password: ${DB_PASSWORD}") == ({"DB_PASSWORD"}, set())


def test_default_forms_are_optional() -> None:
    text = "user: ${A:-x}\nschema: ${B:=x}\nempty: ${C:-}\nalt: ${D:+x}\n"

    assert find_references(text) == (set(), {"A", "B", "C", "D"})


def test_error_form_is_required() -> None:
    assert find_references("password: ${PASS:?set PASS}") == ({"PASS"}, set())


def test_names_may_hold_hyphens_and_start_with_digits() -> None:
    text = "password: ${db-password}\nkey: ${1st_key}\nboth: ${snowflake-prod_pw}\n"

    assert find_references(text) == ({"db-password", "1st_key", "snowflake-prod_pw"}, set())


def test_without_a_colon_a_hyphen_is_part_of_the_name() -> None:
    # ${db-password} is a secret's name, never "db, defaulting to password".
    assert find_references("a: ${PORT-5432}") == ({"PORT-5432"}, set())


def test_a_name_required_anywhere_is_required() -> None:
    text = "a: ${TOKEN:-none}\nb: ${TOKEN}\n"

    assert find_references(text) == ({"TOKEN"}, set())


def test_many_references_in_one_value() -> None:
    text = "uri: postgresql://${USER}:${PASS}@${HOST:-localhost}/db_${ENV_1}"

    assert find_references(text) == ({"USER", "PASS", "ENV_1"}, {"HOST"})


def test_not_references() -> None:
    text = "a: price$NAME\nb: ${A.B}\nc: {NAME}\ne: ${}\nf: ${a b}\n"

    assert find_references(text) == (set(), set())


def test_no_references() -> None:
    assert find_references("source:\n  type: file\n") == (set(), set())


def test_a_value_starting_with_a_bare_name_is_an_optional_reference() -> None:
    # The CLI expands `password: $PG_PASSWORD` when the variable is set and keeps the
    # text otherwise, so the name is resolved when configured but never required.
    required, optional = find_references("password: $PG_PASSWORD\nquery: SELECT a$b\n")

    assert required == set()
    assert optional == {"PG_PASSWORD"}


def test_names_the_cli_can_expand_keep_their_name() -> None:
    assert variable_name("DB_PASSWORD") == "DB_PASSWORD"
    assert variable_name("_x1") == "_x1"


def test_other_names_get_a_variable_of_their_own() -> None:
    assert variable_name("db-password") == "EXECUTOR_SECRET_db_hpassword"
    assert variable_name("1st_key") == "EXECUTOR_SECRET_1st__key"


def test_no_two_names_share_a_variable() -> None:
    names = ["a-b", "a_b", "a--b", "a_-b", "a-_b", "a__b", "a_hb", "a-hb", "1a", "1-a"]

    assert len({variable_name(name) for name in names}) == len(names)


def test_renaming_touches_only_names_the_cli_cannot_expand() -> None:
    text = "a: ${db-password}\nb: ${DB_USER}\nc: ${HOST:-x}\nd: x${db-password}y\n"

    assert rename_references(text) == (
        "a: ${EXECUTOR_SECRET_db_hpassword}\nb: ${DB_USER}\nc: ${HOST:-x}\n"
        "d: x${EXECUTOR_SECRET_db_hpassword}y\n"
    )
