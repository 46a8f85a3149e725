"""The ``sandpool`` console script: ``sandpool run`` goes to a warm ``sandpool serve`` when one
listens (importing only the thin client), everything else to the click CLI."""

from __future__ import annotations

import sys

from sandpool.stdfds import fill_closed_std_fds, reopen_std_streams

__all__ = ["main"]


def main() -> None:
    """Console-script entry point."""
    # Before anything opens a descriptor: a closed 0/1/2 must not be taken by one of ours.
    reopen_std_streams(fill_closed_std_fds())
    args = sys.argv[1:]
    if args[:1] == ["run"]:
        from sandpool.warm.client import run_served

        code = run_served(args[1:])
        if code is not None:
            sys.exit(code)
    from sandpool.cli.main import main as cli_main

    cli_main()
