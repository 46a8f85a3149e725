"""A runc container in a user namespace with the state dir on ext4 (as on a Debian host).

Linux 6.1's overlayfs refuses a detached idmapped mount as its lower layer ("overlayfs: failed
to clone lowerpath"): ``worker.idmap.attached_idmap`` attaches it while the overlay mounts. The
VM stage runs this on Debian 12's kernel; its /tmp is a tmpfs, which has no idmapped mounts
before 6.3 (sandpool then runs without a user namespace), hence the ext4 image here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from tests.integration.conftest import Sandbox, reachable_tmp_dir

pytestmark = [pytest.mark.root, pytest.mark.runc]
SCRIPT = "cat /proc/self/uid_map; id -u; stat -c %u /bin/busybox; touch /new; stat -c %u /new"


@pytest.fixture
def ext4_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandpool installation whose state dir is on a fresh, loop-mounted ext4."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 not installed (e2fsprogs)")
    image = tmp_path / "state.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image), "256M"], check=True, timeout=60)
    with reachable_tmp_dir() as base:
        subprocess.run(["mount", "-o", "loop", str(image), str(base)], check=True, timeout=60)
        try:
            base.chmod(0o711)
            box = Sandbox(base)
            box.cgroup_parent = f"sandpool-ext4-{os.getpid()}"
            box.write_config()
            yield box
            left = [item for item in box.leftovers() if item != f"mount {base}"]
            box.remove_parent_cgroups()
            assert left == []
        finally:
            subprocess.run(["umount", str(base)], check=True, timeout=60)


def test_a_runc_container_on_an_ext4_state_dir_gets_a_user_namespace(
    ext4_sandbox: Sandbox,
) -> None:
    """Inside: root, mapped to a host range of its own; the image's files and new ones are
    root's. Nothing of the idmapped layer's attachment stays behind (the fixture checks)."""
    config = LoadedConfig.load([str(ext4_sandbox.config_file)], {}).resolved
    with Sandpool(config) as sp:
        result = sp.run("performance", ["sh", "-c", SCRIPT], image="builtin:busybox")
    out = result.stdout or b""
    assert result.exit_code == 0, result
    match = re.match(rb"\s*0\s+(\d+)\s+(\d+)\s*\n", out)
    assert match and int(match[1]) >= 100000 and int(match[2]) == 65536, out
    assert out.split(b"\n")[1:5] == [b"0", b"0", b"0", b""], out
