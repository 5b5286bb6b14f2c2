"""Redactor: every form a secret takes in text is masked; short values are not."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote, quote_plus

from remote_executor.secrets import MASK, Redactor

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
