"""Secrets: find the references of a recipe, resolve them, and mask them everywhere."""

from remote_executor.secrets.base import SecretResolver
from remote_executor.secrets.memory import StaticSecretResolver
from remote_executor.secrets.redact import MASK, Redactor
from remote_executor.secrets.references import find_references

__all__ = ["MASK", "Redactor", "SecretResolver", "StaticSecretResolver", "find_references"]
