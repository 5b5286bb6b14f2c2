"""Redactor: every form a secret takes in text is masked; short values are not."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_executor.secrets import MASK, Redactor
from remote_executor.secrets.redact import FILTER_MIN_CHARS, _forms

SECRET = 'p@ss w/"rd&1é'


def redactor(*values: str) -> Redactor:
    r = Redactor()
    r.add(*values)
    return r


def test_nothing_registered_leaves_text_alone() -> None:
    assert Redactor().redact("password=hunter22") == "password=hunter22"


def test_plain_value_is_masked_everywhere() -> None:
    text = "password=hunter22 and again hunter22."

    assert redactor("hunter22").redact(text) == f"password={MASK} and again {MASK}."


def test_json_escaped_form_is_masked() -> None:
    text = json.dumps({"password": SECRET})
    assert SECRET not in text  # the JSON form differs from the value

    redacted = redactor(SECRET).redact(text)

    assert redacted == json.dumps({"password": MASK})


def test_url_encoded_forms_are_masked() -> None:
    r = redactor(SECRET)

    assert (
        r.redact(f"postgresql://u:{quote(SECRET, safe='')}@db/x") == f"postgresql://u:{MASK}@db/x"
    )
    assert r.redact(f"q?password={quote_plus(SECRET)}&x=1") == f"q?password={MASK}&x=1"


def test_values_shorter_than_four_characters_are_not_masked() -> None:
    r = redactor("abc", "1", "")

    assert r.redact("abc 1 db") == "abc 1 db"


def test_four_characters_are_masked() -> None:
    assert redactor("abcd").redact("xabcdx") == f"x{MASK}x"


def test_longest_value_wins_when_values_overlap() -> None:
    r = redactor("secret", "secret-plus-more")

    assert r.redact("a secret-plus-more b secret c") == f"a {MASK} b {MASK} c"
    assert "-plus-more" not in r.redact("secret-plus-more")


def test_overlap_registered_in_either_order() -> None:
    r = Redactor()
    r.add("token-long-value")
    r.add("token")

    assert r.redact("token-long-value") == MASK


def test_regex_characters_are_literal() -> None:
    r = redactor("a.b*c+(d)")

    assert r.redact("a.b*c+(d) aXbbbc+(d)") == f"{MASK} aXbbbc+(d)"


def test_values_added_later_are_masked_too() -> None:
    r = redactor("first-secret")
    r.add("second-secret")

    assert r.redact("first-secret second-secret") == f"{MASK} {MASK}"


def test_concurrent_adds_and_redacts() -> None:
    r = Redactor()
    values = [f"secret-value-{n:03d}" for n in range(200)]

    def add(chunk: list[str]) -> None:
        for value in chunk:
            r.add(value)
            r.redact(value)

    threads = [threading.Thread(target=add, args=(values[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert r.redact(" ".join(values)) == " ".join([MASK] * 200)


def test_safe_cut_never_splits_a_secret() -> None:
    redactor = Redactor()
    redactor.add("s3cr3t-value")
    text = "x" * 20 + "s3cr3t-va"  # the secret may continue in the next piece

    cut = redactor.safe_cut(text)

    assert cut <= 20
    assert "s3cr3t" not in text[:cut]
    assert Redactor().safe_cut(text) == len(text)  # nothing registered: cut anywhere


def test_json_form_without_ascii_escapes_is_masked() -> None:
    text = json.dumps({"password": SECRET}, ensure_ascii=False)
    assert SECRET not in text  # the quote is escaped, the é is not

    redacted = redactor(SECRET).redact(text)

    assert redacted == json.dumps({"password": MASK})


# A backslash, a quote, a tab and a non-ASCII letter, which repr() prints differently from
# the value; repr() writes the escape character \x1b where JSON writes \u001b.
REPR_SECRET = "p\\ss'wörd\t\x1b"


def test_python_repr_forms_are_masked() -> None:
    r = redactor(REPR_SECRET)
    double_quoted = repr(ValueError(f"bad password: {REPR_SECRET}"))
    single_quoted = repr(ValueError(f'bad "password": {REPR_SECRET}'))  # escapes the '
    assert REPR_SECRET not in double_quoted + single_quoted

    assert r.redact(double_quoted) == f'ValueError("bad password: {MASK}")'
    assert r.redact(single_quoted) == f"ValueError('bad \"password\": {MASK}')"


def test_forms_escaped_twice_are_masked() -> None:
    r = redactor(REPR_SECRET)
    texts = [
        repr({"context": [repr(ValueError(f"bad password: {REPR_SECRET}"))]}),
        json.dumps({"report": json.dumps({"password": REPR_SECRET})}),
        json.dumps({"error": repr(REPR_SECRET)}),
        repr(json.dumps({"password": REPR_SECRET})),
    ]

    for text in texts:
        redacted = r.redact(text)
        assert redacted.count(MASK) == 1, redacted
        # Every trace of the value ("p", "ss", "w", "rd" and its escapes) went with it.
        assert "rd" not in redacted.replace("password", ""), redacted


# Its standard base64 has a "/" where the URL-safe one has "_", and "==" padding.
BASE64_SECRET = "?>?>secret"


def test_base64_forms_are_masked() -> None:
    r = redactor(BASE64_SECRET)
    data = BASE64_SECRET.encode()

    for encoded in (base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()):
        assert r.redact(f"token={encoded};") == f"token={MASK};"
        assert r.redact(f"token={encoded.rstrip('=')};") == f"token={MASK};"


# Like SECRET, with a tail that puts a "+" or a "/" in its base64 (and in that of its
# JSON-escaped forms) at every alignment, so that the two alphabets differ.
EMBEDDED_SECRET = SECRET + "~?>~"

ALPHABETS = [
    pytest.param(base64.b64encode, id="standard"),
    pytest.param(base64.urlsafe_b64encode, id="url-safe"),
]


def assert_own_characters_masked(encoded: str, redacted: str, start: int, end: int) -> None:
    """Every character of ``encoded`` whose 6 bits all come from bytes [start, end) is masked.

    Only the characters that mix the secret's bits with its neighbours' may remain.
    """
    head, tail = redacted.split(MASK)
    assert encoded.startswith(head)
    assert encoded.endswith(tail)
    assert len(head) <= -(-8 * start // 6)  # the first character holding only secret bits
    assert len(encoded) - len(tail) >= 8 * end // 6  # the end of the last such character


@pytest.mark.parametrize("encode", ALPHABETS)
# 0 to 5 bytes before the value: every alignment in a 3-byte group, twice.
@pytest.mark.parametrize("prefix", ["", ":", "u:", "us:", "usr:", "user:"])
def test_value_inside_a_basic_auth_header_is_masked(
    prefix: str, encode: Callable[[bytes], bytes]
) -> None:
    credentials = encode(f"{prefix}{EMBEDDED_SECRET}".encode()).decode()

    redacted = redactor(EMBEDDED_SECRET).redact(f"Authorization: Basic {credentials}")

    assert redacted.startswith("Authorization: Basic ")
    encoded_part = redacted.removeprefix("Authorization: Basic ")
    end = len(f"{prefix}{EMBEDDED_SECRET}".encode())
    assert_own_characters_masked(credentials, encoded_part, len(prefix), end)


@pytest.mark.parametrize("encode", ALPHABETS)
@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("user", ["svc", "svc1", "svc12"])  # every alignment
def test_value_inside_a_base64_json_document_is_masked(
    user: str, ensure_ascii: bool, encode: Callable[[bytes], bytes]
) -> None:
    document = {"user": user, "password": EMBEDDED_SECRET, "db": "x"}
    data = json.dumps(document, ensure_ascii=ensure_ascii).encode()
    escaped = json.dumps(EMBEDDED_SECRET, ensure_ascii=ensure_ascii)[1:-1].encode()
    encoded = encode(data).decode()

    redacted = redactor(EMBEDDED_SECRET).redact(encoded)

    start = data.index(escaped)
    assert_own_characters_masked(encoded, redacted, start, start + len(escaped))


PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----\n"
)


def test_each_line_of_a_multiline_value_is_masked() -> None:
    r = redactor(PEM)

    for line in PEM.splitlines():
        assert r.redact(f"key: {line}\n") == f"key: {MASK}\n"


def test_lines_of_a_json_credential_are_masked_without_their_indent() -> None:
    credential = json.dumps({"type": "service_account", "private_key_id": "4f1c0e5d"}, indent=2)
    r = redactor(credential)

    printed = [r.redact(line) for line in credential.splitlines()]

    assert printed == ["{", f"  {MASK}", f"  {MASK}", "}"]  # "{" and "}" are too short


def test_safe_cut_never_splits_a_base64_form() -> None:
    r = redactor("s3cr3t-value-2024")
    encoded = base64.b64encode(b"s3cr3t-value-2024").decode()  # its longest form
    text = "x" * 40 + encoded[:-1]  # the "=" comes in the next piece

    cut = r.safe_cut(text)
    written = r.redact(text[:cut]) + r.redact(text[cut:] + encoded[-1] + " done")

    assert cut <= 40
    assert written == "x" * 40 + MASK + " done"


def test_longest_value_wins_among_values_sharing_prefixes() -> None:
    r = redactor("pass", "password", "password1", "passwords", "passphrase")

    assert r.redact("password1 passwords passphrase password passw") == " ".join(
        [MASK, MASK, MASK, MASK, f"{MASK}w"]
    )


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.text(alphabet="ab", min_size=4, max_size=9), min_size=1, max_size=25),
    data=st.data(),
)
def test_every_value_is_masked_whole(values: list[str], data: st.DataObject) -> None:
    text = data.draw(st.lists(st.sampled_from(values), min_size=1, max_size=10))

    assert redactor(*values).redact(" ".join(text)) == " ".join([MASK] * len(text))


# A long text is pre-checked by the characters it lacks. Ingestion output lacks most of
# a form's rarer characters, which rules every form out; a text holding every character
# rules none out, and every form is looked for.
LOG_LINE = (
    "[2026-11-22 10:00:00,123] INFO     {datahub.ingestion.source.sql.sql_common:712} - "
    "Processed table urn:li:dataset:(urn:li:dataPlatform:postgres,db.public.orders_000123,"
    "PROD) with 42 columns\n"
)
EVERY_CHARACTER = "".join(map(chr, range(32, 127))) + "\t\x1bé\n"
LONG_TEXTS = [
    pytest.param(LOG_LINE * (1 + FILTER_MIN_CHARS // len(LOG_LINE)), id="log"),
    pytest.param(EVERY_CHARACTER * (1 + FILTER_MIN_CHARS // len(EVERY_CHARACTER)), id="every"),
]


@pytest.mark.parametrize("filler", LONG_TEXTS)
@pytest.mark.parametrize("secret", [SECRET, REPR_SECRET, EMBEDDED_SECRET])
def test_every_form_is_masked_in_a_long_text(secret: str, filler: str) -> None:
    r = redactor(secret)
    assert r.redact(filler) == filler  # holds no form

    for form in sorted(_forms(secret)):
        text = f"{filler}{form}\n{filler}"

        assert r.redact(text) == f"{filler}{MASK}\n{filler}", form


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_a_long_text_is_redacted_as_its_lines_are(data: st.DataObject) -> None:
    # Short lines take the regex pre-check, the long text the character filter.
    values = [SECRET, "s3cr3t-Pa55word!", "eyJhbGciOiJIUzI1NiJ9.bench-token-4f9a2c"]
    forms = sorted(set().union(*map(_forms, values)))
    r = redactor(*values)
    pieces = st.sampled_from([*forms, LOG_LINE, EVERY_CHARACTER, "x", " "])
    lines = data.draw(st.lists(st.lists(pieces, max_size=4).map("".join), max_size=60))
    text = "\n".join([*lines, LOG_LINE * (1 + FILTER_MIN_CHARS // len(LOG_LINE))])

    assert r.redact(text) == "\n".join(map(r.redact, text.split("\n")))
