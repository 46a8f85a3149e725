"""A container's network, from set-up to tear-down: the interface sandpool's run and sandbox
code call.

    net = ContainerNetwork.open(container_id, container_dir, state_dir, policy, settings)
    spec = net.apply(spec, rootfs)        # the spec's netns path, the container's resolv.conf
    ...                                   # run it (gVisor: ``--network=sandbox``, by the spec)
    net.attach(pid)                       # late=True only: the namespace is the container's
    change_policy(container_dir, policy)  # from any process, while it runs
    traffic = net.close()                 # bytes in/out, then everything is removed
    net.release()                         # or: leave it all running for a next owner, who
    net = ContainerNetwork.reattach(...)  # starts its DNS filter again (adopted sandboxes)
    teardown(container_dir)               # gc: the same removal from the directory alone

``late`` (a runc sandbox in a user namespace): the runtime makes the network namespace, in
the container's user namespace, and ``attach`` names it and adds the veth once the container
runs. runc 1.1's ``exec`` joins the user namespace first and then cannot join a namespace the
host's user namespace owns (EPERM), so a prepared one would leave the sandbox without execs.

The policy in force is the file ``network.json`` in the container's directory: the DNS filter
(a thread of the owning process) rereads it when it changes, so a change from another
process applies to names too. ``none`` needs none of this: the runtime's own empty namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandpool.errors import NetworkSetupFailed, SandpoolError
from sandpool.network import addresses, netns, nft
from sandpool.network.netns import Traffic
from sandpool.network.policy import NetworkPolicy, parse_policy
from sandpool.network.settings import DNS_PORT, ContainerNames, NetworkSettings
from sandpool.worker.overlay import unmount

if TYPE_CHECKING:  # dnspython is loaded only when a container gets a network
    from sandpool.network.dns import DnsFilter

__all__ = [
    "POLICY_FILE",
    "ContainerNetwork",
    "change_policy",
    "read_policy",
    "teardown",
    "traffic_of",
]

POLICY_FILE = "network.json"
SYSFS_DIR = "netsys"  # the namespace's sysfs, for runc in a user namespace


def _write_policy(container_dir: Path, policy: NetworkPolicy) -> None:
    tmp = container_dir / (POLICY_FILE + ".tmp")
    tmp.write_text(json.dumps(policy.to_json()))
    os.replace(tmp, container_dir / POLICY_FILE)


def read_policy(container_dir: Path) -> NetworkPolicy | None:
    """The policy in force for the container in ``container_dir`` (None: no network of ours)."""
    try:
        data = json.loads((container_dir / POLICY_FILE).read_text())
        return parse_policy(str(data["network"]), [str(e) for e in data["allow"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _PolicyFile:
    """The policy file, reread only when its mtime changes (one ``stat`` per DNS query)."""

    def __init__(self, container_dir: Path, policy: NetworkPolicy) -> None:
        self.path, self.policy, self.stamp = container_dir / POLICY_FILE, policy, 0
        with contextlib.suppress(OSError):
            self.stamp = self.path.stat().st_mtime_ns

    def __call__(self) -> NetworkPolicy:
        with contextlib.suppress(OSError):
            stamp = self.path.stat().st_mtime_ns
            if stamp != self.stamp:
                self.stamp = stamp
                self.policy = read_policy(self.path.parent) or self.policy
        return self.policy


class ContainerNetwork:
    """The namespace, veth, nftables table and DNS filter of one ``allow``/``open`` container.
    Owned by one thread (the container's); ``close`` is idempotent."""

    def __init__(self, names: ContainerNames, container_dir: Path, state_dir: Path,
                 lease: addresses.Lease, settings: NetworkSettings) -> None:  # fmt: skip
        self.names, self.dir, self.state_dir, self.lease = names, container_dir, state_dir, lease
        self.settings, self.late = settings, False
        self.dns: DnsFilter | None = None
        self.traffic: Traffic | None = None

    @classmethod
    def open(cls, container_id: str, container_dir: Path, state_dir: Path,
             policy: NetworkPolicy, settings: NetworkSettings, *,
             late: bool = False) -> ContainerNetwork:  # fmt: skip
        """Set it all up (``late``: all but the namespace, veth and DNS filter, which
        ``attach`` adds); on failure nothing is left behind (NetworkSetupFailed)."""
        if not policy.networked:
            raise NetworkSetupFailed("network 'none' has no namespace of sandpool's to set up")
        names = ContainerNames(container_id)
        _write_policy(container_dir, policy)  # first: from here on, teardown() finds it all
        net = cls(names, container_dir, state_dir,
                  addresses.lease(state_dir, settings.address_range, container_id),
                  settings)  # fmt: skip
        net.late = late
        try:
            nft.create_table(names, net.lease, settings.refused(), policy, dns_port=DNS_PORT)
            if not late:
                net._plug(None)
        except BaseException:
            net.close()
            raise
        return net

    def _plug(self, pid: int | None) -> None:
        netns.create(self.names, self.lease, ip_forward=self.settings.ip_forward, pid=pid)
        self._start_dns(read_policy(self.dir) or NetworkPolicy("allow"))

    def _start_dns(self, policy: NetworkPolicy) -> None:
        from sandpool.network.dns import DnsFilter

        self.dns = DnsFilter(self.names, self.lease.gateway, _PolicyFile(self.dir, policy),
                             self.settings.upstream(), self.settings.refused())  # fmt: skip

    def attach(self, pid: int) -> None:
        """A ``late`` network: name the namespace of the running container's process ``pid``
        and add the veth and DNS filter (the caller's ``close`` removes them on failure)."""
        if self.late and self.dns is None:
            self._plug(pid)

    @classmethod
    def reattach(cls, container_id: str, container_dir: Path, state_dir: Path,
                 settings: NetworkSettings) -> ContainerNetwork | None:  # fmt: skip
        """Take over a running container's network from a dead owner: its DNS filter again
        (the namespace, veth and table outlived the owner). None: it has no network of ours."""
        policy = read_policy(container_dir)
        found = addresses.find(state_dir, settings.address_range, container_id)
        if policy is None or found is None:
            return None
        net = cls(ContainerNames(container_id), container_dir, state_dir, found, settings)
        net._start_dns(policy)
        return net

    def apply(self, spec: dict[str, Any], rootfs: Path) -> dict[str, Any]:
        """Point the spec's network namespace at ours; name the DNS filter in the rootfs's
        ``/etc/resolv.conf`` (the overlay's upper layer: the image is untouched). A ``late``
        network keeps the runtime's new namespace."""
        self._write_resolv_conf(rootfs)
        if self.late:
            return spec
        namespaces = spec.setdefault("linux", {}).setdefault("namespaces", [])
        namespaces[:] = [ns for ns in namespaces if ns.get("type") != "network"]
        namespaces.append({"type": "network", "path": self.names.netns_path})
        if any(ns.get("type") == "user" for ns in namespaces):
            self._bind_sysfs(spec)
        return spec

    def _write_resolv_conf(self, rootfs: Path) -> None:
        etc = rootfs / "etc"
        etc.mkdir(mode=0o755, exist_ok=True)
        resolv = etc / "resolv.conf"
        if resolv.is_symlink():
            resolv.unlink()
        resolv.write_text(f"nameserver {self.lease.gateway}\noptions attempts:2 timeout:2\n")

    def _bind_sysfs(self, spec: dict[str, Any]) -> None:
        """runc in a user namespace cannot mount sysfs in our namespace: bind one mounted
        from inside it (it lists the container's own interfaces, as its own sysfs would)."""
        target = self.dir / SYSFS_DIR
        netns.mount_sysfs(self.names, target)
        options = ["rbind", "ro", "nosuid", "nodev", "noexec"]
        for mount in spec.get("mounts", []):
            if mount.get("destination") == "/sys":
                mount.update(type="bind", source=str(target), options=options)

    def set_policy(self, policy: NetworkPolicy) -> None:
        """Change the policy of the running container (see ``change_policy``)."""
        change_policy(self.dir, policy)

    def release(self) -> None:
        """Stop this process's part (the DNS filter) and leave the rest to a next owner."""
        if self.dns is not None:
            self.dns.stop()
            self.dns = None

    def close(self) -> Traffic | None:
        """Stop the DNS filter, note the bytes in/out, remove everything; the traffic."""
        self.release()
        self.traffic = netns.traffic(self.names) or self.traffic
        _remove(self.names, self.state_dir)
        (self.dir / POLICY_FILE).unlink(missing_ok=True)  # nothing left for ``teardown``
        return self.traffic


def change_policy(container_dir: Path, policy: NetworkPolicy) -> None:
    """Change a running container's policy, from any process: the nftables sets and policy
    chain at once (open connections included), the DNS filter at its next query."""
    current = read_policy(container_dir)
    if current is None:
        raise NetworkSetupFailed(f"container {container_dir.name} has no network of sandpool's",
                                 hint="start it with --network allow or open")  # fmt: skip
    if not policy.networked:
        hint = "use --network allow with no --allow: nothing is reachable"
        raise NetworkSetupFailed("a running container cannot go to network 'none'", hint=hint)
    nft.replace_policy(ContainerNames(container_dir.name), policy)
    _write_policy(container_dir, policy)


def traffic_of(container_id: str) -> Traffic | None:
    """A running container's bytes in/out so far (None: it has no veth of ours)."""
    return netns.traffic(ContainerNames(container_id))


def _remove(names: ContainerNames, state_dir: Path) -> None:
    unmount(state_dir / "containers" / names.container_id / SYSFS_DIR)
    nft.delete_table(names)
    netns.destroy(names)
    addresses.release(state_dir, names.container_id)


def teardown(container_dir: Path) -> None:
    """Remove a container's network from its directory alone (``gc`` after a crash): the
    table, veth and namespace named after it, its address lease. Cheap when it has none."""
    if not (container_dir / POLICY_FILE).exists():
        return
    with contextlib.suppress(SandpoolError, OSError):
        _remove(ContainerNames(container_dir.name), container_dir.parent.parent)
