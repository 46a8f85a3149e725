"""The per-container disk limit: the writable layer is a size-limited filesystem of its own."""

from __future__ import annotations

import pytest

from sandpool.api import Sandpool
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]  # runc, gVisor
BUSYBOX = "builtin:busybox"
MiB = 1 << 20


@pytest.mark.parametrize("pool", POOLS)
def test_filling_the_layer_gives_enospc_at_the_limit(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    """Without a limit the 40 MiB are written to the host (the old behaviour)."""
    fill = "dd if=/dev/zero of=/big bs=1M count=40; echo dd=$?; wc -c < /big"
    result = sp.run(pool, ["sh", "-c", fill], image=BUSYBOX, disk="8Mi", timeout=60)
    assert result.exit_code == 0
    assert b"No space left on device" in (result.stderr or b"")
    lines = (result.stdout or b"").decode().split()
    assert lines[0] == "dd=1"
    assert 4 * MiB < int(lines[1]) <= 8 * MiB


@pytest.mark.parametrize("pool", POOLS)
def test_the_pool_default_is_one_gibibyte(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    result = sp.run(pool, ["sh", "-c", "df -k /"], image=BUSYBOX)
    size_kib = int((result.stdout or b"").decode().splitlines()[1].split()[1])
    assert 900 * 1024 < size_kib <= 1024 * 1024


@pytest.mark.parametrize("pool", POOLS)
def test_a_reused_disk_starts_empty(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    """Disks are kept warm for the next container: nothing of the last one may remain."""
    first = sp.run(pool, ["sh", "-c", "echo secret > /left; mkdir /d; touch /d/f"],
                   image=BUSYBOX, disk="4Mi")  # fmt: skip
    assert first.exit_code == 0
    probe = "for f in /left /d; do test -e $f && echo found $f; done; echo checked"
    second = sp.run(pool, ["sh", "-c", probe], image=BUSYBOX, disk="4Mi")
    assert second.stdout == b"checked\n"


def test_a_bad_disk_size_is_a_start_failure(sp: Sandpool, no_leaks: Sandbox) -> None:
    from sandpool.errors import ContainerStartFailed

    with pytest.raises(ContainerStartFailed, match="disk: expected a size of at least 1Mi"):
        sp.run("performance", ["true"], image=BUSYBOX, disk="10k")


@pytest.mark.parametrize("pool", POOLS)
def test_a_non_root_user_can_traverse_the_root(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    """The container's / takes its mode from the upper layer's root on the disk: it was made
    0700, so a non-root user (behind the init, which drops privileges before it execs) could
    not reach any file."""
    script = "stat -c %a /; su -s /bin/sh nobody -c 'ls /bin/sh' 2>&1 || true"
    result = sp.run(pool, ["sh", "-c", script], image="builtin:default")
    assert (result.stdout or b"").decode().split() == ["755", "/bin/sh"], result.stderr
