"""Secrets: find the references of a recipe, resolve them from their sources, mask them."""

from remote_executor.secrets.base import SecretResolver
from remote_executor.secrets.memory import MemorySecretResolver
from remote_executor.secrets.redact import MASK, Redactor
from remote_executor.secrets.references import find_references, rename_references, variable_name
from remote_executor.secrets.sources import Resolved, SecretSources

__all__ = [
    "MASK",
    "MemorySecretResolver",
    "Redactor",
    "Resolved",
    "SecretResolver",
    "SecretSources",
    "find_references",
    "rename_references",
    "variable_name",
]
