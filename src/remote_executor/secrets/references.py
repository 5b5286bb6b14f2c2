"""Find the ``${NAME}`` references of a recipe: the names a task needs resolved."""

from __future__ import annotations

import re

# ${NAME}, ${NAME:-default} and ${NAME-default}, as the datahub CLI expands them.
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-[^}]*)?\}")
# A value that starts with a bare $NAME: the CLI expands it when the variable is set and
# keeps the text as it is otherwise, so such a name is optional.
_BARE = re.compile(r"""(?:^|[\s:'"\[,{])\$([A-Za-z_][A-Za-z0-9_]*)""", re.MULTILINE)


def find_references(text: str) -> tuple[set[str], set[str]]:
    """The names a recipe needs (no default) and those it can do without (has a default)."""
    required: set[str] = set()
    optional: set[str] = set()
    for match in _REFERENCE.finditer(text):
        (optional if match.group(2) else required).add(match.group(1))
    optional.update(match.group(1) for match in _BARE.finditer(text))
    return required, optional - required
