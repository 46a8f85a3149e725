"""runc's seccomp allowlist: refuses by default, never lets a namespace or clone3 through."""

from __future__ import annotations

from typing import Any

from sandpool.runtime.seccomp import ALLOWED_SYSCALLS, seccomp_profile
from sandpool.runtime.spec import DEFAULT_CAPABILITIES

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
CLONE_NEWNS, CLONE_NEWCGROUP = 0x20000, 0x2000000
# Calls untrusted code must never make: each is refused by omission from the allowlist.
NEVER = {
    "unshare", "setns", "mount", "umount2", "pivot_root", "fsopen", "fsmount", "move_mount",
    "open_tree", "ptrace", "process_vm_readv", "process_vm_writev", "add_key", "keyctl",
    "request_key", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "bpf", "perf_event_open", "reboot", "swapon", "swapoff", "iopl",
    "ioperm", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "syslog", "acct", "quotactl", "sethostname",
    "settimeofday", "clock_settime", "lookup_dcookie", "fanotify_init", "clone", "clone3",
    "socket", "personality",
}  # fmt: skip


def _rules(name: str) -> list[dict[str, Any]]:
    return [rule for rule in seccomp_profile()["syscalls"] if name in rule["names"]]


def test_everything_not_listed_fails_with_eperm() -> None:
    profile = seccomp_profile()
    assert (profile["defaultAction"], profile["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert "SCMP_ARCH_X86_64" in profile["architectures"]


def test_no_dangerous_call_is_allowed_unconditionally() -> None:
    assert NEVER & set(ALLOWED_SYSCALLS) == set()
    assert len(ALLOWED_SYSCALLS) == len(set(ALLOWED_SYSCALLS))


def test_clone_is_allowed_only_without_namespace_flags() -> None:
    [rule] = _rules("clone")
    [arg] = rule["args"]
    assert (arg["index"], arg["op"], arg["valueTwo"]) == (0, "SCMP_CMP_MASKED_EQ", 0)
    for flag in (CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWCGROUP):
        assert arg["value"] & flag


def test_clone3_answers_enosys_so_libc_falls_back_to_clone() -> None:
    assert _rules("clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]


def test_socket_refuses_only_vsock_and_personality_only_known_personas() -> None:
    [socket] = _rules("socket")
    assert socket["args"] == [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]
    personas = {rule["args"][0]["value"] for rule in _rules("personality")}
    assert personas == {0, 8, 0x20000, 0x20008, 0xFFFFFFFF}


def test_capability_conditional_calls_follow_the_capabilities_kept() -> None:
    """Docker allows chroot only with CAP_SYS_CHROOT, which sandpool keeps; the calls that
    need CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, … stay out (see NEVER)."""
    assert "CAP_SYS_CHROOT" in DEFAULT_CAPABILITIES and "chroot" in ALLOWED_SYSCALLS
    assert "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES


def test_each_call_gets_a_fresh_profile() -> None:
    seccomp_profile()["syscalls"].clear()
    assert seccomp_profile()["syscalls"]
