"""Images sandpool builds on this machine (``builtin:NAME``), packed as OCI layouts with umoci.

A builtin is a rootfs builder plus the image config to stamp on it; ``pack_layout`` turns the
rootfs directory into a one-layer OCI image, so the store caches it like any pulled image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sandpool.errors import ImageNotFound, InvalidImage
from sandpool.images.busybox import build_busybox_rootfs
from sandpool.images.tools import ToolFailed, run_tool

__all__ = ["BUILTINS", "DEFAULT_PATH_ENV", "Builtin", "builtin", "pack_layout"]

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PACK_TIMEOUT = 300.0


@dataclass(frozen=True)
class Builtin:
    """One locally built image: ``version`` changes whenever its builder's output would."""

    name: str
    version: str
    build_rootfs: Callable[[Path], object]
    env: tuple[str, ...] = (DEFAULT_PATH_ENV,)
    cmd: tuple[str, ...] = ("/bin/sh",)
    labels: dict[str, str] = field(default_factory=dict)


def _build_default_rootfs(dest: Path) -> object:
    from sandpool.images.default_image import build_default_rootfs

    return build_default_rootfs(dest)


BUILTINS: dict[str, Builtin] = {
    "busybox": Builtin("busybox", "1", build_busybox_rootfs),
    "default": Builtin(
        "default", "1", _build_default_rootfs, env=(DEFAULT_PATH_ENV, "LANG=C.UTF-8")
    ),
}


def builtin(name: str) -> Builtin:
    """The builtin image called ``name``; ImageNotFound naming the choices otherwise."""
    try:
        return BUILTINS[name]
    except KeyError:
        choices = ", ".join(f"builtin:{n}" for n in sorted(BUILTINS))
        raise ImageNotFound(
            f"image 'builtin:{name}' does not exist", hint=f"have {choices}"
        ) from None


def _config_argv(image: Builtin, target: str) -> list[str]:
    argv = ["umoci", "config", "--image", target, "--author", "sandpool", "--clear=config.env"]
    argv += [f"--config.env={e}" for e in image.env]
    argv += ["--clear=config.cmd", *(f"--config.cmd={c}" for c in image.cmd)]
    argv += [f"--config.label={k}={v}" for k, v in sorted(image.labels.items())]
    return [*argv, "--config.workingdir=/"]


def pack_layout(image: Builtin, rootfs: Path, layout: Path, tag: str) -> None:
    """Create the OCI layout ``layout`` holding ``rootfs`` as the one layer of ``layout:tag``."""
    target = f"{layout}:{tag}"
    steps = (
        ["umoci", "init", "--layout", str(layout)],
        ["umoci", "new", "--image", target],
        ["umoci", "insert", "--image", target, str(rootfs), "/"],
        _config_argv(image, target),
    )
    try:
        for argv in steps:
            run_tool(argv, timeout=_PACK_TIMEOUT)
    except ToolFailed as exc:
        raise InvalidImage(
            f"image 'builtin:{image.name}' cannot be built", hint=exc.detail
        ) from exc
