"""The worker image (``Containerfile``): built from a sandpool checkout with podman or buildah.

The tag defaults to ``worker.imageRegistry/imageName:imageTag``, the reference the rendered
Kubernetes objects run, so what is built here is what the cluster runs: an image the user
owns, never a third party's run with ``privileged: true``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandpool.errors import ImageError

__all__ = ["CONTAINERFILE", "TOOLS", "WorkerBuild", "build_worker_image", "find_context"]

CONTAINERFILE = "Containerfile"
TOOLS = ("podman", "buildah")


def find_context(start: Path | None = None) -> Path:
    """The checkout holding the Containerfile: ``start``, else the one this package runs from."""
    here = Path(__file__).resolve()
    candidates = (
        [start] if start else [here.parents[3], Path.cwd()]
    )  # <checkout>/src/sandpool/images
    for directory in candidates:
        if (directory / CONTAINERFILE).is_file() and (directory / "pyproject.toml").is_file():
            return directory
    where = start or candidates[0]
    raise ImageError(
        f"no {CONTAINERFILE} and pyproject.toml in {where}",
        hint="build-worker builds from a sandpool source checkout: pass --context DIR",
    )


@dataclass(frozen=True)
class WorkerBuild:
    """One build of the worker image."""

    context: Path
    tag: str
    base: str | None = None  # the Containerfile's BASE (a Debian bookworm image)
    tool: str = "podman"
    ca_file: Path | None = None  # a CA bundle for pip (a build secret: not in the image)

    def argv(self) -> list[str]:
        """``podman build`` / ``buildah bud`` with the Containerfile, the tag and the base."""
        verb = ["buildah", "bud"] if self.tool == "buildah" else [self.tool, "build"]
        args = [*verb, "-f", str(self.context / CONTAINERFILE), "-t", self.tag]
        if self.base:
            args += ["--build-arg", f"BASE={self.base}"]
        if self.ca_file:
            args += ["--secret", f"id=build-ca,src={self.ca_file}"]
        return [*args, str(self.context)]


def pick_tool(wanted: str | None, which: Callable[[str], str | None] = shutil.which) -> str:
    """``wanted``, else the first of podman and buildah on PATH; ImageError if none is."""
    for tool in [wanted] if wanted else TOOLS:
        if which(tool):
            return tool
    names = wanted or " or ".join(TOOLS)
    raise ImageError(f"{names} not found", hint="install podman (Debian: apt-get install podman)")


def build_worker_image(
    build: WorkerBuild, run: Callable[[Sequence[str]], int] | None = None
) -> None:
    """Run the build, its output going to this process's stdout/stderr; ImageError if it fails."""
    # Not through run_tool: a build takes minutes and its progress is the user's only feedback.
    run = run or (lambda argv: subprocess.run(list(argv), check=False).returncode)
    status = run(build.argv())
    if status != 0:
        raise ImageError(
            f"{build.tool} build of {build.tag} failed (exit {status})",
            hint="its output above names the step; the build needs Debian's mirror and PyPI",
        )
