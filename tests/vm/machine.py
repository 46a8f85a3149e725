"""Boot the test VM under qemu: Debian's kernel, the busybox initramfs, the host's /usr and
/etc and the worktree shared read-only over 9p, and a read-write ``out`` share for the job
description and results. The console (serial) goes to a file: the stage's evidence."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.vm.kernel import Kernel, VmUnavailable, host_shares

__all__ = ["Boot", "boot", "pick_accel", "qemu_binary"]

MEMORY_MIB = 2048
CPUS = 2
KVM_PROBE_S = 8


def _share(tag: str, path: Path, readonly: bool = True) -> list[str]:
    ro = ",readonly=on" if readonly else ""
    return ["-fsdev", f"local,id={tag},path={path},security_model=passthrough{ro}",
            "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]  # fmt: skip


def qemu_binary() -> str:
    """The path of qemu-system-x86_64; VmUnavailable if it is not installed."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise VmUnavailable("qemu-system-x86_64 is not installed (./setup.sh installs it)")
    return qemu


def _qemu(kernel: Kernel, accel: str, append: str) -> list[str]:
    qemu = qemu_binary()
    cpu = "host" if accel == "kvm" else "max"
    return [qemu, "-accel", accel, "-cpu", cpu, "-m", str(MEMORY_MIB), "-smp", str(CPUS),
            "-kernel", str(kernel.vmlinuz), "-append", f"console=ttyS0 panic=-1 {append}",
            "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]  # fmt: skip


def pick_accel(kernel: Kernel, cache: Path | None = None) -> str:
    """``kvm`` if a kernel boots under it (it panics at once, lacking a root file system),
    else ``tcg`` (software emulation). /dev/kvm may exist and still hang: the probe has a
    time limit (``KVM_PROBE_S``, spent on every run where kvm hangs), so its answer is kept in
    ``cache`` for this host boot, this kernel and this qemu. ``SANDPOOL_VM_ACCEL`` (kvm or
    tcg) skips the probe."""
    chosen = os.environ.get("SANDPOOL_VM_ACCEL")
    if chosen:
        return chosen
    if not Path("/dev/kvm").exists():
        return "tcg"
    key = _probe_key(kernel)
    if cache is not None and cache.is_file() and cache.read_text().startswith(f"{key} "):
        return cache.read_text().split()[-1]
    try:
        probe = subprocess.run(_qemu(kernel, "kvm", "quiet"), capture_output=True,
                               timeout=KVM_PROBE_S, check=False)  # fmt: skip
        accel = "kvm" if b"Kernel panic" in probe.stdout else "tcg"
    except subprocess.TimeoutExpired:
        accel = "tcg"
    if cache is not None:
        cache.write_text(f"{key} {accel}\n")
    return accel


def _probe_key(kernel: Kernel) -> str:
    """What the kvm probe's answer depends on: the host's boot (its kernel, /dev/kvm), the
    guest kernel and the qemu binary."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    qemu = Path(qemu_binary()).stat()
    return f"{boot_id}/{kernel.release}/{qemu.st_size}-{qemu.st_mtime_ns}"


class Boot:
    """A running VM: qemu until it powers off, its console (serial) going to ``console``."""

    def __init__(self, kernel: Kernel, initramfs: Path, out: Path, console: Path,
                 accel: str) -> None:  # fmt: skip
        argv = [*_qemu(kernel, accel, "quiet"), "-initrd", str(initramfs),
                *(arg for tag, path in host_shares() for arg in _share(tag, path)),
                *_share("out", out, readonly=False)]  # fmt: skip
        self.console = console
        self._sink = console.open("wb")
        self._sink.write(f"host: {' '.join(argv)}\n".encode())
        self._sink.flush()
        self.proc = subprocess.Popen(argv, stdout=self._sink, stderr=self._sink,
                                     stdin=subprocess.DEVNULL)  # fmt: skip

    def wait(self, timeout: float) -> int:
        """qemu's exit status once the VM powered off; 124 (and qemu killed) after
        ``timeout`` seconds."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._sink.write(f"\nhost: the VM did not power off within {timeout:.0f} s\n".encode())
            status = 124
        self.stop()
        return status

    def stop(self) -> None:
        """Kill qemu (the session ended before the stage ran)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._sink.close()


def boot(kernel: Kernel, initramfs: Path, out: Path, console: Path, timeout: float,
         accel: str) -> int:  # fmt: skip
    """Run the VM until it powers off; its console goes to ``console``; qemu's exit status."""
    return Boot(kernel, initramfs, out, console, accel).wait(timeout)
