"""Files a container writes reach no host user (issue 12, hole 1), and runc containers' root
is not host root (a user namespace per container).

The attack this guards against: a container copies python3, makes it setuid root and sleeps;
on the host an unprivileged user runs the copy from the container's writable layer and gets
euid 0. "An unprivileged user" here is ``setpriv --reuid=nobody ... /bin/sh -c``: setpriv keeps
root's capabilities until it execs, so the shell it starts is the plain unprivileged user.
"""

from __future__ import annotations

import pwd
import re
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.errors import ImageError
from sandpool.worker.request import RunResult
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]  # runc, gVisor
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
# The container's copy of python3, setuid; /p (not /tmp, a tmpfs of its own under gVisor).
SETUID_COPY = 'cp "$(readlink -f "$(command -v python3)")" /p && chmod 4755 /p && touch /ready'
EUID = "import os; print(os.geteuid())"


def as_nobody(command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a shell as the unprivileged host user nobody."""
    return subprocess.run([*NOBODY, "/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


@contextmanager
def running(sp: Sandpool, pool: str, script: str, image: str = "builtin:default") -> Iterator[Path]:
    """Run ``script`` then sleep in a container of ``pool``; yield its directory once the
    script has written /ready (seen in the writable layer)."""
    results: list[RunResult] = []
    command = ["sh", "-c", f"{script}; sleep 60"]

    def run() -> None:
        results.append(sp.run(pool, command, image=image, timeout=90))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield _wait_for_ready(sp, thread)
    finally:
        for record in sp.ps():
            sp.kill(record.id)
        thread.join(timeout=60)
    assert results and results[0].exit_code == 137, results


def _wait_for_ready(sp: Sandpool, thread: threading.Thread) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and thread.is_alive():
        for record in sp.ps():
            directory = sp.state_dir / "containers" / record.id
            if (directory / "upper" / "ready").exists():
                return directory
        time.sleep(0.05)
    raise AssertionError("the container never wrote /ready")


@pytest.mark.parametrize("pool", POOLS)
def test_no_other_host_user_reaches_a_containers_files(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    """Fails on the old code: every directory was 0755, so nobody listed the writable layer
    and ran the setuid copy as root."""
    with running(sp, pool, SETUID_COPY) as directory:
        state = sp.state_dir
        for path in (state, state / "containers", state / "images", directory):
            assert stat.S_IMODE(path.stat().st_mode) & 0o066 == 0, path  # no r/w for others
        assert stat.S_IMODE((state / "images").stat().st_mode) == 0o700
        for path in (directory, directory / "rootfs", directory / "upper", state / "images"):
            listed = as_nobody(f"ls {path}")
            assert listed.returncode != 0 and "Permission denied" in listed.stderr, path
        for copy in (directory / "upper" / "p", directory / "rootfs" / "p"):
            ran = as_nobody(f"{copy} -c '{EUID}'")
            assert ran.returncode == 126 and "Permission denied" in ran.stderr, ran
            assert ran.stdout == ""


def test_a_setuid_file_from_a_runc_container_is_owned_by_an_unprivileged_uid(
    sp: Sandpool, no_leaks: Sandbox
) -> None:
    """Even reached by a process that can pass the directories (the issue's own setpriv
    keeps root's capabilities while it execs), the copy is owned by the container's
    unprivileged host uid, never root, and runs without its setuid bit: the layer's disk is
    mounted nosuid, so the caller keeps its own uid. Fails on the old code: it printed 0."""
    with running(sp, "performance", SETUID_COPY) as directory:
        copy = directory / "upper" / "p"
        owner = copy.stat()
        assert owner.st_mode & stat.S_ISUID and owner.st_uid >= 100000
        ran = subprocess.run([*NOBODY, str(copy), "-c", EUID], capture_output=True, text=True,
                             timeout=30, check=False)  # fmt: skip
        assert ran.stdout.strip() == str(pwd.getpwnam("nobody").pw_uid), ran


def _uid_map(result: RunResult) -> tuple[int, int, int]:
    match = re.search(rb"^\s*0\s+(\d+)\s+(\d+)\s*$", result.stdout, re.MULTILINE)
    assert match, result.stdout
    return 0, int(match[1]), int(match[2])


def test_runc_containers_get_user_namespaces_of_their_own(sp: Sandpool, no_leaks: Sandbox) -> None:
    """Concurrent containers never share a host uid range; inside, the usual still works:
    root, its image files, /dev/null, masked /proc, /sys, the workdir, exit codes."""
    script = (
        "cat /proc/self/uid_map; id -u; stat -c %u /bin/busybox; echo x > /dev/null; "
        "wc -c < /proc/timer_list; ls /sys/kernel >/dev/null && echo sys; pwd; sleep 3; exit 7"
    )
    results: list[RunResult] = []

    def run() -> None:
        results.append(sp.run("performance", ["sh", "-c", script], image="builtin:busybox",
                              workdir="/tmp"))  # fmt: skip

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    maps = {_uid_map(r) for r in results}
    assert len(maps) == 3 and all(host >= 100000 and size == 65536 for _, host, size in maps)
    for result in results:
        assert result.exit_code == 7, result
        assert result.stdout.split(b"\n")[1:7] == [b"0", b"0", b"0", b"sys", b"/tmp", b""]


def test_an_image_under_a_runc_containers_idmapped_layer_is_kept(
    sp: Sandpool, no_leaks: Sandbox
) -> None:
    """The overlay's lower layer is ``/proc/self/fd/N`` there, not the image's path: the image
    store must still see that the image is in use."""
    image = sp.images.get("builtin:busybox")
    with running(sp, "performance", "touch /ready", image="builtin:busybox"):
        with pytest.raises(ImageError, match="in use"):
            sp.images.remove(image.digest)
        assert image.digest not in [i.digest for i in sp.images.prune(everything=True)]
        assert Path(image.rootfs).is_dir()
