"""The default image's root filesystem: busybox for ``sh`` plus Debian's own Python 3.

Built from this host's files, not a registry (none is reachable where sandpool is set up): the
busybox rootfs with every applet linked, the host's ``/usr/bin/python3.<minor>`` (the one
``/usr/bin/python3`` names, e.g. 3.11 on bookworm, 3.13 on trixie) from Debian's package,
its standard library without the test suite, tkinter, IDLE and the static libpython, and every
shared library ``ldd`` names for the interpreter and its extension modules. ``./setup.sh`` builds
it once; the store packs it as an OCI image like any other.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from sandpool.errors import ImageNotFound
from sandpool.images.busybox import build_busybox_rootfs
from sandpool.images.tools import run_tool

__all__ = ["PYTHON", "STDLIB", "build_default_rootfs", "host_python", "shared_libraries"]

_VERSIONED = re.compile(r"^python(3\.\d+)$")


def host_python(bin_dir: Path = Path("/usr/bin")) -> Path:
    """The host's Debian Python 3: what ``python3`` links to (``python3.11``), else the
    newest ``python3.<minor>`` there; ``python3.11`` when there is none (named as missing)."""
    with contextlib.suppress(OSError):
        target = os.readlink(bin_dir / "python3")
        if _VERSIONED.match(target) and (bin_dir / target).exists():
            return bin_dir / target
    with contextlib.suppress(OSError):
        found = [m[1] for m in map(_VERSIONED.match, os.listdir(bin_dir)) if m]
        if found:
            newest = max(found, key=lambda v: int(v.split(".")[1]))
            return bin_dir / f"python{newest}"
    return bin_dir / "python3.11"


PYTHON = host_python()
VERSION = PYTHON.name.removeprefix("python")  # "3.11"
STDLIB = PYTHON.parent.parent / "lib" / PYTHON.name
_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data"}
_SKIP_PREFIX = f"config-{VERSION}"


def _require(path: Path) -> None:
    if not path.exists():
        raise ImageNotFound(
            f"image 'builtin:default' cannot be built: {path} is missing",
            hint=f"install Debian's python3 package, {PYTHON.name} (./setup.sh does it)",
        )


def shared_libraries(binaries: Iterable[Path]) -> set[Path]:
    """Every shared library (and the dynamic loader) that ``ldd`` lists for ``binaries``."""
    # ldd exits 1 when one file is not dynamic; the others' lists are still right.
    out = run_tool(["ldd", *(str(b) for b in binaries)], timeout=60, check=False)
    libraries: set[Path] = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/") and ".so" in word and not word.endswith(":"):
                libraries.add(Path(word))
    return libraries


def _ignore(directory: str, names: list[str]) -> set[str]:
    if os.path.abspath(directory) != str(STDLIB):
        return set()
    return {n for n in names if n in _SKIP or n.startswith(_SKIP_PREFIX)}


def _copy_file(source: Path, root: Path) -> None:
    dest = root / source.relative_to("/")
    if dest.exists() or dest.is_symlink():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.resolve(), dest)


def _link_applets(root: Path) -> None:
    busybox = "/bin/busybox"  # where build_busybox_rootfs put it; static, so it runs here too
    listing = run_tool([str(root / "bin" / "busybox"), "--list-full"], timeout=30)
    for relative in listing.split():
        if relative == "linuxrc":  # an init for initramfs, not a tool
            continue
        link = root / relative
        if not (link.exists() or link.is_symlink()):
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(busybox, link)


def _add_python(root: Path) -> None:
    shutil.copytree(STDLIB, root / STDLIB.relative_to("/"), symlinks=True, ignore=_ignore)
    _copy_file(PYTHON, root)
    for name in ("python3", "python"):
        (root / "usr" / "bin" / name).unlink(missing_ok=True)
        os.symlink(PYTHON.name, root / "usr" / "bin" / name)
    dynload = sorted((STDLIB / "lib-dynload").glob("*.so"))
    for library in shared_libraries([PYTHON, *dynload]):
        _copy_file(library, root)


def build_default_rootfs(dest: Path) -> Path:
    """Build the default image's rootfs (sh + python3) into the new directory ``dest``."""
    _require(PYTHON)
    _require(STDLIB / "os.py")
    build_busybox_rootfs(dest)
    _link_applets(dest)
    _add_python(dest)
    (dest / "etc" / "os-release").write_text(
        'NAME="sandpool default image"\nID=sandpool\nPRETTY_NAME="sandpool default '
        f'(busybox + Debian {PYTHON.name})"\n'
    )
    return dest
