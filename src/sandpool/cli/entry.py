"""The ``sandpool`` console script: ``sandpool run`` goes to a warm ``sandpool serve`` when one
listens (importing only the thin client), everything else to the click CLI."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    if args[:1] == ["run"]:
        from sandpool.warm.client import run_served

        code = run_served(args[1:])
        if code is not None:
            sys.exit(code)
    from sandpool.cli.main import main as cli_main

    cli_main()
