"""The runtime layer against the real runc and runsc binaries (gVisor on ptrace here)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.errors import (
    PlatformNotSupported,
    RuntimeNotAvailable,
    RuntimeTimeout,
    SandpoolError,
)
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]  # runc, gVisor
BUSYBOX = "builtin:busybox"


@pytest.mark.parametrize("pool", POOLS)
def test_exit_code_and_streams_apart(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    result = sp.run(pool, ["sh", "-c", "echo out; echo err >&2; exit 3"], image=BUSYBOX)
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert result.container_runtime == ("gvisor" if pool == "default" else "runc")


@pytest.mark.parametrize("pool", POOLS)
def test_env_and_cwd(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    result = sp.run(pool, ["sh", "-c", 'echo "$GREETING"; pwd'], image=BUSYBOX,
                    env=["GREETING=hello there"], workdir="/tmp")  # fmt: skip
    assert result.stdout == b"hello there\n/tmp\n"


@pytest.mark.parametrize("pool", POOLS)
def test_memory_limit_oom_is_reported(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    hog = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=60; echo survived"
    result = sp.run(pool, ["sh", "-c", hog], image=BUSYBOX, memory="30Mi", timeout=60)
    assert result.oom_killed is True
    assert result.exit_code == 137
    assert result.timed_out is False


@pytest.mark.parametrize("pool", POOLS)
def test_within_memory_limit_is_not_oom(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    work = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=5 2>/dev/null; echo fine"
    result = sp.run(pool, ["sh", "-c", work], image=BUSYBOX, memory="128Mi")
    assert (result.exit_code, result.oom_killed, result.stdout) == (0, False, b"fine\n")


@pytest.mark.parametrize(("pool", "forks"), [("performance", 40), ("default", 300)])
def test_pids_limit(sp: Sandpool, no_leaks: Sandbox, pool: str, forks: int) -> None:
    """gVisor's host cgroup gets headroom for the Sentry, so it needs more forks to hit."""
    script = f"for i in $(seq 1 {forks}); do sleep 5 & done; echo spawned; kill $(jobs -p)"
    limited = sp.run(pool, ["sh", "-c", script], image=BUSYBOX, pids=8, timeout=60)
    assert limited.exit_code != 0
    assert b"spawned" not in limited.stdout
    roomy = sp.run(pool, ["sh", "-c", "for i in 1 2 3; do sleep 5 & done; echo spawned; "
                          "kill $(jobs -p)"], image=BUSYBOX, pids=8, timeout=60)  # fmt: skip
    assert roomy.stdout == b"spawned\n"


def test_runc_seccomp_refuses_new_user_namespaces(sp: Sandpool, no_leaks: Sandbox) -> None:
    """Without the profile, `unshare -U` succeeds in a runc container (checked by hand)."""
    result = sp.run("performance", ["sh", "-c", "unshare -U true; echo $?; echo still-fine"],
                    image=BUSYBOX)  # fmt: skip
    assert result.stdout == b"1\nstill-fine\n"
    assert b"Operation not permitted" in (result.stderr or b"")


def test_gvisor_container_runs_in_gvisor(sp: Sandpool, no_leaks: Sandbox) -> None:
    host = Path("/proc/version").read_text().strip()
    inside = sp.run("default", ["cat", "/proc/version"], image=BUSYBOX).stdout
    runc_inside = sp.run("performance", ["cat", "/proc/version"], image=BUSYBOX).stdout
    assert inside.decode().strip() != host
    assert runc_inside.decode().strip() == host


def _run_in_background(
    sp: Sandpool, pool: str, command: list[str]
) -> tuple[threading.Thread, dict[str, object]]:
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.setdefault(
        "result", sp.run(pool, command, image=BUSYBOX, timeout=60)))  # fmt: skip
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # recorded, and the runtime has it running
        records = [r for r in sp.ps() if r.pool == pool]
        if records and _running(sp, pool, records[0].id):
            break
        time.sleep(0.05)
    return thread, box


def _running(sp: Sandpool, pool: str, container_id: str) -> bool:
    try:
        return sp.runtime(pool).state(container_id).status == "running"
    except SandpoolError:  # not created yet (gVisor under load takes a while)
        return False


@pytest.mark.parametrize("pool", POOLS)
def test_state_list_exec_kill_delete(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    thread, box = _run_in_background(sp, pool, ["sleep", "30"])
    [record] = [r for r in sp.ps() if r.pool == pool]
    runtime = sp.runtime(pool)
    assert runtime.state(record.id).status == "running"
    assert record.id in [s.id for s in runtime.list()]
    stats = runtime.events(record.id)
    assert stats["type"] == "stats" and stats["id"] == record.id
    executed = runtime.exec(record.id, ["sh", "-c", "echo from-exec; exit 4"])
    assert (executed.status, executed.stdout) == (4, "from-exec\n")
    sp.kill(record.id)
    thread.join(30)
    result = box["result"]
    assert result.exit_code == 137 and not result.oom_killed
    assert not runtime.exists(record.id)


def _config(sandbox: Sandbox, tmp_path: Path, pool_yaml: str, worker_yaml: str = "") -> Sandpool:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"worker:\n  stateDir: {sandbox.state_dir}\n  cgroupParent: {sandbox.cgroup_parent}\n"
        f"{worker_yaml}  pools:\n    p:\n{pool_yaml}"
    )
    return Sandpool(LoadedConfig.load([str(path)], {}).resolved, start_timeout=5)


def test_missing_runsc_is_an_error_not_a_fallback(
    sandbox: Sandbox, no_leaks: Sandbox, tmp_path: Path
) -> None:
    sp = _config(sandbox, tmp_path, "      containerRuntime: gvisor\n",
                 "  runscPath: /nonexistent/runsc\n")  # fmt: skip
    with pytest.raises(RuntimeNotAvailable) as info:
        sp.run("p", ["true"], image=BUSYBOX)
    assert str(info.value) == (
        "failed to create gvisor runtime: runsc not found at /nonexistent/runsc "
        "(install the runsc package or set worker.runscPath)"
    )


def test_unsupported_platform_names_the_ones_available(
    sandbox: Sandbox, no_leaks: Sandbox, tmp_path: Path
) -> None:
    sp = _config(sandbox, tmp_path, "      containerRuntime: gvisor\n"
                 "      containerRuntimeConfig:\n        gvisorPlatform: systrap\n")  # fmt: skip
    from sandpool.runtime.probe import probe_runsc

    info = probe_runsc("/usr/bin/runsc")
    if "systrap" in info.platforms:
        pytest.skip("this runsc has systrap")
    with pytest.raises(PlatformNotSupported) as err:
        sp.run("p", ["true"], image=BUSYBOX)
    text = str(err.value)
    assert "'systrap'" in text and info.version in text
    assert all(platform in text for platform in info.platforms)


def test_a_start_that_hangs_times_out_and_leaves_nothing(
    sandbox: Sandbox, no_leaks: Sandbox, tmp_path: Path
) -> None:
    """runsc --platform=kvm hangs on this machine; elsewhere kvm may start or be unusable."""
    sp = _config(sandbox, tmp_path, "      containerRuntime: gvisor\n"
                 f"      containerRuntimeConfig:\n        gvisorPlatform: kvm\n"
                 f"        gvisorRoot: {sandbox.gvisor_root}\n")  # fmt: skip
    started = time.monotonic()
    try:
        with sp:
            result = sp.run("p", ["true"], image=BUSYBOX)
    except (RuntimeTimeout, PlatformNotSupported) as exc:
        assert "did not start within 5s" in str(exc) or "kvm" in str(exc)
    else:
        assert result.exit_code == 0  # a host where kvm works
    assert time.monotonic() - started < 30
    assert not list(sandbox.gvisor_root.glob("*_sandbox:sp-*")), "runsc state or lock left"
