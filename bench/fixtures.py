"""What the contenders share: a throw-away state dir and config, images, raw bundles, podman.

``Workspace`` is a context manager; on exit it removes everything it and the contenders made
(containers, overlay mounts, cgroups, podman storage, the temporary directory), so a bench run
leaves nothing behind even when it fails half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandpool.images import Image, ImageStore
from sandpool.runtime.base import ContainerRuntime
from sandpool.runtime.spec import ContainerSpec, build_spec
from sandpool.worker.cgroups import CGROUP_ROOT, V1_CONTROLLERS, detect_cgroup_version
from sandpool.worker.disk import DISK_NAME
from sandpool.worker.overlay import mount_overlay, unmount
from sandpool.worker.records import process_start_time

__all__ = ["CGROUP_PARENT", "RUNC_POOL", "RUNSC_POOL", "RawBundle", "Workspace"]

CGROUP_PARENT = "sandpool-bench"
RUNC_POOL = "performance"
RUNSC_POOL = "default"
SMALL_IMAGE = "builtin:busybox"
PODMAN_IMAGE = "localhost/sandpool-bench-busybox:1"

CONFIG = """\
worker:
  stateDir: {root}/state
  cgroupParent: {cgroup}
  pools:
    {gvisor}:
      containerRuntime: gvisor
      containerRuntimeConfig:
        gvisorPlatform: ptrace
        gvisorRoot: {root}/gvisor
    {runc}:
      containerRuntime: runc
"""


class RawBundle:
    """One prepared bundle for the raw contenders: an overlay over the image rootfs and a
    ``config.json`` built by sandpool's own ``build_spec`` + ``runtime.prepare``, whose cgroup
    sits under a parent cgroup created once with the same limits sandpool sets."""

    def __init__(self, root: Path, runtime: ContainerRuntime, image: Image, slot: int) -> None:
        self.dir = root / f"raw-{runtime.name}-{slot}"
        self.runtime = runtime
        self.cgroup_rel = f"{CGROUP_PARENT}/raw-{runtime.name}-{slot}"
        self.dir.mkdir(parents=True)
        self.rootfs = mount_overlay(Path(image.rootfs), self.dir)
        self._create_parent_cgroup()
        spec = ContainerSpec(args=("true",), rootfs=self.rootfs,
                             cgroups_path=f"/{self.cgroup_rel}/ctr", env=image.env)  # fmt: skip
        self.spec = runtime.prepare(build_spec(spec))
        (self.dir / "config.json").write_text(json.dumps(self.spec))

    def _create_parent_cgroup(self) -> None:
        if detect_cgroup_version() == 2:
            (CGROUP_ROOT / CGROUP_PARENT).mkdir(exist_ok=True)
            (CGROUP_ROOT / self.cgroup_rel).mkdir()
            return
        for controller, limit_file, value in (("memory", "memory.limit_in_bytes", "536870912"),
                                              ("pids", "pids.max", "4096")):  # fmt: skip
            path = CGROUP_ROOT / controller / self.cgroup_rel
            path.mkdir(parents=True)
            (path / limit_file).write_text(value)

    def argv(self, container_id: str) -> list[str]:
        """Exactly the ``run`` command line sandpool uses (``RuntimeObject.argv``)."""
        log = ["--log", str(self.dir / "runtime.log"), "--log-format", "json"]
        return self.runtime.argv("run", "--bundle", str(self.dir), "--pid-file",
                                 str(self.dir / "pid"), container_id, extra_global=log)  # fmt: skip

    def close(self) -> None:
        """Unmount the overlay; the cgroups go with the workspace's parent cgroup."""
        unmount(self.rootfs)


class Workspace:
    """A temporary state dir, config file, images and (optionally) podman storage."""

    def __init__(self, *, large_mb: int, podman: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sandpool-bench-"))
        self.root.chmod(0o711)  # runc containers' user namespaces need a searchable path
        self.config_path = self.root / "sandpool.yaml"
        self.config_path.write_text(CONFIG.format(root=self.root, cgroup=CGROUP_PARENT,
                                                  gvisor=RUNSC_POOL, runc=RUNC_POOL))  # fmt: skip
        self.large_mb = large_mb
        self.use_podman = podman
        self.bundles: dict[str, list[RawBundle]] = {}
        self.server: subprocess.Popen[bytes] | None = None
        self.no_server_socket = self.root / "nobody-listens.sock"
        self.large_image = ""

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- images ---------------------------------------------------------------------------

    def store(self) -> ImageStore:
        """The bench state dir's image store."""
        return ImageStore(self.root / "state")

    def small_image(self) -> Image:
        """builtin:busybox (~2 MB), built into the bench's own cache."""
        return self.store().get(SMALL_IMAGE)

    def make_large_image(self) -> str:
        """busybox + ``large_mb`` MB of random data, packed as an OCI layout; its reference."""
        from sandpool.images.builtin import Builtin, pack_layout

        rootfs = self.root / "large-rootfs"
        shutil.copytree(self.small_image().rootfs, rootfs, symlinks=True)
        with open(rootfs / "ballast.bin", "wb") as out:
            for _ in range(self.large_mb):
                out.write(os.urandom(1 << 20))
        layout = self.root / "large-layout"
        pack_layout(Builtin("bench-large", "1", lambda _: None), rootfs, layout, "image")
        shutil.rmtree(rootfs)
        self.large_image = f"oci:{layout}:image"
        self.store().get(self.large_image)  # unpack now, outside any timing
        return self.large_image

    def raw_bundles(self, runtime: ContainerRuntime, image: Image, count: int) -> list[RawBundle]:
        """``count`` prepared bundles for ``runtime``, one per concurrent run (each has its own
        cgroup, as sandpool's containers do); made once, removed with the workspace."""
        made = self.bundles.setdefault(runtime.name, [])
        while len(made) < count:
            made.append(RawBundle(self.root, runtime, image, len(made)))
        return made[:count]

    # ---- sandpool serve ---------------------------------------------------------------------

    def start_server(self) -> Path:
        """A warm ``sandpool serve`` on the workspace's socket (started once); the socket."""
        socket = self.root / "serve.sock"
        if self.server is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SANDPOOL_")}
            self.server = subprocess.Popen(
                [str(Path(sys.executable).with_name("sandpool")), "serve", "--socket", str(socket)],
                env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while not socket.exists():
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("sandpool serve did not start")
                time.sleep(0.05)
        return socket

    def server_memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM of the running ``sandpool serve``."""
        assert self.server is not None, "start_server() first"
        status = Path(f"/proc/{self.server.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}

    # ---- podman ---------------------------------------------------------------------------

    def podman_base(self) -> list[str]:
        """podman with its own storage inside the workspace (nothing shared with the host's)."""
        return ["podman", "--root", str(self.root / "podman" / "root"),
                "--runroot", str(self.root / "podman" / "run"),
                "--storage-driver", "overlay"]  # fmt: skip

    def import_podman_image(self, image: Image) -> None:
        """``podman import`` the busybox rootfs as a local image (no registry needed)."""
        tar = subprocess.Popen(["tar", "-C", str(image.rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([*self.podman_base(), "import", "-q", "-", PODMAN_IMAGE], stdin=tar.stdout,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        tar.wait()

    def podman_run_argv(self) -> list[str]:
        """The podman contender's command line."""
        return [*self.podman_base(), "run", "--rm", "--runtime", "runc", "--network", "none",
                "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", PODMAN_IMAGE,
                "true"]  # fmt: skip

    # ---- clean-up -------------------------------------------------------------------------

    def close(self) -> None:
        """Remove every container, mount, cgroup and file the bench made."""
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=60)
        for bundle in (b for group in self.bundles.values() for b in group):
            with contextlib.suppress(OSError):
                bundle.close()
        if self.use_podman and (self.root / "podman").exists():
            for args in (["rm", "-af"], ["rmi", "-af"]):
                subprocess.run([*self.podman_base(), *args], capture_output=True, check=False)
        self._unmount_below(self.root)
        _remove_cgroup_tree(CGROUP_PARENT)
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _unmount_below(root: Path) -> None:
        with open("/proc/self/mountinfo", encoding="utf-8") as info:
            points = [line.split()[4] for line in info]
        for point in sorted((p for p in points if p.startswith(f"{root}/")), reverse=True):
            unmount(Path(point))


WARM_POOL = """\
    warm-{runtime}:
      containerRuntime: {runtime}
{extra}      warmPool:
        size: {size}
        image: {image}
"""


def warm_pools(root: Path, runtimes: Iterable[str], size: int) -> str:
    """Pools ``warm-<runtime>`` holding ``size`` warm sandboxes of the small image each, as
    configuration text to append to the workspace's (gVisor on ptrace, the workspace's root)."""
    text = ""
    for runtime in runtimes:
        extra = ""
        if runtime == "gvisor":
            extra = (f"      containerRuntimeConfig:\n        gvisorPlatform: ptrace\n"
                     f"        gvisorRoot: {root}/gvisor\n")  # fmt: skip
        text += WARM_POOL.format(runtime=runtime, extra=extra, size=size, image=SMALL_IMAGE)
    return text


def _remove_cgroup_tree(rel: str) -> None:
    """rmdir ``rel`` and its descendants in every hierarchy (only empty cgroups can go)."""
    roots = [CGROUP_ROOT] if detect_cgroup_version() == 2 else [
        CGROUP_ROOT / c for c in V1_CONTROLLERS if (CGROUP_ROOT / c).is_dir()
    ]  # fmt: skip
    for root in roots:
        top = root / rel
        if not top.is_dir():
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def leftovers(ws: Workspace, runtimes: list[ContainerRuntime]) -> dict[str, Any]:
    """What a run left behind (should be empty): runtime containers and mounts."""
    out: dict[str, Any] = {}
    for runtime in runtimes:
        with contextlib.suppress(Exception):
            out[runtime.name] = [s.id for s in runtime.list()]
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        mounts = [ln.split()[4] for ln in info if f"{ws.root}/state" in ln.split()[4]]
    out["mounts"] = [m for m in mounts if not _warm_disk_of_live_process(m)]
    return out


def _warm_disk_of_live_process(mount: str) -> bool:
    """A disk that a live process (the bench's ``sandpool serve``) keeps for its next run."""
    match = DISK_NAME.match(Path(mount).name)
    return match is not None and process_start_time(int(match[1])) == int(match[2])
