"""The worker image, built for real: ``sandpool images build-worker`` with podman, then run.

Off by default (marker ``podman_build``): it downloads a Debian base with mmdebstrap, the
image's Debian packages and sandpool's PyPI dependencies (about 2 minutes each on these
machines) and builds an 835 MB image. To run it:

    SANDPOOL_PODMAN_BUILD=1 .venv/bin/pytest tests/integration/test_worker_image.py -v

(``SANDPOOL_PODMAN_BASE=<image>`` skips mmdebstrap: any Debian bookworm image in the test's
store, e.g. from ``podman load``.) It uses a podman store of its own under tmp_path and a cgroup
parent of its own, and removes both. The check is what a worker pod does: run a container on
each runtime inside the image, privileged, as ``sandpool k8s render`` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import parent_cgroups

pytestmark = [
    pytest.mark.podman_build,
    pytest.mark.root,
    pytest.mark.skipif(
        os.environ.get("SANDPOOL_PODMAN_BUILD") != "1",
        reason="builds an 835 MB image from Debian and PyPI (minutes, network): "
        "set SANDPOOL_PODMAN_BUILD=1 to run",
    ),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed"),
    pytest.mark.timeout(1500),
]

SANDPOOL = str(Path(sys.executable).with_name("sandpool"))
TAG = "localhost/sandpool-worker:it"
# What the host's pip trusts (a TLS-intercepting proxy's CA, where there is one).
CA_FILE = os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
# podman's default rlimits are above what this machine lets a container have
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture
def podman_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A podman store under tmp_path; every image and mount of it removed afterwards."""
    conf = tmp_path / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "overlay"\nrunroot = "{tmp_path}/run"\n'
        f'graphroot = "{tmp_path}/root"\n'
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    yield env
    subprocess.run(["podman", "system", "reset", "--force"], env=env, check=False)
    mounts = Path("/proc/self/mounts").read_text()
    assert str(tmp_path) not in mounts, "the test's podman store left a mount"


def base_image(env: dict[str, str], tmp_path: Path) -> str:
    """A Debian bookworm image in the test's store: given, or made with mmdebstrap."""
    given = os.environ.get("SANDPOOL_PODMAN_BASE")
    if given:
        return given
    if shutil.which("mmdebstrap") is None:
        pytest.skip(
            "mmdebstrap not installed (apt-get install mmdebstrap), no SANDPOOL_PODMAN_BASE"
        )
    tar = tmp_path / "base.tar"
    mirror = "http://deb.debian.org/debian"
    subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", "bookworm", str(tar), mirror],
                   check=True, timeout=900)  # fmt: skip
    subprocess.run(["podman", "import", "-q", str(tar), "localhost/sandpool-it-base:bookworm"],
                   env=env, check=True, timeout=300)  # fmt: skip
    tar.unlink()  # 170 MB; the store has it now
    return "localhost/sandpool-it-base:bookworm"


def run_in_image(env: dict[str, str], cgroup_parent: str, script: str) -> str:
    """``script`` in a privileged container of the image: a worker pod's conditions."""
    argv = ["podman", "run", "--rm", "--privileged", "--runtime", "runc", "--network", "none",
            *ULIMITS, "--tmpfs", "/var/lib/sandpool:exec", "--tmpfs", "/run/gvisor",
            "-e", f"SANDPOOL_WORKER_CGROUPPARENT={cgroup_parent}",
            TAG, "sh", "-c", script]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_build_worker_image_runs_both_runtimes(podman_env: dict[str, str], tmp_path: Path) -> None:
    base = base_image(podman_env, tmp_path)
    build = [SANDPOOL, "images", "build-worker", "--base", base, "--tag", TAG,
             "--ca-file", CA_FILE]  # fmt: skip
    subprocess.run(build, env=podman_env, check=True, timeout=1200)
    entrypoint = subprocess.run(
        ["podman", "image", "inspect", TAG, "--format", "{{json .Config.Entrypoint}}"],
        env=podman_env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert entrypoint.strip() == '["/usr/bin/tini","-g","--"]'
    cgroup_parent = f"sandpool-imgtest-{os.getpid()}"
    try:
        out = run_in_image(podman_env, cgroup_parent, (
            "sandpool images build-default >/dev/null"
            " && sandpool run --pool performance -- uname -r"
            " && sandpool run --pool default -- uname -r"
        ))  # fmt: skip
    finally:
        for directory in parent_cgroups(cgroup_parent):
            directory.rmdir()  # fails (and so the test) if a container's cgroup is left in it
    runc_kernel, gvisor_kernel = out.split()
    assert runc_kernel == os.uname().release  # runc: the host's kernel
    assert gvisor_kernel != os.uname().release  # gVisor: its own (4.4.0)
