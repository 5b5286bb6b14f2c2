"""Masks resolved secret values wherever the executor writes text.

Masked forms of a value:

- the value itself;
- its JSON-escaped forms, with ``ensure_ascii`` on and off (inside a JSON report);
- its URL-encoded forms, ``quote`` and ``quote_plus`` (inside a connection URI);
- its Python ``repr`` forms, in single and in double quotes (inside an exception
  message such as ``ValueError('bad password: ...')``);
- each of those escaped forms escaped once more, JSON or ``repr`` (a JSON string
  inside a JSON string, an exception's repr inside a printed report);
- its base64 forms, standard and URL-safe alphabets, with and without ``=`` padding;
- the value, or its JSON-escaped form, inside a larger base64 text (an HTTP Basic
  header, a base64 JSON document): for each of the three byte alignments and both
  alphabets, the run of base64 characters that carry the value's bits alone;
- each line of a multi-line value (a PEM key, a JSON credential), stripped of
  surrounding whitespace, because output is redacted line by line.

Values shorter than 4 characters are not masked, and neither is any derived form
(a base64 run, a line) shorter than 4 characters: masking "1" or "db" would make
every log unreadable while protecting nothing.

Most text holds none of the forms, so ``redact`` first checks cheaply whether it can
hold one. A short text is searched, in one regex, for a 4-character piece of every
form. A long text (up to a megabyte of a child's output) is first asked which
characters it lacks: a form can only occur where all its characters do, and
``char in text`` runs at memory speed where a regex, stepping character by
character, does not. The few forms left are then searched for whole.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterable
from itertools import groupby
from os.path import commonprefix
from typing import NamedTuple
from urllib.parse import quote, quote_plus

MASK = "********"
MIN_SECRET_LENGTH = 4

# Characters of ingestion output, most frequent first, roughly as measured on `datahub
# ingest` logs; a character not listed is rarer than all of them. Only speed depends on
# this order: the pre-check regex looks for each form from one of its rarest characters,
# and the character filter looks for the rarest characters first.
_BY_FREQUENCY = " etasinro-_':ucl0dp1\n,2m.ghbfk6y/=w{}5v7[]938q4()P\"IFANOSERWTBDCMGVzUL"
_RARITY = {char: rank for rank, char in enumerate(_BY_FREQUENCY)}
# From this length on, a text is pre-checked by the characters it lacks. Below it (a log
# line) the regex takes a few microseconds, about what the filter's setup takes with a
# few hundred forms registered.
FILTER_MIN_CHARS = 1024
# The forms the character filter leaves are looked for one by one. Each ``in`` costs
# about a twentieth of a pass of the pre-check regex, which on varied text often finds a
# piece and then costs a pass of the forms regex too; with more forms left, the regex
# is cheaper.
_MAX_SEARCHES = 24

_Encoder = Callable[[bytes], bytes]


class _Patterns(NamedTuple):
    """One snapshot of the registered forms, which readers use without the lock."""

    precheck: re.Pattern[str]  # a piece of every form: no match means no form
    forms: re.Pattern[str]  # every form; the longest where several start at one place
    longest: int
    all_forms: frozenset[str]
    # Each character of any form with the forms that hold it, rarest character first.
    holders: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def of(cls, forms: set[str]) -> _Patterns:
        """The patterns and the character index of ``forms``."""
        return cls(
            precheck=re.compile(_trie(_anchors(forms))),
            forms=re.compile(_trie(forms)),
            longest=max(len(form) for form in forms),
            all_forms=frozenset(forms),
            holders=_holders(forms),
        )

    def may_hold(self, text: str) -> bool:
        """False only if ``text`` holds none of the forms."""
        if len(text) >= FILTER_MIN_CHARS:
            suspects = self._suspects(text)
            if len(suspects) <= _MAX_SEARCHES:
                return any(form in text for form in suspects)
        return self.precheck.search(text) is not None

    def _suspects(self, text: str) -> set[str]:
        """The forms whose every character occurs in ``text``: no other form can occur.

        Rarest characters first, so that usually a few absent ones rule out every form;
        a character held only by forms already ruled out is not looked for: each look
        scans the whole text when the character is absent.
        """
        suspects = set(self.all_forms)
        for char, holding in self.holders:
            if not suspects.isdisjoint(holding) and char not in text:
                suspects -= holding
                if not suspects:
                    break
        return suspects


class Redactor:
    """A thread-safe set of values to mask, shared by the worker's logs and every task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        self._patterns: _Patterns | None = None

    def add(self, *values: str) -> None:
        """Register values; every later ``redact`` masks them."""
        forms: set[str] = set()
        for value in values:
            forms |= _forms(value)
        with self._lock:
            if forms <= self._forms:
                return
            self._forms |= forms
            self._patterns = _Patterns.of(self._forms)

    def safe_cut(self, text: str) -> int:
        """Where ``text`` can be cut so that no secret straddles the cut.

        For output read in pieces: everything before the cut can be redacted and
        written; the rest must wait for the next piece.
        """
        patterns = self._patterns
        if patterns is None:
            return len(text)
        longest = patterns.longest
        cut = max(0, len(text) - longest + 1)
        for match in patterns.forms.finditer(text, max(0, cut - longest)):
            if match.start() < cut < match.end():
                return match.start()
        return cut

    def redact(self, text: str) -> str:
        """The text with every registered value masked."""
        patterns = self._patterns
        if patterns is None or not patterns.may_hold(text):
            return text
        return patterns.forms.sub(MASK, text)


def _forms(value: str) -> set[str]:
    """Every form of ``value`` to mask; none for a value too short to mask."""
    if len(value) < MIN_SECRET_LENGTH:
        return set()
    escaped = _escapes(value)
    # Escaped twice: a JSON string inside a JSON string, a repr printed inside a repr.
    twice = {form for text in escaped for form in _escapes(text)}
    forms = {value, *escaped, *twice, quote(value, safe=""), quote_plus(value)}
    # A base64 JSON document holds the value JSON-escaped.
    texts = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms |= _base64_forms(data, encode)
    if "\n" in value:
        forms.update(line.strip() for line in value.splitlines())
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _escapes(value: str) -> set[str]:
    """``value`` JSON-escaped (``ensure_ascii`` on and off) and ``repr``-escaped."""
    return {
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        *_repr_forms(value),
    }


def _repr_forms(value: str) -> set[str]:
    """``repr(value)[1:-1]`` in both quote styles Python prints.

    ``repr`` escapes each character on its own (backslash, tab, non-printable
    characters) and escapes ``'`` only when it quotes with ``'``. Which quote it picks
    depends on the whole text, so inside an exception message either can happen.
    """
    body = "".join(repr(char)[1:-1] for char in value)
    return {body, body.replace("'", "\\'")}


def _base64_forms(data: bytes, encode: _Encoder) -> set[str]:
    """``data`` encoded alone, padded and not, and its runs inside any longer encoding."""
    whole = encode(data).decode("ascii")
    forms = {whole, whole.rstrip("=")}
    for offset in range(3):
        # Each character carries 6 bits; keep those whose bits all come from ``data``
        # when it starts ``offset`` bytes into a 3-byte group. The zero bytes only fill
        # the groups at both ends: the characters that would carry them are dropped.
        encoded = encode(bytes(offset) + data + bytes(2)).decode("ascii")
        forms.add(encoded[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6])
    return forms


def _anchors(forms: Iterable[str]) -> list[str]:
    """A piece of ``MIN_SECRET_LENGTH`` characters of each form, for the pre-check.

    A pattern that starts with any of many characters stops at almost every position
    of a line; pieces that start at a few rare characters let it skip most of them.
    Short forms, which have the fewest choices, choose first; later forms reuse an
    already chosen character where they hold one.
    """
    starts: set[str] = set()
    anchors: list[str] = []
    for form in sorted(forms, key=lambda form: (len(form), form)):
        candidates = form[: len(form) - MIN_SECRET_LENGTH + 1]
        start = max(sorted(starts.intersection(candidates)) or candidates, key=_rarity)
        starts.add(start)
        index = candidates.index(start)
        anchors.append(form[index : index + MIN_SECRET_LENGTH])
    return anchors


def _rarity(char: str) -> int:
    return _RARITY.get(char, len(_RARITY))


def _holders(forms: Iterable[str]) -> tuple[tuple[str, frozenset[str]], ...]:
    """Each character of ``forms`` with the forms that hold it, rarest first.

    Among equally rare characters, the one held by more forms first: its absence rules
    out more of them.
    """
    holding: dict[str, set[str]] = {}
    for form in forms:
        for char in set(form):
            holding.setdefault(char, set()).add(form)
    order = sorted(holding, key=lambda char: (-_rarity(char), -len(holding[char]), char))
    return tuple((char, frozenset(holding[char])) for char in order)


def _trie(strings: Iterable[str]) -> str:
    """A regex matching any of ``strings``, shaped as a trie: common prefixes are shared.

    A flat ``a|b|c`` alternation tries every string at every position of the text. Here
    each choice is between branches that start with different characters, so at most
    one of them gets past its first character. Where a string ends and a longer one
    goes on, the longer branch comes first: as with an alternation sorted longest
    first, the match is the longest string that starts at that position.
    """
    return _branches(sorted(set(strings)), top=True)


def _branches(strings: list[str], top: bool = False) -> str:
    # ``strings`` is sorted, so "" (a string that ends here) comes first.
    rest = strings[1:] if strings[0] == "" else strings
    branches = []
    for _, group in groupby(rest, key=lambda string: string[0]):
        members = list(group)
        prefix = commonprefix(members)  # noqa: RUF071 (character by character, as wanted)
        tails = [member[len(prefix) :] for member in members]
        branches.append(re.escape(prefix) + (_branches(tails) if tails != [""] else ""))
    body = "|".join(branches)
    if len(rest) < len(strings):
        return f"(?:{body}|)"
    return body if top or len(branches) == 1 else f"(?:{body})"
