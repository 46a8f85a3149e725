"""Fixtures for the images integration tests: images built with umoci/skopeo, a loopback registry.

Every image is made here from a tiny rootfs (busybox-static), so nothing comes from the network;
every file lives under tmp_path and the registry process is stopped at teardown.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

TOOLS = ("skopeo", "umoci", "busybox")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip this directory's tests, with the reason, where the image tools are missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    here = str(Path(__file__).parent)
    for item in items:
        if missing and str(item.path).startswith(here):
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)} (./setup.sh)"))
        elif str(item.path).startswith(here) and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root (umoci keeps file ownership)"))


def sh(*argv: str | Path) -> str:
    """Run a tool the test needs, failing the test with its stderr."""
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


class ImageFactory:
    """Builds small test images as OCI layouts, and converts them to archives."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def rootfs(self, name: str, files: dict[str, str]) -> Path:
        """A busybox rootfs plus ``files`` (path -> content)."""
        tree = self.root / f"rootfs-{name}"
        (tree / "bin").mkdir(parents=True)
        shutil.copy2(shutil.which("busybox") or "/bin/busybox", tree / "bin" / "busybox")
        for applet in ("sh", "cat", "ls", "echo", "env", "id", "pwd"):
            os.symlink("busybox", tree / "bin" / applet)
        for path, content in files.items():
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            (tree / path).write_text(content)
        return tree

    def layout(self, name: str, files: dict[str, str], *config: str, tag: str = "v1") -> Path:
        """An OCI layout holding one image tagged ``tag``; ``config`` are umoci config flags."""
        layout = self.root / f"layout-{name}"
        image = f"{layout}:{tag}"
        sh("umoci", "init", "--layout", layout)
        sh("umoci", "new", "--image", image)
        sh("umoci", "insert", "--image", image, self.rootfs(name, files), "/")
        sh("umoci", "config", "--image", image, "--config.env=PATH=/bin", *config)
        return layout

    def delete_in_new_layer(self, layout: Path, tag: str, *paths: str, add: str = "") -> None:
        """Add a layer to ``layout:tag`` that deletes ``paths`` (umoci writes the whiteouts)."""
        bundle = self.root / f"bundle-{layout.name}"
        sh("umoci", "unpack", "--image", f"{layout}:{tag}", bundle)
        for path in paths:
            target = bundle / "rootfs" / path
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        if add:
            (bundle / "rootfs" / add).write_text("added in layer 2\n")
        sh("umoci", "repack", "--image", f"{layout}:{tag}", bundle)
        shutil.rmtree(bundle)

    def archive(self, layout: Path, tag: str, kind: str) -> Path:
        """``layout:tag`` as an ``oci-archive`` or ``docker-archive`` tarball."""
        path = self.root / f"{layout.name}-{tag}.{kind}.tar"
        dest = f"{kind}:{path}" + (":sandpool/test:1" if kind == "docker-archive" else "")
        sh("skopeo", "copy", "--quiet", f"oci:{layout}:{tag}", dest)
        return path


@pytest.fixture
def factory(tmp_path: Path) -> ImageFactory:
    """An ImageFactory working under tmp_path."""
    return ImageFactory(tmp_path / "build")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Registry:
    """Debian's docker-registry serving 127.0.0.1:port over plain HTTP."""

    def __init__(self, host: str) -> None:
        self.host = host

    def push(self, layout: Path, tag: str, name: str) -> str:
        """Push ``layout:tag`` as ``name``; returns the pullable reference."""
        reference = f"{self.host}/{name}"
        sh("skopeo", "copy", "--quiet", "--dest-tls-verify=false",
           f"oci:{layout}:{tag}", f"docker://{reference}")  # fmt: skip
        return reference


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, "docker-registry exited at start"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"docker-registry did not answer on {url}")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A real registry on loopback for the test, stopped and deleted afterwards."""
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not os.access(binary, os.X_OK):
        pytest.skip("needs Debian's docker-registry package (./setup.sh)")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'registry-data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v2/", proc)
        yield Registry(f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """host:port of a socket that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"127.0.0.1:{server.getsockname()[1]}"
