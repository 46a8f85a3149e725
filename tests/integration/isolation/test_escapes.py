"""The classic container escapes, tried from inside a container of each runtime.

``probe.py`` runs every attempt in ONE container per runtime (the default image's python3
issues the system calls through ctypes) and prints what each one got: ``"ok"`` or the errno
name of the refusal. ``EXPECTED`` below is the answer each runtime must give; each test asserts
that specific refusal, never just a failure.

runc: the seccomp allowlist (``sandpool.runtime.seccomp``) answers EPERM for every call it does
not list and ENOSYS for clone3; the dropped capabilities, the read-only /proc and /sys paths and
the container's own pid, mount and network namespaces answer the rest.

gVisor: the application's system calls never reach the host kernel; the Sentry (gVisor's
kernel in user space) implements or refuses each one, with its own errnos. Where the Sentry
*allows* something (a user namespace, a device node, a raw read of its own log), the effect
stays inside the sandbox: the comments say why each such answer is safe.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandpool.api import Sandpool
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
RUNTIMES = {"runc": "performance", "gvisor": "default"}  # runtime -> the session's pool
PROBE = Path(__file__).with_name("probe.py")
HOST_SYSRQ = "EROFS" if Path("/proc/sysrq-trigger").exists() else "ENOENT"  # runc: read-only
HOST_KCORE: Any = 0 if Path("/proc/kcore").exists() else "ENOENT"  # runc: masked by /dev/null

# probe -> (runc's answer, gVisor's answer)
EXPECTED: dict[str, tuple[Any, Any]] = {
    # New user (and other) namespaces, by every path. gVisor: the namespaces the Sentry makes
    # are its own objects; capabilities gained in them are checked only by the Sentry, and the
    # process stays inside the sandbox's single host namespace set.
    "unshare_newuser": ("EPERM", "ok"),
    "unshare_newns": ("EPERM", "ok"),
    "unshare_newnet": ("EPERM", "EPERM"),
    "unshare_newcgroup": ("EPERM", "ok"),
    "clone_newuser": ("EPERM", "ok"),
    "clone_newuser_newnet": ("EPERM", "ok"),
    "clone_newpid": ("EPERM", "EPERM"),
    "clone_plain": ("ok", "ok"),  # the control: an ordinary fork works
    # runc: ENOSYS from the filter, so libc falls back to clone, whose flags it can inspect
    # (the hole of issue 12: clone3(CLONE_NEWUSER) used to succeed). gVisor: not implemented.
    "clone3_newuser": ("ENOSYS", "ENOSYS"),
    "clone3_plain": ("ENOSYS", "ENOSYS"),
    # pid 1 is the container's own process; gVisor has no setns into nsfs files
    "setns_pid1_net": ("EPERM", "ENOTSUP"),
    "setns_pid1_mnt": ("EPERM", "ENOENT"),
    # Other processes. gVisor: ptrace is the Sentry's, restricted to descendants (as YAMA
    # scope 1); a parent tracing its own child reaches nothing outside the sandbox.
    "ptrace_attach_sibling": ("EPERM", "EPERM"),
    "ptrace_attach_child": ("EPERM", "ok"),
    "process_vm_readv_child": ("EPERM", "ENOSYS"),
    # no host process is visible: only the container's init (tini) and the probe
    "visible_processes": (["init", "python3"], ["init", "python3"]),
    # Host files through /proc: pid 1's root is the container's root; only stdio is inherited
    # (pipes under runc, the host fds runsc donates for stdio under gVisor)
    # pid 1 is the container's own init; gVisor refuses another process's root link outright
    "pid1_root_is_own_root": (True, "EACCES"),
    "pid1_is_own": ("/dev/init", "/dev/init"),
    "open_fds": ([0, 1, 2], [0, 1, 2]),
    "kcore_bytes": (HOST_KCORE, "ENOENT"),
    # runc: /proc/sys belongs to host root, unmapped in the container's user namespace (EACCES
    # before its read-only mount would say EROFS)
    "write_core_pattern": ("EACCES", "ENOENT"),
    "write_proc_sys_hostname": ("EACCES", "EIO"),  # gVisor: its own /proc/sys, not writable
    "write_sysrq_trigger": (HOST_SYSRQ, "ENOENT"),
    "write_sys_profiling": ("EROFS", "ENOENT"),
    "mkdir_in_sys": ("EROFS", "EROFS"),
    # cgroups: no cgroup filesystem is mounted, and mounting one is refused (below)
    "cgroupfs_entries": ([], []),
    "write_release_agent": ("ENOENT", "ENOENT"),
    "write_root_cgroup_procs": ("ENOENT", "ENOENT"),
    # Kernel surface. gVisor: keyrings are the Sentry's (EACCES without a session keyring),
    # modules, kexec, swap, port I/O and userfaultfd do not exist there
    "add_key": ("EPERM", "EACCES"),
    "keyctl": ("EPERM", "EACCES"),
    "request_key": ("EPERM", "EACCES"),
    "init_module": ("EPERM", "EPERM"),
    "finit_module": ("EPERM", "EPERM"),
    "delete_module": ("EPERM", "EPERM"),
    "bpf_map_create": ("EPERM", "EPERM"),
    "perf_event_open": ("EPERM", "ENODEV"),
    "kexec_load": ("EPERM", "EPERM"),
    "kexec_file_load": ("EPERM", "EPERM"),
    "reboot": ("EPERM", "EPERM"),
    "swapon": ("EPERM", "EPERM"),
    "iopl": ("EPERM", "EPERM"),
    "ioperm": ("EPERM", "EPERM"),
    "settimeofday": ("EPERM", "EPERM"),
    "sethostname": ("EPERM", "EPERM"),
    "syslog_read": ("EPERM", "ok"),  # gVisor: the Sentry's own made-up boot log, not the host's
    "acct": ("EPERM", "EPERM"),
    "open_by_handle_at": ("EPERM", "ENOTSUP"),  # the "shocker" escape
    "userfaultfd": ("EPERM", "ENOSYS"),
    "io_uring_setup": ("EPERM", "EINVAL"),  # gVisor: the Sentry's io_uring (a bad ring size)
    "personality_read_implies_exec": ("EPERM", "EINVAL"),
    "personality_query": ("ok", "EINVAL"),  # the control: runc lets libc query the persona
    # Device nodes. gVisor: the Sentry records the node, but opening it reaches no host device
    "mknod_block_sda": ("EPERM", "ok"),
    "mknod_char_mem": ("EPERM", "ok"),
    "open_made_sda": ("ENOENT", "ENXIO"),
    "open_made_mem": ("ENOENT", "ENXIO"),
    "open_dev_mem": ("ENOENT", "ENOENT"),
    # gVisor's /proc/self/status has no NoNewPrivs line; it does not use seccomp for the
    # application (the Sentry is the boundary, and runsc filters the Sentry's own host calls)
    "NoNewPrivs": ("1", "absent"),
    "Seccomp": ("2", "0"),
    # Mounts (cgroup hierarchies included). gVisor: EPERM without CAP_SYS_ADMIN; the new mount
    # API does not exist there
    "mount_tmpfs": ("EPERM", "EPERM"),
    "mount_proc": ("EPERM", "EPERM"),
    "mount_cgroup": ("EPERM", "EPERM"),
    "mount_cgroup2": ("EPERM", "EPERM"),
    "umount_proc": ("EPERM", "EPERM"),
    "pivot_root": ("EPERM", "EPERM"),
    "fsopen": ("EPERM", "ENOSYS"),
    "open_tree": ("EPERM", "ENOSYS"),
    # Sockets: no CAP_NET_RAW, so no raw or packet sockets; vsock refused by the filter
    "socket_inet_raw": ("EPERM", "EPERM"),
    "socket_packet": ("EPERM", "EPERM"),
    "socket_vsock": ("EPERM", "EAFNOSUPPORT"),
    "socket_inet_stream": ("ok", "ok"),  # the controls: ordinary sockets work
    "socket_netlink_route": ("ok", "ok"),
    # The host's loopback service is unreachable: 127.0.0.1 is the container's own loopback
    # (its own network namespace, or gVisor's netstack with --network=none)
    "connect_host_loopback": ("ECONNREFUSED", "ECONNREFUSED"),
}
# Capabilities no container may hold (their bit numbers), whatever its user namespace
DANGEROUS_CAPS = {"CAP_DAC_READ_SEARCH": 2, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
                  "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_PTRACE": 19,
                  "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_TIME": 25, "CAP_MKNOD": 27,
                  "CAP_PERFMON": 38, "CAP_BPF": 39}  # fmt: skip
DEV_ENTRIES = {"fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
               "stdout", "tty", "urandom", "zero",
               "init"}  # fmt: skip  # the container's init (tini), bind-mounted read-only
EXTRA_DEV = {"runc": {"mqueue"}, "gvisor": {"fuse", "net"}}  # gVisor: its own fuse and tun


def _host_address() -> str:
    """The host's first non-loopback IPv4 address, or ``-``."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                           check=False).stdout.split("\n")  # fmt: skip
    found = [ln.split()[3].split("/")[0] for ln in shown if ln and " lo " not in f" {ln} "]
    return found[0] if found else "-"


@pytest.fixture(scope="module")
def host_listener() -> Iterator[socket.socket]:
    """A TCP service on the host's loopback that no container may reach."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        yield listener


@pytest.fixture(scope="module")
def probed(sp: Sandpool, sandbox: Sandbox, host_listener: socket.socket) -> dict[str, Any]:
    """runtime -> the probe's answers, one container per runtime; nothing may be left behind."""
    port = str(host_listener.getsockname()[1])
    argv = ["python3", "-c", PROBE.read_text(), port, _host_address()]
    answers = {}
    for runtime, pool in RUNTIMES.items():
        result = sp.run(pool, argv, image="builtin:default", timeout=120)
        assert result.exit_code == 0, result.stderr
        answers[runtime] = json.loads(result.stdout or b"")
    sp.close()
    assert sandbox.leftovers() == []
    return answers


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("probe", EXPECTED)
def test_escape_gets_the_expected_answer(probed: dict[str, Any], runtime: str,
                                         probe: str) -> None:  # fmt: skip
    expected = EXPECTED[probe][0 if runtime == "runc" else 1]
    assert probed[runtime][probe] == expected


def test_every_probe_has_an_expected_answer(probed: dict[str, Any]) -> None:
    """A probe added to probe.py without a row here would go unchecked."""
    checked_elsewhere = {"fd_targets", "dev_entries", "CapEff", "CapBnd", "CapPrm",
                         "connect_host_address"}  # fmt: skip
    for answers in probed.values():
        assert set(answers) - checked_elsewhere == set(EXPECTED)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_dangerous_capability(probed: dict[str, Any], runtime: str) -> None:
    answers = probed[runtime]
    for kind in ("CapEff", "CapPrm", "CapBnd"):
        held = int(answers[kind], 16)
        assert [c for c, bit in DANGEROUS_CAPS.items() if held >> bit & 1] == [], kind


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dev_has_no_disks_or_host_devices(probed: dict[str, Any], runtime: str) -> None:
    assert set(probed[runtime]["dev_entries"]) == DEV_ENTRIES | EXTRA_DEV[runtime]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_only_stdio_is_inherited(probed: dict[str, Any], runtime: str) -> None:
    """No host file descriptor leaks in: fds 0-2 only, each a pipe (runsc shows the host
    pipes it donated for stdio as ``host:[N]``)."""
    targets = probed[runtime]["fd_targets"]
    kind = "pipe:[" if runtime == "runc" else "host:["
    assert len(targets) == 3 and all(t.startswith(kind) for t in targets), targets


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_host_address_is_unreachable(probed: dict[str, Any], runtime: str) -> None:
    """No route out: the container's network has nothing but its own loopback (gVisor's
    netstack answers EHOSTUNREACH where Linux answers ENETUNREACH)."""
    refusal = {"runc": "ENETUNREACH", "gvisor": "EHOSTUNREACH"}[runtime]
    assert probed[runtime]["connect_host_address"] in ("-", refusal)


def test_the_host_loopback_service_was_never_reached(
    probed: dict[str, Any], host_listener: socket.socket
) -> None:
    assert probed  # every container has run
    with pytest.raises(BlockingIOError):
        host_listener.accept()
