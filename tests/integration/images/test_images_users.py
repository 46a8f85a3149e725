"""Hostile /etc/passwd files in real images: never read outside the image, never hang, 125.

Each image is built here; the run goes through ``sandpool run`` with the session's state dir.
On the old code the symlink to /etc/shadow ran the container with an id from the host's
shadow file, and the FIFO blocked the run for ever (the test's timeout).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import Sandbox
from tests.integration.images.conftest import sh

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
SANDPOOL = str(Path(sys.executable).parent / "sandpool")


def _image(factory: Any, name: str, change: Callable[[Path], None], user: str = "app") -> str:
    """An OCI layout whose rootfs ``change`` altered, with ``User: <user>``."""
    tree = factory.rootfs(name, {})
    (tree / "etc").mkdir()
    change(tree / "etc")
    layout, image = factory.root / f"layout-{name}", f"{factory.root}/layout-{name}:v1"
    sh("umoci", "init", "--layout", layout)
    sh("umoci", "new", "--image", image)
    sh("umoci", "insert", "--image", image, tree, "/")
    sh("umoci", "config", "--image", image, "--config.env=PATH=/bin", f"--config.user={user}")
    return f"oci:{image}"


def _run(sandbox: Sandbox, pool: str, image: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SANDPOOL_CONFIG": str(sandbox.config_file),
           "SANDPOOL_SOCKET": str(sandbox.base / "no-server.sock")}  # fmt: skip
    argv = [SANDPOOL, "run", "--pool", pool, "--image", image, "--", "id", "-u"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)


def _to_shadow(etc: Path) -> None:
    (etc / "passwd").symlink_to("/etc/shadow")


def _to_dev_zero(etc: Path) -> None:
    (etc / "passwd").symlink_to("/dev/zero")
    (etc.parent / "dev").mkdir()
    (etc.parent / "dev" / "zero").symlink_to("../../../../../../../../dev/zero")


def _fifo(etc: Path) -> None:
    os.mkfifo(etc / "passwd")


def _huge(etc: Path) -> None:
    (etc / "passwd").write_text("app:x:1000:1000::/:/bin/sh\n" + "#" * (2 << 20) + "\n")


def _not_numeric(etc: Path) -> None:
    (etc / "passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:abc:1000::/:/bin/sh\n")


@pytest.mark.parametrize(
    ("change", "message"),
    [(_to_shadow, "user or group 'daemon' is not in the image's /etc/passwd"),
     (_to_dev_zero, "the image's /etc/passwd cannot be read"),
     (_fifo, "the image's /etc/passwd is not a regular file"),
     (_huge, "the image's /etc/passwd is larger than 1048576 bytes"),
     (_not_numeric, "the image's /etc/passwd line 2: uid 'abc' is not a number")],
)  # fmt: skip
@pytest.mark.parametrize("pool", ["performance", "default"])
def test_a_hostile_passwd_is_a_clear_125(
    sandbox: Sandbox, factory: Any, pool: str, change: Callable[[Path], None], message: str
) -> None:
    # daemon is in the host's /etc/shadow (uid field: the day of its last password change)
    user = "daemon" if change is _to_shadow else "app"
    image = _image(factory, change.__name__.strip("_"), change, user)
    done = _run(sandbox, pool, image)
    assert done.returncode == 125, done.stderr
    assert f"InvalidImage: {message}" in done.stderr
    assert "Traceback" not in done.stderr
    assert sandbox.leftovers() == []


def test_a_valid_passwd_still_gives_its_uid(sandbox: Sandbox, factory: Any) -> None:
    image = _image(factory, "valid", lambda etc: (etc / "passwd").write_text(
        "root:x:0:0::/:/bin/sh\napp:x:1234:1234::/:/bin/sh\n"))  # fmt: skip
    done = _run(sandbox, "performance", image)
    assert (done.returncode, done.stdout) == (0, "1234\n"), done.stderr
