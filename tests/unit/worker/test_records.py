"""Container records: written by the owner, read by ``ps``/``kill``/``gc`` in other processes."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sandpool.worker.records import (
    ContainerRecord,
    containers_dir,
    load_records,
    process_start_time,
)


def _record(**changes: object) -> ContainerRecord:
    me = os.getpid()
    record = ContainerRecord(
        id="sp-0123456789abcdef", pool="default", runtime="gvisor", runtime_binary="/usr/bin/runsc",
        runtime_root="/run/sandpool/runsc",
        runtime_args=("--root", "/run/sandpool/runsc", "--platform", "ptrace", "--network=none"),
        cgroup_parent="sandpool/sp-0123456789abcdef", owner_pid=me,
        owner_start=process_start_time(me) or 0, created=1700000000.25,
        command=("python3", "-c", "print(42)"), image="builtin:busybox",
    )  # fmt: skip
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_save_then_load_gives_an_equal_record(tmp_path: Path) -> None:
    record = _record()
    record.save(tmp_path)
    assert ContainerRecord.load(tmp_path) == record
    assert not list(tmp_path.glob("*.tmp"))


def test_load_of_a_missing_or_broken_record_is_none(tmp_path: Path) -> None:
    assert ContainerRecord.load(tmp_path) is None
    (tmp_path / "record.json").write_text("{not json")
    assert ContainerRecord.load(tmp_path) is None
    (tmp_path / "record.json").write_text('{"id": "sp-1"}')
    assert ContainerRecord.load(tmp_path) is None


def test_owner_alive_for_this_process() -> None:
    assert process_start_time(os.getpid()) is not None
    assert _record().owner_alive() is True


def test_owner_gone_when_its_pid_has_exited() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_start_time(child.pid) is None
    assert _record(owner_pid=child.pid).owner_alive() is False


def test_an_unreaped_owner_is_gone() -> None:
    """A SIGKILLed owner nobody reaps stays a zombie; its containers are still garbage."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start_time(child.pid)
        assert started is not None
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline, "the child did not become a zombie"
            time.sleep(0.01)
        assert process_start_time(child.pid) is None
        assert _record(owner_pid=child.pid, owner_start=started).owner_alive() is False
    finally:
        child.wait()


def test_a_reused_pid_is_not_the_owner() -> None:
    assert _record(owner_start=(_record().owner_start + 1)).owner_alive() is False


def test_load_records_lists_every_container_dir(tmp_path: Path) -> None:
    root = containers_dir(tmp_path)
    assert load_records(tmp_path) == []
    (root / "sp-a").mkdir(parents=True)
    (root / "sp-b").mkdir()
    (root / "stray-file").write_text("")
    record = _record(id="sp-b")
    record.save(root / "sp-b")
    assert load_records(tmp_path) == [(root / "sp-a", None), (root / "sp-b", record)]
