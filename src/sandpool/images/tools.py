"""The images package's door to skopeo and umoci, through sandpool's one subprocess runner.

``run_tool`` returns stdout; every failure becomes ``ToolFailed`` (an ImageError that keeps the
argv, exit status and stderr), which the caller turns into ImageNotFound or InvalidImage naming
the reference. Thread-safe: it keeps no state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from sandpool.errors import ImageError, RuntimeNotAvailable, RuntimeTimeout
from sandpool.runtime.runner import run_command

__all__ = ["ToolFailed", "run_tool"]

_PACKAGES = {"skopeo": "skopeo", "umoci": "umoci"}


class ToolFailed(ImageError):
    """An image tool exited non-zero, was missing, or ran past its timeout."""

    def __init__(
        self, argv: Sequence[str], status: int | None, stderr: str, *, timed_out: bool = False
    ) -> None:
        self.argv = list(argv)
        self.status = status
        self.stderr = stderr
        self.timed_out = timed_out
        lines = stderr.strip().splitlines()
        super().__init__(f"{self.argv[0]} failed: {lines[-1] if lines else 'no stderr'}")

    @property
    def detail(self) -> str:
        """The tool's own last words, without logrus decoration."""
        lines = self.stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        if 'msg="' in last:
            last = last.split('msg="', 1)[1].rstrip('"')
        return last.replace('\\"', '"')


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> str:
    """Run ``argv`` (skopeo, umoci, ldd...) and return its stdout; raise ToolFailed otherwise."""
    full_env = {**os.environ, **env} if env else None
    try:
        result = run_command(argv, timeout=timeout, check=False, env=full_env)
    except RuntimeNotAvailable as exc:
        package = _PACKAGES.get(os.path.basename(argv[0]), argv[0])
        raise ToolFailed(
            argv, None, f"{argv[0]} not found (install the {package} package; ./setup.sh does)"
        ) from exc
    except RuntimeTimeout as exc:
        raise ToolFailed(argv, None, f"no answer within {timeout:g}s", timed_out=True) from exc
    if check and result.status != 0:
        raise ToolFailed(argv, result.status, result.stderr)
    return result.stdout
