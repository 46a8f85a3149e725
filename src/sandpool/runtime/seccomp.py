"""runc's seccomp profile: an allowlist modelled on Docker's default (moby
``profiles/seccomp/default.json``); every system call not listed fails with EPERM.

gVisor containers do not get it (the Sentry is the boundary; runsc filters its own host calls).
The tables are data; ``seccomp_profile`` only arranges them as the OCI ``linux.seccomp`` object.

Where this profile differs from Docker's, it is stricter:

- Docker's capability-conditional rules are resolved against ``spec.DEFAULT_CAPABILITIES``:
  only ``chroot`` (CAP_SYS_CHROOT) is kept. Without CAP_SYS_ADMIN, mount, namespaces (unshare,
  setns, clone with namespace flags), bpf, perf_event_open, fanotify_init, quotactl, syslog and
  sethostname stay refused, and so do module loading, reboot, acct, iopl and clock setting.
- ``io_uring_*`` is refused, as in Docker since v25 (its submissions bypass seccomp entirely).
- ``ptrace``, ``process_vm_readv``/``writev`` and ``name_to_handle_at`` stay refused (Docker
  allows them on kernels >= 4.8): sandpool's earlier denylist refused them and untrusted code
  has no need to read another process's memory.
- keyrings (add_key, keyctl, request_key), kexec, userfaultfd, swapon/off, open_by_handle_at,
  lookup_dcookie and every call newer than this table are refused by omission; runc makes calls
  unknown to its libseccomp return ENOSYS, so libc falls back to the older calls listed here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ALLOWED_SYSCALLS", "CLONE_NAMESPACE_FLAGS", "allowed_syscall_count", "seccomp_profile"]

EPERM = 1
ENOSYS = 38  # clone3's answer: glibc then falls back to clone, whose flags the filter can see
ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                 "SCMP_ARCH_ARM")  # fmt: skip
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: clone needs all clear.
CLONE_NAMESPACE_FLAGS = 0x7E020000
AF_VSOCK = 40  # host <-> guest sockets: the only family refused outright (others need caps)
# personality(2) values Docker allows: PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE (and with UNAME26),
# and 0xffffffff (query the current persona).
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# Allowed with any arguments. Names unknown on an architecture are skipped by runc.
ALLOWED_SYSCALLS = (
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "chown32", "chroot", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv",
    "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid",
    "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
    "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
    "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
    "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
    "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep", "newfstatat",
    "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
    "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
    "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
    "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
    "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
    "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid",
    "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
    "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64",
    "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
    "waitpid", "write", "writev",
    # architecture-specific (x86: TLS and LDT set-up; arm: cache and TLS helpers)
    "arch_prctl", "modify_ldt", "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
    "breakpoint", "cacheflush", "set_tls",
)  # fmt: skip


def _only_if(name: str, *args: dict[str, Any]) -> dict[str, Any]:
    return {"names": [name], "action": "SCMP_ACT_ALLOW", "args": list(args)}


def _arg0(op: str, value: int, value_two: int = 0) -> dict[str, Any]:
    return {"index": 0, "value": value, "valueTwo": value_two, "op": op}


def seccomp_profile() -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object for runc containers (a fresh copy each call)."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(ARCHITECTURES),
        "syscalls": [
            {"names": list(ALLOWED_SYSCALLS), "action": "SCMP_ACT_ALLOW"},
            _only_if("clone", _arg0("SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0)),
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            _only_if("socket", _arg0("SCMP_CMP_NE", AF_VSOCK)),
            *(_only_if("personality", _arg0("SCMP_CMP_EQ", p)) for p in PERSONALITIES),
        ],
    }


def allowed_syscall_count() -> int:
    """How many system calls the profile allows, with or without argument checks."""
    return len(set(ALLOWED_SYSCALLS) | {"clone", "socket", "personality"})
