"""Reading an OCI image layout on disk: the manifest digest of a tag and the image's config.

Pure file reads of JSON blobs (no tools); errors are InvalidImage naming the reference.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandpool.errors import InvalidImage

__all__ = ["ImageConfig", "host_architecture", "read_image"]

_REF_NAME = "org.opencontainers.image.ref.name"
_MACHINE_TO_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class ImageConfig:
    """What sandpool uses of one image manifest and its config blob."""

    digest: str
    architecture: str
    os: str
    env: tuple[str, ...]
    working_dir: str
    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    created: str


def host_architecture() -> str:
    """This machine's architecture in OCI (Go) spelling, e.g. ``amd64``."""
    machine = platform.machine()
    return _MACHINE_TO_GOARCH.get(machine, machine)


def _load_json(path: Path, reference: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidImage(f"image {reference!r}: unreadable {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidImage(f"image {reference!r}: {path.name} is not a JSON object")
    return data


def _blob(layout: Path, digest: str, reference: str) -> dict[str, Any]:
    algorithm, _, hexdigest = digest.partition(":")
    return _load_json(layout / "blobs" / algorithm / hexdigest, reference)


def _manifest_digest(layout: Path, tag: str, reference: str) -> str:
    index = _load_json(layout / "index.json", reference)
    for entry in index.get("manifests") or []:
        if entry.get("annotations", {}).get(_REF_NAME) == tag:
            return str(entry["digest"])
    raise InvalidImage(f"image {reference!r}: no manifest tagged {tag!r} in the copied layout")


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def read_image(layout: Path, tag: str, reference: str) -> ImageConfig:
    """The manifest digest and config of ``layout:tag``, checked against this host's platform."""
    digest = _manifest_digest(layout, tag, reference)
    manifest = _blob(layout, digest, reference)
    if "layers" not in manifest or "config" not in manifest:
        raise InvalidImage(f"image {reference!r}: manifest {digest} is not an image manifest")
    blob = _blob(layout, str(manifest["config"]["digest"]), reference)
    config = blob.get("config") or {}
    image = ImageConfig(
        digest=digest,
        architecture=str(blob.get("architecture", "")),
        os=str(blob.get("os", "")),
        env=_strings(config.get("Env")),
        working_dir=str(config.get("WorkingDir") or ""),
        user=str(config.get("User") or ""),
        entrypoint=_strings(config.get("Entrypoint")),
        cmd=_strings(config.get("Cmd")),
        created=str(blob.get("created") or ""),
    )
    _check_platform(image, reference)
    return image


def _check_platform(image: ImageConfig, reference: str) -> None:
    host = host_architecture()
    if image.os != "linux" or image.architecture != host:
        raise InvalidImage(
            f"image {reference!r} is for {image.os or '?'}/{image.architecture or '?'}, "
            f"this host runs linux/{host}",
            hint="pull a linux/" + host + " variant of the image",
        )
