"""cgroup v2 only (the VM stage runs it; this project's machines are v1): where the cgroup root
``sandpool run`` sees lacks a controller it needs, the run stops with one clear 125 naming the
cgroup and the controller, and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import CGROUP_ROOT, Sandbox

pytestmark = [
    pytest.mark.root,
    pytest.mark.runc,
    pytest.mark.skipif(not (CGROUP_ROOT / "cgroup.controllers").exists(),
                       reason="needs cgroup v2 (the VM stage runs it)"),
]  # fmt: skip
SANDPOOL = str(Path(sys.executable).parent / "sandpool")


@pytest.fixture
def pids_only(sandbox: Sandbox) -> Iterator[Path]:
    """A cgroup whose parent delegates pids but not memory."""
    outer = CGROUP_ROOT / f"{sandbox.cgroup_parent}-nomem"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    (outer / "cgroup.subtree_control").write_text("+pids")
    yield inner
    inner.rmdir()
    outer.rmdir()


def test_a_root_without_the_memory_controller_is_one_clear_125(
    sandbox: Sandbox, no_leaks: Sandbox, pids_only: Path, tmp_path: Path
) -> None:
    # In a cgroup namespace rooted at ``pids_only``, as a pod whose node delegates no memory.
    script = ('echo $$ > "$0/cgroup.procs" && exec unshare --cgroup --mount sh -c '
              '"umount /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec \\"\\$@\\""'
              ' - "$@"')  # fmt: skip
    env = {**os.environ, "SANDPOOL_CONFIG": str(sandbox.config_file),
           "SANDPOOL_SOCKET": str(tmp_path / "no-server.sock")}  # fmt: skip
    argv = [SANDPOOL, "run", "--pool", "performance", "--image", "builtin:busybox", "--", "true"]
    done = subprocess.run(["sh", "-c", script, str(pids_only), *argv], capture_output=True,
                          text=True, env=env, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 125, done.stderr
    assert "Traceback" not in done.stderr
    assert "cgroup /sys/fs/cgroup lacks the memory controller" in done.stderr, done.stderr
    assert not (pids_only / sandbox.cgroup_parent).exists()
