"""One container's network namespace and veth pair, made with ``ip`` (iproute2).

The namespace is ``ip netns add``'s (or ``attach``'s, naming a running container's own): a
file bind-mounted under ``/run/netns`` that outlives every process in it until ``destroy``.
Its end of the veth is ``eth0`` with the lease's address and a default route via the host
side; the host side gets the gateway address and IPv4 forwarding on that interface only
(``net.ipv4.ip_forward`` only where the settings say).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from sandpool.errors import NetworkSetupFailed
from sandpool.network.addresses import Lease
from sandpool.network.settings import ContainerNames

__all__ = ["Traffic", "create", "destroy", "mount_sysfs", "traffic"]

IP = "ip"
SYSCTL = Path("/proc/sys/net")
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str, batch: str | None = None, check: bool = True) -> None:
    argv = [IP, *args, *(["-batch", "-"] if batch is not None else [])]
    try:
        done = subprocess.run(argv, input=(batch or "").encode(), capture_output=True,
                              timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkSetupFailed(f"ip could not run: {exc}", hint="install iproute2") from exc
    if done.returncode != 0 and check:
        said = done.stderr.decode(errors="replace").strip().replace("\n", "; ")
        raise NetworkSetupFailed(f"ip {' '.join(args)} failed: {said}")


def _sysctl(path: str, value: str) -> None:
    (SYSCTL / path).write_text(value)


def create(names: ContainerNames, lease: Lease, *, ip_forward: bool,
           pid: int | None = None) -> None:  # fmt: skip
    """The namespace (new, or with ``pid`` the one that process is in, given our name), the
    veth pair, addresses, routes, forwarding on the host side."""
    veth, prefix = names.veth, lease.prefix
    if pid is None:
        _ip("netns", "add", names.netns)
    else:
        _ip("netns", "attach", names.netns, str(pid))
    _ip(batch=(f"link add {veth} type veth peer name eth0 netns {names.netns}\n"
               f"addr add {lease.gateway}/{prefix} dev {veth}\n"
               f"link set {veth} up\n"))  # fmt: skip
    _ip("-n", names.netns, batch=(f"addr add {lease.address}/{prefix} dev eth0\n"
                                  "link set eth0 up\nlink set lo up\n"
                                  f"route add default via {lease.gateway}\n"))  # fmt: skip
    _sysctl(f"ipv6/conf/{veth}/disable_ipv6", "1")
    _sysctl(f"ipv4/conf/{veth}/forwarding", "1")
    if ip_forward and (SYSCTL / "ipv4/ip_forward").read_text().strip() != "1":
        _sysctl("ipv4/ip_forward", "1")


def mount_sysfs(names: ContainerNames, target: Path) -> None:
    """Mount a sysfs that shows the namespace's interfaces at ``target`` (read-only), from a
    thread that joined the namespace: what a runc container in a user namespace gets as
    ``/sys`` (it may not mount sysfs itself in a network namespace it does not own)."""
    target.mkdir(mode=0o755, exist_ok=True)
    failure: list[str] = []

    def in_namespace() -> None:  # this thread only: setns(CLONE_NEWNET) moves no other thread
        fd = os.open(names.netns_path, os.O_RDONLY)
        try:
            flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
            if _libc.setns(fd, CLONE_NEWNET) != 0 or _libc.mount(
                b"sysfs", str(target).encode(), b"sysfs", flags, None) != 0:  # fmt: skip
                failure.append(os.strerror(ctypes.get_errno()))
        finally:
            os.close(fd)

    worker = threading.Thread(target=in_namespace, name=f"sysfs-{names.veth}")
    worker.start()
    worker.join()
    if failure:
        raise NetworkSetupFailed(f"cannot mount the sysfs of {names.netns}: {failure[0]}")


def destroy(names: ContainerNames) -> None:
    """Remove the veth (both ends) and the namespace; whatever is already gone is skipped."""
    if Path(f"/sys/class/net/{names.veth}").exists():
        _ip("link", "del", names.veth, check=False)
    if Path(names.netns_path).exists():
        _ip("netns", "del", names.netns, check=False)


@dataclass(frozen=True)
class Traffic:
    """Bytes the container received and sent, counted on the host side of its veth."""

    bytes_in: int
    bytes_out: int


def traffic(names: ContainerNames) -> Traffic | None:
    """The veth's counters now (host rx = container out); None once it is gone."""
    stats = Path(f"/sys/class/net/{names.veth}/statistics")
    with contextlib.suppress(OSError, ValueError):
        rx = int((stats / "rx_bytes").read_text())
        tx = int((stats / "tx_bytes").read_text())
        return Traffic(bytes_in=tx, bytes_out=rx)
    return None
