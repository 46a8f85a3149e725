"""The test VM's kernel and initramfs: Debian's ``linux-image-amd64`` (downloaded once with
``apt-get download``, unpacked with ``dpkg-deb -x`` into ``.cache/vm/``) and a busybox
initramfs holding ``init.sh`` and the modules the VM needs that are not built in."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["CACHE", "Kernel", "VmUnavailable", "build_initramfs", "fetch_kernel", "host_shares"]

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "vm"
HERE = Path(__file__).resolve().parent
BUSYBOX = Path("/bin/busybox")
# 9p over virtio-pci for the shares, overlay for container root filesystems, loop and ext4
# for the containers' size-limited writable layers (``worker.disk``); what CRIU's kernel
# feature detection probes (veth, socket diag, tun, nf_tables) and what its dump of a
# container's network namespace asks (raw and packet socket diag; conntrack over netlink:
# without it the dump stops at "-22 reported by netlink"). A host loads these on demand; the
# VM has no modprobe tree.
MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "loop", "ext4", "veth", "unix_diag",
           "inet_diag", "tcp_diag", "udp_diag", "raw_diag", "netlink_diag", "af_packet_diag",
           "tun", "crc32c_generic", "nf_tables", "nf_conntrack_netlink")  # fmt: skip


class VmUnavailable(Exception):
    """The VM cannot be started on this machine (no kernel package, no qemu); says why."""


class Kernel:
    """An unpacked Debian kernel package: ``vmlinuz`` and its modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.vmlinuz = next(root.glob("boot/vmlinuz-*"))
        self.release = self.vmlinuz.name.removeprefix("vmlinuz-")
        self.modules = root / "lib" / "modules" / self.release


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise VmUnavailable(f"{argv[0]} is not installed (./setup.sh installs it)") from exc
    if done.returncode != 0:
        raise VmUnavailable(f"{' '.join(argv)} failed: {done.stderr.strip()[-400:]}")
    return done.stdout


def _kernel_package() -> str:
    """The versioned package ``linux-image-amd64`` depends on (linux-image-6.1.0-NN-amd64)."""
    deps = _run(["apt-cache", "depends", "linux-image-amd64"])
    found = re.search(r"Depends: (linux-image-[0-9][^\s]*)", deps)
    if not found:
        raise VmUnavailable(f"linux-image-amd64 depends on no kernel package: {deps.strip()}")
    return found[1]


def fetch_kernel() -> Kernel:
    """The cached kernel, downloading and unpacking it on first use."""
    target = CACHE / "kernel"
    if list(target.glob("boot/vmlinuz-*")):
        return Kernel(target)
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        _run(["apt-get", "download", _kernel_package()], cwd=Path(tmp))
        deb = next(Path(tmp).glob("*.deb"))
        unpacked = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
    return Kernel(target)


def _module_file(kernel: Kernel, name: str) -> Path:
    found = list(kernel.modules.glob(f"kernel/**/{name}.ko"))
    if not found:
        raise VmUnavailable(f"module {name}.ko not in {kernel.modules}")
    return found[0]


def _depends(module: Path) -> list[str]:
    """The ``depends=`` field of a module's .modinfo (modules it needs loaded first)."""
    found = re.search(rb"\x00depends=([^\x00]*)\x00", b"\x00" + module.read_bytes())
    return [d.replace("-", "_") for d in found[1].decode().split(",") if d] if found else []


def _load_order(kernel: Kernel) -> list[Path]:
    """The modules to load, each after the ones it depends on; built-ins are skipped."""
    builtin = (kernel.modules / "modules.builtin").read_text()
    order: list[Path] = []

    def visit(name: str) -> None:
        if f"/{name}.ko" in builtin.replace("-", "_") or any(p.stem == name for p in order):
            return
        path = _module_file(kernel, name)
        for dep in _depends(path):
            visit(dep)
        order.append(path)

    for name in MODULES:
        visit(name)
    return order


def host_shares() -> list[tuple[str, Path]]:
    """The host directories the guest mounts read-only at the same paths (9p tag, path):
    /usr, /etc, the worktree, and the virtual environment's base Python if not under /usr."""
    shares = [("usr", Path("/usr")), ("etc", Path("/etc")), ("worktree", REPO)]
    base = Path(sys.base_prefix)
    if not base.is_relative_to("/usr"):
        shares.append(("python", base))
    return shares


def build_initramfs(kernel: Kernel, out: Path) -> Path:
    """A gzipped newc cpio: busybox and its applets, ``/init``, the modules, the shares to
    mount (``/shares``) and the worktree's path (``/worktree.path``)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for applet in _run([str(BUSYBOX), "--list"]).split():
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        for d in ("proc", "sys", "dev", "modules"):
            (root / d).mkdir()
        modules = _load_order(kernel)
        for module in modules:
            shutil.copy2(module, root / "modules" / module.name)
        (root / "modules.order").write_text("\n".join(m.name for m in modules) + "\n")
        (root / "worktree.path").write_text(str(REPO))
        (root / "shares").write_text("".join(f"{t} {p}\n" for t, p in host_shares()))
        shutil.copy2(HERE / "init.sh", root / "init")
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        if shutil.which("cpio") is None:
            raise VmUnavailable("cpio is not installed (./setup.sh installs it)")
        archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, check=True,
                                 input="\n".join(files).encode(), capture_output=True)  # fmt: skip
    out.write_bytes(gzip.compress(archive.stdout, compresslevel=1))
    return out
