"""The ``${NAME}`` references of a recipe: which names a task needs resolved, and under
which variable name the child sees each.

A name is letters, digits, underscores and hyphens (users name secrets
``db-password``). The ``datahub`` CLI expands ``${...}`` with expandvars, which reads
``${db-password}`` as the variable ``db`` with the default ``password``; so a name
that is not a shell identifier is renamed, in the recipe the child gets and in the
values handed to it, to ``EXECUTOR_SECRET_<encoded name>``. For the same reason the
colon-less default form ``${NAME-default}`` is read as the name ``NAME-default``;
``${NAME:-default}`` is the default form.
"""

from __future__ import annotations

import re

# ${NAME} and ${NAME:?message} are required; ${NAME:-default}, ${NAME:=default} and
# ${NAME:+other} can do without a value, as expandvars expands them.
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_-]+)(?::([-=+?])[^}]*)?\}")
# A value that starts with a bare $NAME: the CLI expands it when the variable is set and
# keeps the text as it is otherwise, so such a name is optional.
_BARE = re.compile(r"""(?:^|[\s:'"\[,{])\$([A-Za-z_][A-Za-z0-9_]*)""", re.MULTILINE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RENAMED_PREFIX = "EXECUTOR_SECRET_"


def find_references(text: str) -> tuple[set[str], set[str]]:
    """The names a recipe needs (no default) and those it can do without (has a default)."""
    required: set[str] = set()
    optional: set[str] = set()
    for match in _REFERENCE.finditer(text):
        operator = match.group(2)
        if operator and not _IDENTIFIER.fullmatch(match.group(1)):
            continue  # the CLI cannot apply an operator to a name it cannot read
        (optional if operator in ("-", "=", "+") else required).add(match.group(1))
    optional.update(match.group(1) for match in _BARE.finditer(text))
    return required, optional - required


def variable_name(name: str) -> str:
    """The variable the child reads ``name`` from: itself, if the CLI can expand it.

    Other names are encoded so that no two names meet: ``_`` becomes ``__`` and ``-``
    becomes ``_h``; a leading digit is kept after the prefix.
    """
    if _IDENTIFIER.fullmatch(name):
        return name
    return RENAMED_PREFIX + name.replace("_", "__").replace("-", "_h")


def rename_references(text: str) -> str:
    """``text`` with every ``${name}`` the CLI could not expand renamed to its variable."""

    def rename(match: re.Match[str]) -> str:
        name = match.group(1)
        if match.group(2) or _IDENTIFIER.fullmatch(name):
            return match.group(0)
        return "${" + variable_name(name) + "}"

    return _REFERENCE.sub(rename, text)
