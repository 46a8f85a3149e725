"""Escape attempts, run INSIDE a container by the image's python3
(``python3 -c <this> PORT HOST_ADDRESS``).

Each probe tries one classic escape and answers ``"ok"`` when the attempt succeeded, the errno
name (``"EPERM"``, ``"ENOSYS"``, …) when the kernel or the Sentry refused it, or a short fact
(a list, a flag) that the test compares. All answers are printed as one JSON object, so one
container per runtime runs every probe. Standard library only (the image has nothing else);
x86_64 system call numbers.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
NR = {"clone": 56, "unshare": 272, "clone3": 435, "mount": 165, "ptrace": 101,
      "process_vm_readv": 310, "add_key": 248, "keyctl": 250, "request_key": 249,
      "init_module": 175, "finit_module": 313, "delete_module": 176, "bpf": 321,
      "perf_event_open": 298, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169,
      "setns": 308, "userfaultfd": 323, "open_by_handle_at": 304, "io_uring_setup": 425,
      "swapon": 167, "iopl": 172, "ioperm": 173, "sethostname": 170, "settimeofday": 164,
      "personality": 135, "pivot_root": 155, "umount2": 166, "fsopen": 430,
      "open_tree": 428, "syslog": 103, "acct": 163, "quotactl": 179}  # fmt: skip
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000
CLONE_NEWPID, CLONE_NEWCGROUP = 0x20000000, 0x02000000
SIGCHLD = 17
Result = Any


def syscall(name: str, *args: int | bytes | ctypes.Array[ctypes.c_char] | None) -> int:
    """The raw system call; OSError with its errno when it fails."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ret = int(LIBC.syscall(ctypes.c_long(NR[name]), *conv))
    if ret == -1:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return ret


def outcome(attempt: Callable[[], object]) -> Result:
    """``"ok"`` or the errno name of the refusal."""
    try:
        attempt()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, f"errno {exc.errno}")
    return "ok"


def fact(read: Callable[[], Result]) -> Result:
    """What ``read`` returns, or the errno name when it fails."""
    try:
        return read()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, f"errno {exc.errno}")


def isolated(attempt: Callable[[], object]) -> Result:
    """``outcome`` in a forked child, for attempts that change the caller when they get through
    (a new user namespace would give the next probes its capabilities). Forks are slow under
    gVisor's ptrace platform, so only those run here."""
    pid = os.fork()
    if pid == 0:
        answer = outcome(attempt)
        os._exit(0 if answer == "ok" else getattr(errno, answer, 255))
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return "ok" if code == 0 else errno.errorcode.get(code, f"status {code}")


def forked(name: str, *args: int | bytes | None) -> None:
    """A clone-like call: a child that gets through exits at once; the parent reaps it."""
    pid = syscall(name, *args)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def clone3(flags: int) -> None:
    """``clone3`` with ``struct clone_args`` {flags, …, exit_signal = SIGCHLD}."""
    args = ctypes.create_string_buffer(struct.pack("=11Q", flags, 0, 0, 0, SIGCHLD, *[0] * 6))
    pid = syscall("clone3", args, 88)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def write_file(path: str, data: bytes = b"x") -> None:
    """Open ``path`` for writing and write ``data`` (the attempt is the open and the write)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def namespaces() -> dict[str, Result]:
    """New namespaces by every path: unshare, clone, clone3 (libc then falls back to clone)."""
    return {
        "unshare_newuser": isolated(lambda: syscall("unshare", CLONE_NEWUSER)),
        "unshare_newns": isolated(lambda: syscall("unshare", CLONE_NEWNS)),
        "unshare_newnet": isolated(lambda: syscall("unshare", CLONE_NEWNET)),
        "unshare_newcgroup": isolated(lambda: syscall("unshare", CLONE_NEWCGROUP)),
        "clone_newuser": outcome(lambda: forked("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)),
        "clone_newuser_newnet": outcome(
            lambda: forked("clone", CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0)
        ),
        "clone_newpid": outcome(lambda: forked("clone", CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0)),
        "clone_plain": outcome(lambda: forked("clone", SIGCHLD, 0, 0, 0, 0)),
        "clone3_newuser": outcome(lambda: clone3(CLONE_NEWUSER | CLONE_NEWNET)),
        "clone3_plain": outcome(lambda: clone3(0)),
        "setns_pid1_net": isolated(lambda: setns("/proc/1/ns/net")),
        "setns_pid1_mnt": isolated(lambda: setns("/proc/1/ns/mnt")),
    }


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        syscall("setns", fd, 0)
    finally:
        os.close(fd)


def mounts() -> dict[str, Result]:
    """Mounting anything (tmpfs, proc, the cgroup hierarchy), unmounting, pivot_root."""
    os.makedirs("/tmp/probe-mnt", exist_ok=True)
    dest = b"/tmp/probe-mnt"
    return {
        "mount_tmpfs": outcome(lambda: syscall("mount", b"none", dest, b"tmpfs", 0, None)),
        "mount_proc": outcome(lambda: syscall("mount", b"proc", dest, b"proc", 0, None)),
        "mount_cgroup": outcome(lambda: syscall("mount", b"cgroup", dest, b"cgroup", 0, b"memory")),
        "mount_cgroup2": outcome(lambda: syscall("mount", b"none", dest, b"cgroup2", 0, None)),
        "umount_proc": outcome(lambda: syscall("umount2", b"/proc", 2)),  # MNT_DETACH
        "pivot_root": outcome(lambda: syscall("pivot_root", b"/tmp", b"/tmp/probe-mnt")),
        "fsopen": outcome(lambda: syscall("fsopen", b"tmpfs", 0)),
        "open_tree": outcome(lambda: syscall("open_tree", -100, b"/", 1)),  # OPEN_TREE_CLONE
    }


def processes() -> dict[str, Result]:
    """ptrace of another process; which processes are visible at all."""
    visible = sorted(visible_processes())  # before the probe's own child
    child = subprocess.Popen(["sleep", "30"])
    attached = "not tried"
    try:  # PTRACE_ATTACH from a sibling (forked child), then from its parent
        sibling = isolated(lambda: syscall("ptrace", 16, child.pid, 0, 0))
        attached = outcome(lambda: syscall("ptrace", 16, child.pid, 0, 0))
        buf = ctypes.create_string_buffer(8)
        iov = struct.pack("=QQ", ctypes.addressof(buf), 8)
        remote = struct.pack("=QQ", 0x400000, 8)
        vm_read = outcome(lambda: syscall("process_vm_readv", child.pid, iov, 1, remote, 1, 0))
    finally:
        if attached == "ok":  # let go of it first (gVisor lets a parent trace its child)
            os.waitpid(child.pid, 0)  # the attach's SIGSTOP
            syscall("ptrace", 17, child.pid, 0, 0)  # PTRACE_DETACH
        child.kill()
        child.wait()
    return {"ptrace_attach_sibling": sibling, "ptrace_attach_child": attached,
            "process_vm_readv_child": vm_read,
            "visible_processes": visible}  # fmt: skip


def visible_processes() -> set[str]:
    names = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                names.add(comm.read().strip())
        except OSError:
            pass  # exited meanwhile
    return names


def proc_files() -> dict[str, Result]:
    """Host files through /proc: pid 1's root, inherited fds, masked and read-only paths."""
    mine = os.stat("/")

    def pid1_root_is_own_root() -> bool:
        root = os.stat("/proc/1/root/")
        return (root.st_dev, root.st_ino) == (mine.st_dev, mine.st_ino)

    open_fds = [fd for fd in range(1024) if outcome(functools.partial(os.fstat, fd)) == "ok"]
    return {
        "pid1_root_is_own_root": fact(pid1_root_is_own_root),
        "pid1_is_own": Path("/proc/1/cmdline").read_bytes().split(b"\0")[0],
        "open_fds": open_fds,
        "fd_targets": [os.readlink(f"/proc/self/fd/{fd}") for fd in open_fds],
        "kcore_bytes": fact(lambda: len(Path("/proc/kcore").read_bytes())),
        "write_core_pattern": outcome(lambda: write_file("/proc/sys/kernel/core_pattern")),
        "write_proc_sys_hostname": outcome(lambda: write_file("/proc/sys/kernel/hostname")),
        "write_sysrq_trigger": outcome(lambda: write_file("/proc/sysrq-trigger", b"h")),
        "write_sys_profiling": outcome(lambda: write_file("/sys/kernel/profiling", b"1")),
        "mkdir_in_sys": outcome(lambda: os.mkdir("/sys/kernel/probe")),
    }


def cgroups() -> dict[str, Result]:
    """The cgroup escape: release_agent, and writing anywhere in a cgroup hierarchy."""
    listed = outcome(lambda: os.listdir("/sys/fs/cgroup"))
    entries = os.listdir("/sys/fs/cgroup") if listed == "ok" else []
    return {
        "cgroupfs_entries": entries,
        "write_release_agent": outcome(
            lambda: write_file("/sys/fs/cgroup/memory/release_agent", b"/x")
        ),
        "write_root_cgroup_procs": outcome(
            lambda: write_file("/sys/fs/cgroup/cgroup.procs", str(os.getpid()).encode())
        ),
    }


def kernel_surface() -> dict[str, Result]:
    """Keyrings, modules, bpf, perf, kexec, reboot, swap, raw I/O, time, handles, io_uring."""
    attr = ctypes.create_string_buffer(128)
    return {
        "add_key": outcome(lambda: syscall("add_key", b"user", b"probe", b"x", 1, -2)),
        "keyctl": outcome(lambda: syscall("keyctl", 0, -3, 0)),  # KEYCTL_GET_KEYRING_ID
        "request_key": outcome(lambda: syscall("request_key", b"user", b"probe", None, 0)),
        "init_module": outcome(lambda: syscall("init_module", None, 0, b"")),
        "finit_module": outcome(lambda: syscall("finit_module", 0, b"", 0)),
        "delete_module": outcome(lambda: syscall("delete_module", b"loop", 0)),
        "bpf_map_create": outcome(lambda: syscall("bpf", 0, attr, 72)),
        "perf_event_open": outcome(lambda: syscall("perf_event_open", attr, 0, -1, -1, 0)),
        "kexec_load": outcome(lambda: syscall("kexec_load", 0, 0, None, 0)),
        "kexec_file_load": outcome(lambda: syscall("kexec_file_load", -1, -1, 0, b"", 0)),
        # LINUX_REBOOT_CMD_CAD_OFF: harmless even where allowed
        "reboot": outcome(lambda: syscall("reboot", 0xFEE1DEAD, 0x28121969, 0, None)),
        "swapon": outcome(lambda: syscall("swapon", b"/tmp/probe-swap", 0)),
        "iopl": outcome(lambda: syscall("iopl", 3)),
        "ioperm": outcome(lambda: syscall("ioperm", 0x80, 1, 1)),
        "settimeofday": outcome(lambda: syscall("settimeofday", attr, None)),
        "sethostname": outcome(lambda: syscall("sethostname", b"evil", 4)),
        "syslog_read": outcome(lambda: syscall("syslog", 3, attr, 64)),  # SYSLOG_ACTION_READ_ALL
        "acct": outcome(lambda: syscall("acct", b"/tmp/probe-acct")),
        "open_by_handle_at": outcome(lambda: syscall("open_by_handle_at", -100, attr, 0)),
        "userfaultfd": outcome(lambda: syscall("userfaultfd", 0)),
        "io_uring_setup": outcome(lambda: syscall("io_uring_setup", 1, attr)),
        "personality_read_implies_exec": outcome(lambda: syscall("personality", 0x0400000)),
        "personality_query": outcome(lambda: syscall("personality", 0xFFFFFFFF)),
    }


def devices() -> dict[str, Result]:
    """Device nodes: creating one, and what /dev holds."""
    block, char = 0o060600, 0o020600  # S_IFBLK, S_IFCHR
    return {
        "mknod_block_sda": outcome(lambda: os.mknod("/tmp/probe-sda", block, os.makedev(8, 0))),
        "mknod_char_mem": outcome(lambda: os.mknod("/tmp/probe-mem", char, os.makedev(1, 1))),
        "open_made_sda": outcome(lambda: open("/tmp/probe-sda", "rb")),
        "open_made_mem": outcome(lambda: open("/tmp/probe-mem", "rb")),
        "dev_entries": sorted(os.listdir("/dev")),
        "open_dev_mem": outcome(lambda: open("/dev/mem", "rb")),
    }


def sockets(port: int, host_address: str) -> dict[str, Result]:
    """Raw and packet sockets, vsock, the host's loopback service on ``port``, and the host's
    own address (``"-"`` when it has none but loopback)."""
    reach_host = "-" if host_address == "-" else outcome(lambda: connect((host_address, port)))
    return {
        "socket_inet_raw": outcome(lambda: socket.socket(2, socket.SOCK_RAW, 1).close()),
        "socket_packet": outcome(lambda: socket.socket(17, socket.SOCK_RAW, 0x0300).close()),
        "socket_vsock": outcome(lambda: socket.socket(40, socket.SOCK_STREAM, 0).close()),
        "socket_netlink_route": outcome(lambda: socket.socket(16, socket.SOCK_RAW, 0).close()),
        "socket_inet_stream": outcome(lambda: socket.socket(2, socket.SOCK_STREAM, 0).close()),
        "connect_host_loopback": outcome(lambda: connect(("127.0.0.1", port))),
        "connect_host_address": reach_host,
    }


def connect(address: tuple[str, int]) -> None:
    with socket.socket() as sock:
        sock.settimeout(5)
        sock.connect(address)


def credentials() -> dict[str, Result]:
    """What the kernel says about this process: capabilities, no_new_privs, seccomp mode."""
    with open("/proc/self/status") as lines:
        status = dict(line.split(":\t", 1) for line in lines.read().splitlines())
    return {key: status.get(key, "absent").strip()
            for key in ("CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp")}  # fmt: skip


def main() -> None:
    port, host_address = int(sys.argv[1]), sys.argv[2]
    found: dict[str, Result] = {}
    # mounts last: were an unmount of /proc let through, the /proc probes would still be right
    for group in (namespaces, processes, proc_files, cgroups, kernel_surface, devices,
                  credentials, mounts):  # fmt: skip
        found.update(group())
    found.update(sockets(port, host_address))
    print(json.dumps(found, default=lambda b: b.decode(errors="replace")))


if __name__ == "__main__":
    main()
