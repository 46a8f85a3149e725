"""Per-container /30 subnets leased from ``worker.network.addressRange``.

A lease is a file ``<stateDir>/network/leases/<index>`` created exclusively and holding the
container id; subnet ``index`` of the range is ``.0`` network, ``.1`` host side (gateway),
``.2`` the container. ``release`` removes a container's lease by id, so a clean-up after a
crash needs nothing but the id.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from sandpool.errors import NetworkSetupFailed

__all__ = ["Lease", "find", "lease", "release"]


@dataclass(frozen=True)
class Lease:
    """One container's /30: the host side (its gateway) and its own address."""

    index: int
    gateway: str
    address: str
    prefix: int = 30


def _leases_dir(state_dir: Path) -> Path:
    path = state_dir / "network" / "leases"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _subnet(address_range: str, index: int) -> Lease:
    net = ipaddress.ip_network(address_range)
    base = int(net.network_address) + 4 * index
    return Lease(index, str(ipaddress.ip_address(base + 1)), str(ipaddress.ip_address(base + 2)))


def lease(state_dir: Path, address_range: str, container_id: str) -> Lease:
    """Take the first free /30 of the range for ``container_id``."""
    directory = _leases_dir(state_dir)
    count = ipaddress.ip_network(address_range).num_addresses // 4
    taken = {int(p.name) for p in directory.iterdir() if p.name.isdigit()}
    for index in range(count):
        if index in taken:
            continue
        try:
            fd = os.open(directory / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process took it meanwhile
            continue
        with os.fdopen(fd, "w") as file:
            file.write(container_id)
        return _subnet(address_range, index)
    raise NetworkSetupFailed(f"no free /30 left in worker.network.addressRange {address_range}",
                             hint="use a larger range or fewer networked containers")  # fmt: skip


def find(state_dir: Path, address_range: str, container_id: str) -> Lease | None:
    """The lease ``container_id`` holds (a new owner of a running sandbox), if any."""
    directory = state_dir / "network" / "leases"
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            with contextlib.suppress(OSError):
                if path.name.isdigit() and path.read_text() == container_id:
                    return _subnet(address_range, int(path.name))
    return None


def release(state_dir: Path, container_id: str) -> None:
    """Give back every lease ``container_id`` holds."""
    directory = state_dir / "network" / "leases"
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            with contextlib.suppress(OSError):
                if path.read_text() == container_id:
                    path.unlink()
