"""``python -m remote_executor`` is the ``executor`` command."""

from remote_executor.cli import main

main()
