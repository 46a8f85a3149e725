"""gVisor execs through the pre-started stub (``sandbox.exec_stub``), on real runsc: no
``runsc exec`` is started on an exec's path (first exec, later ones, a warm sandbox's
claimant's), every guarantee of an exec holds (runc, unchanged, checked alike), an unused
stub never outlives its sandbox, and a stub killed by sandbox code only makes the next exec
a plain one."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.sandbox import ExecRequest, SandboxState, execs
from tests.integration.conftest import Sandbox as Installation
from tests.integration.sandbox.conftest import RUNTIMES
from tests.integration.sandbox.test_sandbox_life import _crashed_owner

pytestmark = pytest.mark.timeout(240)
GVISOR = [pytest.param("gvisor", marks=[pytest.mark.root, pytest.mark.runsc], id="gvisor")]
MIB = 1 << 20
# Every process's command line, one per line (shell builtins and busybox only)
PROCESSES = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"
# Sandbox code that waits for the idle stub to run, then SIGKILLs it
KILL_STUB = (
    "for i in $(seq 200); do for p in /proc/[0-9]*; do "
    "case \"$(tr '\\0' ' ' < $p/cmdline)\" in '/.sandpool/init stub '*) "
    "kill -9 ${p#/proc/}; echo killed; exit 0;; esac; done; sleep 0.05; done; exit 1"
)


@pytest.fixture
def plain_execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The runtime processes execs start on their own path (``runsc exec``/``runc exec``),
    recorded: an exec through the stub (gVisor) or the init (runc) starts none."""
    calls: list[list[str]] = []
    real = execs.spawn

    def recording(argv: Sequence[str], **kwargs: Any) -> Any:
        calls.append(list(argv))
        return real(argv, **kwargs)

    monkeypatch.setattr(execs, "spawn", recording)
    return calls


def _runtime_processes(sandbox_id: str) -> list[str]:
    """Host processes whose command line names the sandbox (its runsc exec stubs too)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if sandbox_id in text and " exec " in text:
            found.append(text)
    return found


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_execs_keep_every_guarantee_without_a_runtime_exec(
    boxes: Sandpool, runtime: str, plain_execs: list[list[str]]
) -> None:
    """stdout/stderr apart, env, cwd, stdin, exit codes 0, 3, 126, 127, 128+signal, 1 MiB of
    output: all without a `runsc exec` (`runc exec`) started on the exec's path; an exec as
    another user still is one. Between execs a gVisor sandbox holds one idle stub, never
    while an exec that took it runs."""
    with boxes.create_sandbox(runtime, env=["GREETING=hi"]) as sb:
        first = sb.exec(["sh", "-c", PROCESSES])
        assert first.exit_code == 0 and b"/.sandpool/init stub" not in first.stdout
        result = sb.exec(["sh", "-c", "echo out $GREETING $EXTRA; echo err >&2; exit 3"],
                         env=["EXTRA=x"])  # fmt: skip
        assert (result.exit_code, result.stdout, result.stderr) == (3, b"out hi x\n", b"err\n")
        assert sb.exec(["true"]).exit_code == 0
        assert sb.exec(["no-such-command"]).exit_code == 127
        assert sb.exec(["/etc/passwd"]).exit_code == 126
        no_dir = sb.exec(["pwd"], cwd="/nonexistent")
        assert no_dir.exit_code == 126 and b"/nonexistent" in no_dir.stderr
        assert sb.exec(["pwd"], cwd="/tmp").stdout == b"/tmp\n"
        assert sb.exec(["sh", "-c", "kill -TERM $$"]).exit_code == 128 + 15
        echoed = sb.exec(["sh", "-c", "cat; echo done"], stdin=b"line one\nline two\n")
        assert (echoed.exit_code, echoed.stdout) == (0, b"line one\nline two\ndone\n")
        big = sb.exec(["head", "-c", str(MIB), "/dev/zero"])
        assert (big.exit_code, len(big.stdout), big.stdout_dropped) == (0, MIB, 0)
        assert plain_execs == []
        assert sb.exec(["id", "-u"], user="65534").stdout == b"65534\n"
        assert len(plain_execs) == 1
        idle = sb.exec(["sh", "-c", PROCESSES], user="0").stdout  # a plain exec: leaves it
        assert (b"/.sandpool/init stub" in idle) == (runtime == "gvisor"), idle
        during = sb.exec(["sh", "-c", PROCESSES]).stdout  # took it: never two at once
        assert b"/.sandpool/init stub" not in during and len(plain_execs) == 2, during


@pytest.mark.parametrize("runtime", GVISOR)
def test_timeout_kill_and_oom_through_the_stub(
    boxes: Sandpool, runtime: str, plain_execs: list[list[str]]
) -> None:
    """A timeout (124) and a kill (137) end the exec's whole process group; an OOM is
    reported (137, oom_killed); none of these execs started a `runsc exec`."""
    with boxes.create_sandbox(f"small-{runtime}") as sb:
        started = time.monotonic()
        timed = sb.exec(["sh", "-c", "sleep 60 & sleep 60"], timeout=1)
        assert (timed.exit_code, timed.timed_out) == (124, True)
        assert time.monotonic() - started < 30
        sleeper = sb.start(["sh", "-c", "sleep 70 & sleep 70"])
        sb.kill(sleeper)
        killed = sb.wait(sleeper, timeout=60)
        assert killed is not None and (killed.exit_code, killed.killed) == (137, True)
        left = sb.exec(["sh", "-c", "ps -o args | grep -c '^sleep [67]0' || true"])
        assert left.stdout.strip() == b"0"
        assert plain_execs == []
        oom = sb.exec(["python3", "-c", "b = bytearray(400 << 20); print(len(b))"],
                      timeout=60)  # fmt: skip
        assert (oom.exit_code, oom.oom_killed) == (137, True), oom
        assert plain_execs == []


@pytest.mark.parametrize("runtime", GVISOR)
def test_a_stub_killed_by_sandbox_code_makes_the_next_exec_plain(
    boxes: Sandpool, runtime: str, plain_execs: list[list[str]]
) -> None:
    """Sandbox code SIGKILLs the idle stub: the next exec sees it gone before its command
    ran, runs once as a plain `runsc exec` with its right result, and a new stub follows."""
    with boxes.create_sandbox(runtime) as sb:
        assert sb.exec(["true"]).exit_code == 0
        killer = sb.exec(["sh", "-c", KILL_STUB], user="0")  # a plain exec: leaves the stub
        assert (killer.exit_code, killer.stdout) == (0, b"killed\n"), killer
        assert len(plain_execs) == 1
        once = sb.exec(["sh", "-c", "echo ran >> /tmp/runs; cat /tmp/runs"])
        assert (once.exit_code, once.stdout) == (0, b"ran\n"), once
        assert len(plain_execs) == 2  # the fallback
        assert sb.exec(["echo", "again"]).stdout == b"again\n"
        assert len(plain_execs) == 2  # through the new stub


@pytest.mark.parametrize("runtime", GVISOR)
def test_unused_stubs_never_outlive_their_sandbox(boxes: Sandpool, runtime: str) -> None:
    """A sandbox terminated with its stub unused, and one terminated right after an exec
    (its next stub starting), leave no `runsc exec` process (and, the fixture checks,
    nothing in the gVisor root or the state dir)."""
    unused = boxes.create_sandbox(runtime)
    assert _runtime_processes(unused.id)  # its stub runs
    unused.terminate()
    assert _runtime_processes(unused.id) == []
    used = boxes.create_sandbox(runtime)
    assert used.exec(["true"]).exit_code == 0
    used.terminate()
    assert _runtime_processes(used.id) == []


@pytest.mark.parametrize("runtime", GVISOR)
def test_a_dead_owners_stub_ends_by_itself(
    boxes: Sandpool, runtime: str, plain_execs: list[list[str]]
) -> None:
    """The owner is SIGKILLed with its sandbox's stub waiting: the stub reads end of file and
    its `runsc exec` ends; the sandbox lives on, and its adopter starts stubs of its own."""
    config = Path(boxes.config.state_dir).parent / "sandbox-pools.yaml"
    [sandbox_id] = _crashed_owner(config, runtime, 1)
    deadline = time.monotonic() + 30
    while _runtime_processes(sandbox_id):
        assert time.monotonic() < deadline, _runtime_processes(sandbox_id)
        time.sleep(0.05)
    assert boxes.sandboxes.adopt() == ([sandbox_id], [])
    result = boxes.sandboxes.exec(sandbox_id, ExecRequest(("cat", "/kept")))
    assert result.stdout == b"written before the crash" and plain_execs == []
    boxes.sandboxes.terminate(sandbox_id)
    assert _runtime_processes(sandbox_id) == []


@pytest.fixture
def warm_gvisor(sandbox: Installation) -> Iterator[Sandpool]:
    """A Sandpool with one warm gVisor sandbox in pool ``warm``; nothing left after."""
    config = sandbox.base / "stub-warm-pools.yaml"
    config.write_text(
        f"worker:\n  stateDir: {sandbox.state_dir}\n  cgroupParent: {sandbox.cgroup_parent}\n"
        f"  pools:\n    warm:\n      containerRuntime: gvisor\n      containerRuntimeConfig:\n"
        f"        gvisorRoot: {sandbox.gvisor_root}\n      warmPool:\n        size: 1\n"
    )
    sp = Sandpool(LoadedConfig.load([str(config)], {}).resolved)
    try:
        sp.sandboxes.start_warm()
        assert sp.sandboxes.wait_warm(120), sp.sandboxes.warm_stats()
        yield sp
    finally:
        sp.close()
    assert sandbox.leftovers() == []


@pytest.mark.root
@pytest.mark.runsc
def test_a_claimed_warm_sandbox_runs_its_first_command_through_its_stub(
    warm_gvisor: Sandpool, plain_execs: list[list[str]]
) -> None:
    """The claimant's first exec takes the stub started with the warm sandbox: no `runsc
    exec` on its path, and a pristine process table (the init and this shell only). The
    warm sandbox that refills the pool is removed, stub and all, on close."""
    sb = warm_gvisor.create_sandbox("warm")
    assert sb.info().state is SandboxState.RUNNING
    assert warm_gvisor.sandboxes.warm_stats()[0].claims == 1
    seen = sb.exec(["sh", "-c", PROCESSES])
    assert seen.exit_code == 0 and plain_execs == []
    lines = [line for line in seen.stdout.decode().splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("/.sandpool/init "), lines
    sb.terminate()
    assert _runtime_processes(sb.id) == []
    assert warm_gvisor.sandboxes.wait_warm(120)
    [refill] = [i.id for i in warm_gvisor.sandboxes.list(state="warm")]
    warm_gvisor.close()
    assert _runtime_processes(refill) == []
