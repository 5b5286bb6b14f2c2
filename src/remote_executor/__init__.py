"""remote-executor: a pull-based remote executor for DataHub metadata ingestion."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("remote-executor")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
