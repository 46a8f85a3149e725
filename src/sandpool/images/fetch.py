"""Getting an image's bytes: skopeo copies any source into a local OCI layout, umoci unpacks it.

Neither step is done by hand here: skopeo speaks the registry protocol and reads archives, umoci
applies layers in order, whiteouts included. Tool failures are translated into ImageNotFound or
InvalidImage, each naming the reference the user wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

from sandpool.errors import ImageError, ImageNotFound, InvalidImage
from sandpool.images.reference import Reference, Transport
from sandpool.images.tools import ToolFailed, run_tool

__all__ = ["classify_failure", "copy_to_layout", "skopeo_copy_argv", "unpack_rootfs"]

# (substring of skopeo's last stderr line, error class, what to tell the user); first match wins.
_FAILURES: tuple[tuple[str, type[ImageError], str], ...] = (
    ("no image found in manifest list", InvalidImage, "has no image for this host's platform"),
    ("loading tar component manifest.json", InvalidImage, "is not a docker archive"),
    ("untarring file", InvalidImage, "is not an OCI archive"),
    ("is a directory", InvalidImage, "is a directory, not an archive"),
    ("no descriptor found for reference", ImageNotFound, "has no such tag"),
    ("no such file or directory", ImageNotFound, "does not exist"),
    ("manifest unknown", ImageNotFound, "is not in the registry"),
    ("name unknown", ImageNotFound, "is not in the registry"),
    ("unauthorized", ImageNotFound, "is not in the registry or needs credentials"),
    ("denied", ImageNotFound, "is not in the registry or needs credentials"),
    ("connection refused", ImageNotFound, "cannot be pulled: the registry refused the connection"),
    ("no such host", ImageNotFound, "cannot be pulled: the registry host is unknown"),
    ("deadline exceeded", ImageNotFound, "cannot be pulled: the registry did not answer in time"),
    ("i/o timeout", ImageNotFound, "cannot be pulled: the registry did not answer in time"),
    ("not found", ImageNotFound, "does not exist"),
)


def classify_failure(reference: Reference, failure: ToolFailed) -> ImageError:
    """Turn a skopeo failure into ImageNotFound or InvalidImage naming the reference."""
    detail = failure.detail
    lowered = detail.lower()
    if failure.timed_out:
        return ImageNotFound(
            f"image {reference.text!r} cannot be pulled: no answer in time", hint=detail
        )
    if failure.status is None:  # the tool itself is missing
        return InvalidImage(f"image {reference.text!r} cannot be read: {detail}")
    for needle, error, what in _FAILURES:
        if needle in lowered:
            return error(f"image {reference.text!r} {what}", hint=detail)
    return InvalidImage(f"image {reference.text!r} is not a usable image", hint=detail)


def skopeo_copy_argv(
    reference: Reference, source: str, layout: Path, tag: str, *, timeout: float
) -> list[str]:
    """The skopeo command line that copies ``source`` into ``layout:tag``."""
    argv = ["skopeo", f"--command-timeout={max(1, int(timeout))}s", "copy", "--quiet"]
    if reference.transport is Transport.DOCKER:
        argv += ["--retry-times=1", f"--src-tls-verify={str(not reference.insecure).lower()}"]
    return [*argv, source, f"oci:{layout}:{tag}"]


def copy_to_layout(
    reference: Reference, source: str, layout: Path, tag: str, *, timeout: float, tmp: Path
) -> None:
    """Copy the image ``source`` into the OCI layout ``layout`` under ``tag`` with skopeo."""
    argv = skopeo_copy_argv(reference, source, layout, tag, timeout=timeout)
    try:
        run_tool(argv, timeout=timeout + 15, env={"TMPDIR": str(tmp)})
    except ToolFailed as exc:
        raise classify_failure(reference, exc) from exc


def unpack_rootfs(
    reference: Reference, layout: Path, tag: str, dest: Path, *, timeout: float
) -> None:
    """Unpack ``layout:tag`` into the directory ``dest`` (created) with umoci."""
    argv = ["umoci", "--log=error", "raw", "unpack", "--image", f"{layout}:{tag}", str(dest)]
    if os.geteuid() != 0:  # keep what we can of ownership without root
        argv.insert(4, "--rootless")
    try:
        run_tool(argv, timeout=timeout)
    except ToolFailed as exc:
        raise InvalidImage(f"image {reference.text!r} cannot be unpacked", hint=exc.detail) from exc
