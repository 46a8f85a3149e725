"""State dir permissions: private modes, and older installs' 0755 directories fixed."""

from __future__ import annotations

import stat
from pathlib import Path

from sandpool.worker.private import PRIVATE_MODES, secure_state_dir


def test_an_older_0755_state_dir_is_made_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for sub in ("containers", "images", "userns"):
        (state / sub).mkdir(parents=True, mode=0o755)
    state.chmod(0o755)
    secure_state_dir(state)
    modes = {sub: stat.S_IMODE((state / sub if sub else state).stat().st_mode)
             for sub in PRIVATE_MODES}  # fmt: skip
    assert modes == {"": 0o711, "containers": 0o711, "images": 0o700, "userns": 0o700}


def test_a_new_state_dir_is_created_private(tmp_path: Path) -> None:
    secure_state_dir(tmp_path / "new")
    assert stat.S_IMODE((tmp_path / "new" / "images").stat().st_mode) == 0o700
