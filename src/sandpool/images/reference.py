"""Image references as skopeo and podman spell them, parsed into one canonical form.

Accepted: ``oci-archive:PATH[:REF]``, ``docker-archive:PATH[:REF]``, ``oci:DIR[:TAG]``,
``docker://[REGISTRY/]NAME[:TAG|@DIGEST]``, a bare ``[REGISTRY/]NAME[:TAG|@DIGEST]`` (meaning
``docker://``) and ``builtin:NAME`` for images sandpool builds itself. Parsing is pure: it reads
no file and runs no program, so it is cheap enough for the container start path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum

from sandpool.errors import InvalidImage

__all__ = ["Reference", "Transport", "parse_reference"]


class Transport(StrEnum):
    """Where an image comes from."""

    OCI_ARCHIVE = "oci-archive"
    DOCKER_ARCHIVE = "docker-archive"
    OCI = "oci"
    DOCKER = "docker"
    BUILTIN = "builtin"


_PATH_TRANSPORTS = {Transport.OCI_ARCHIVE, Transport.DOCKER_ARCHIVE, Transport.OCI}
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOCKER_RE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN}(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)/)?"
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_BUILTIN_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_LOOPBACK = ("localhost", "127.", "[::1]")


@dataclass(frozen=True)
class Reference:
    """One parsed reference: ``key`` is canonical (the cache index key), ``text`` as written."""

    text: str
    transport: Transport
    target: str  # absolute path, normalized registry name, or builtin name
    suffix: str = ""  # TAG of oci:, REF of the archives; "" when absent

    @property
    def key(self) -> str:
        """The canonical spelling: two references with the same key name the same image."""
        if self.transport is Transport.DOCKER:
            return f"docker://{self.target}"
        tail = f":{self.suffix}" if self.suffix else ""
        return f"{self.transport.value}:{self.target}{tail}"

    @property
    def local_path(self) -> str | None:
        """The file or directory a local reference names; None for registries and builtins."""
        return self.target if self.transport in _PATH_TRANSPORTS else None

    @property
    def registry(self) -> str | None:
        """The registry host[:port] of a docker:// reference; None otherwise."""
        if self.transport is not Transport.DOCKER:
            return None
        return self.target.split("/", 1)[0]

    @property
    def insecure(self) -> bool:
        """True for loopback registries, which (as with Docker) are spoken to over plain HTTP."""
        registry = self.registry
        return registry is not None and registry.startswith(_LOOPBACK)


def _normalize_docker(text: str, name: str) -> str:
    match = _DOCKER_RE.match(name)
    if match is None:
        raise InvalidImage(
            f"invalid image reference {text!r}",
            hint="expected NAME[:TAG], docker://REGISTRY/NAME:TAG, oci-archive:PATH, "
            "docker-archive:PATH, oci:DIR[:TAG] or builtin:NAME",
        )
    domain, path = match["domain"], match["path"]
    if domain is None or ("." not in domain and ":" not in domain and domain != "localhost"):
        path = f"{domain}/{path}" if domain else path
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    tag = match["tag"] or ("" if match["digest"] else "latest")
    tail = (f":{tag}" if tag else "") + (f"@{match['digest']}" if match["digest"] else "")
    return f"{domain}/{path}{tail}"


def _parse_local(text: str, transport: Transport, rest: str) -> Reference:
    path, _, suffix = rest.partition(":")
    if not path:
        raise InvalidImage(f"invalid image reference {text!r}: no path after {transport.value}:")
    return Reference(text, transport, os.path.abspath(path), suffix)


def parse_reference(text: str) -> Reference:
    """Parse ``text`` into a Reference; raise InvalidImage naming it when it is malformed."""
    stripped = text.strip()
    if not stripped:
        raise InvalidImage("empty image reference")
    head, sep, rest = stripped.partition(":")
    if sep and head in {t.value for t in _PATH_TRANSPORTS}:
        return _parse_local(text, Transport(head), rest)
    if head == Transport.BUILTIN.value and sep:
        if not _BUILTIN_RE.match(rest):
            raise InvalidImage(f"invalid image reference {text!r}: bad builtin name {rest!r}")
        return Reference(text, Transport.BUILTIN, rest)
    if stripped.startswith("docker://"):
        return Reference(text, Transport.DOCKER, _normalize_docker(text, stripped[9:]))
    if head == Transport.DOCKER.value and sep:
        raise InvalidImage(f"invalid image reference {text!r}", hint="write docker://NAME:TAG")
    if stripped.startswith(("/", "./", "../")) or os.sep + os.sep in stripped:
        raise InvalidImage(
            f"invalid image reference {text!r}: a path needs a transport",
            hint=f"write oci-archive:{stripped}, docker-archive:{stripped} or oci:{stripped}",
        )
    return Reference(text, Transport.DOCKER, _normalize_docker(text, stripped))
