"""What the sandbox's init reports for file operations, read on the host: errors by errno,
entries, and paths resolved against the workdir."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from sandpool.errors import SandboxError, SandboxFileError
from sandpool.runtime.fake import FakeRuntime
from sandpool.sandbox.files import SandboxFiles, _entries


def _files(tmp_path: Path) -> SandboxFiles:
    return SandboxFiles(FakeRuntime(tmp_path), "sp-1", workdir="/work")


def test_paths_resolve_against_the_workdir_and_never_above_root(tmp_path: Path) -> None:
    files = _files(tmp_path)
    assert files.resolve("a/../b") == "/work/b"
    assert files.resolve("/../../etc/x") == "/etc/x"
    for bad in ("", "a\0b"):
        with pytest.raises(SandboxFileError, match="bad sandbox path"):
            files.resolve(bad)


def test_errors_carry_the_errno_and_name_it(tmp_path: Path) -> None:
    files = _files(tmp_path)
    with pytest.raises(SandboxFileError) as full:
        files._check(1, b"sandpool-init: 28 /big: No space left on device\n", "write", "/big")
    assert full.value.errno == errno.ENOSPC
    assert str(full.value).startswith("write /big: ENOSPC (No space left on device) (")
    assert "disk limit" in str(full.value)
    with pytest.raises(SandboxError, match="failed: container is not running"):
        files._check(255, b"container is not running\n", "read", "/x")


def test_entries_keep_odd_names() -> None:
    raw = b"f 644 3 1500000000 a b\0l 777 1 0 new\nline\0d 755 4096 0 dir\0"
    entries = _entries(raw, "/tmp")
    assert [(e.name, e.type, e.mode, e.size) for e in entries] == [
        ("a b", "file", 0o644, 3), ("new\nline", "symlink", 0o777, 1), ("dir", "dir", 0o755, 4096)
    ]  # fmt: skip
    assert entries[0].path == "/tmp/a b" and entries[0].mtime == 1.5
