"""The system-call filter a pool's containers run under, as one ``seccomp`` doctor line."""

from __future__ import annotations

from sandpool.config.resolved import ResolvedPool
from sandpool.doctor.report import Check, ok
from sandpool.runtime.seccomp import allowed_syscall_count

__all__ = ["seccomp_check"]


def seccomp_check(pool: ResolvedPool) -> Check:
    """runc: sandpool's allowlist and its size; gVisor: the Sentry answers every system call
    itself, and runsc confines the Sentry with its own host seccomp filter."""
    if pool.is_gvisor:
        return ok(pool.name, "seccomp", "gVisor Sentry (host seccomp by runsc)")
    count = allowed_syscall_count()
    return ok(pool.name, "seccomp", f"allowlist (Docker default model), {count} syscalls")
