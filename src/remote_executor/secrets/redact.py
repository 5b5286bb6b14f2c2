"""Masks resolved secret values wherever the executor writes text.

Masked forms: the value itself, its JSON-escaped form (as it appears inside a
JSON report) and its URL-encoded forms (as it appears inside a connection URI).
Values shorter than 4 characters are not masked: masking "1" or "db" would
make every log unreadable while protecting nothing.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "********"
MIN_SECRET_LENGTH = 4


class Redactor:
    """A thread-safe set of values to mask, shared by the worker's logs and every task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: str) -> None:
        """Register values; every later ``redact`` masks them."""
        forms = set()
        for value in values:
            if len(value) < MIN_SECRET_LENGTH:
                continue
            forms |= {value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value)}
        with self._lock:
            if forms <= self._forms:
                return
            self._forms |= forms
            ordered = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def safe_cut(self, text: str) -> int:
        """Where ``text`` can be cut so that no secret straddles the cut.

        For output read in pieces: everything before the cut can be redacted and
        written; the rest must wait for the next piece.
        """
        pattern = self._pattern
        if pattern is None:
            return len(text)
        longest = max(len(form) for form in self._forms)
        cut = max(0, len(text) - longest + 1)
        for match in pattern.finditer(text, max(0, cut - longest)):
            if match.start() < cut < match.end():
                return match.start()
        return cut

    def redact(self, text: str) -> str:
        """The text with every registered value masked."""
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(MASK, text)
