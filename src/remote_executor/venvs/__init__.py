"""The CLI version and plugins each request asks for: parsed (``asks``), read from the
package (``packages``, ``facts``), installed by uv (``installer``), kept in a bounded
cache (``cache``), and chosen per run (``environments``)."""

from remote_executor.venvs.asks import Kind, VersionAsk, parse_version, plugin_names
from remote_executor.venvs.environments import (
    Chosen,
    EnvironmentAsk,
    Environments,
    VenvConfig,
)
from remote_executor.venvs.installer import Cancelled, Installer, Stopper

__all__ = [
    "Cancelled",
    "Chosen",
    "EnvironmentAsk",
    "Environments",
    "Installer",
    "Kind",
    "Stopper",
    "VenvConfig",
    "VersionAsk",
    "parse_version",
    "plugin_names",
]
