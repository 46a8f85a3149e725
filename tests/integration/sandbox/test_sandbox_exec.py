"""Sandboxes on real runc and gVisor: create, exec (exit codes, streams, timeouts, stdin,
background, kill, concurrency, OOM), and the errors a caller sees."""

from __future__ import annotations

import threading
import time

import pytest

from sandpool.api import Sandpool
from sandpool.errors import SandboxNotFound, SandboxStateError
from sandpool.sandbox import ExecResult, OutputEvent, SandboxState
from tests.integration.sandbox.conftest import OUTPUT_BOUND, RUNTIMES

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_basics(boxes: Sandpool, runtime: str) -> None:
    """Exit codes as `sandpool run` gives them (127, 126), stdout and stderr apart, env,
    cwd and user, and the init is PID 1 (nothing else runs)."""
    with boxes.create_sandbox(runtime, env=["GREETING=hi"], labels={"t": "basics"}) as sb:
        info = sb.info()
        assert (info.state, info.container_runtime, info.labels) == (
            SandboxState.RUNNING, runtime, {"t": "basics"})  # fmt: skip
        result = sb.exec(["sh", "-c", "echo out $GREETING $EXTRA; echo err >&2; exit 3"],
                         env=["EXTRA=x"])  # fmt: skip
        assert (result.exit_code, result.stdout, result.stderr) == (3, b"out hi x\n", b"err\n")
        assert sb.exec(["no-such-command"]).exit_code == 127
        assert sb.exec(["/etc/passwd"]).exit_code == 126
        assert sb.exec(["pwd"], cwd="/tmp").stdout == b"/tmp\n"
        no_dir = sb.exec(["pwd"], cwd="/nonexistent")
        assert no_dir.exit_code == 126 and b"/nonexistent" in no_dir.stderr
        assert sb.exec(["id", "-u"], user="65534").stdout == b"65534\n"
        ps = sb.exec(["ps", "-o", "pid,args"]).stdout.decode().splitlines()
        mode = "serve" if runtime == "runc" else "init"  # runc: execs through the init
        assert ps[1].split() == ["1", "/.sandpool/init", mode], ps
        assert sb.exec(["true"], stdin=b"").exit_code == 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_timeout_kills_the_whole_process_group(boxes: Sandpool, runtime: str) -> None:
    """124 after the timeout; the background child of the command dies too."""
    with boxes.create_sandbox(runtime) as sb:
        started = time.monotonic()
        result = sb.exec(["sh", "-c", "sleep 60 & sleep 60"], timeout=1)
        assert (result.exit_code, result.timed_out) == (124, True)
        assert time.monotonic() - started < 20
        left = sb.exec(["sh", "-c", "ps -o args | grep -c '^sleep 60' || true"])
        assert left.stdout.strip() == b"0"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stream_background_attach_stdin_and_kill(boxes: Sandpool, runtime: str) -> None:
    """Events come with offsets per stream; a late reader replays from an offset; stdin
    reaches the process; a killed exec ends with 137."""
    with boxes.create_sandbox(runtime) as sb:
        events = list(sb.stream(["sh", "-c", "echo a; echo b >&2; echo c"]))
        result = events[-1]
        assert isinstance(result, ExecResult) and result.exit_code == 0
        out = [e for e in events if isinstance(e, OutputEvent) and e.stream == "stdout"]
        assert b"".join(e.data for e in out) == b"a\nc\n"
        assert out[0].offset == 0 and out[-1].offset + len(out[-1].data) == 4
        exec_id = sb.start(["cat"], stdin=True)
        sb.write_stdin(exec_id, b"hello ")
        sb.write_stdin(exec_id, b"world")
        sb.close_stdin(exec_id)
        done = sb.wait(exec_id, timeout=30)
        assert done is not None and done.exit_code == 0
        late = list(sb.attach(exec_id, stdout_from=6))
        assert [(e.offset, e.data) for e in late] == [(6, b"world")]
        for _ in range(10):  # a kill right after the start (before the exec's setsid) too
            sleeper = sb.start(["sleep", "60"])
            sb.kill(sleeper)
            killed = sb.wait(sleeper, timeout=30)
            assert killed is not None and (killed.exit_code, killed.killed) == (137, True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_concurrent_execs(boxes: Sandpool, runtime: str) -> None:
    """Eight execs at once in one sandbox, each with its own output."""
    with boxes.create_sandbox(runtime) as sb:
        results: dict[int, ExecResult] = {}

        def one(n: int) -> None:
            results[n] = sb.exec(["sh", "-c", f"sleep 0.2; echo {n}"])

        threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {n: (r.exit_code, r.stdout) for n, r in results.items()} == {
            n: (0, f"{n}\n".encode()) for n in range(8)
        }


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_output_past_the_bound_is_dropped_and_counted(boxes: Sandpool, runtime: str) -> None:
    """The pool's maxOutput (64 KiB here) bounds what an exec keeps; the tail is kept and the
    dropped bytes are counted; a reader that keeps up still gets everything."""
    with boxes.create_sandbox(f"small-{runtime}") as sb:
        command = ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"]
        result = sb.exec(command)
        assert result.exit_code == 0
        assert len(result.stdout) == OUTPUT_BOUND
        assert result.stdout_dropped == 300000 - OUTPUT_BOUND
        streamed = sb.stream(command)
        total = sum(len(e.data) for e in streamed if isinstance(e, OutputEvent))
        assert total >= OUTPUT_BOUND


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_oom_mid_exec_is_reported_to_the_exec_and_the_sandbox(
    boxes: Sandpool, runtime: str
) -> None:
    """A 96 MiB sandbox whose exec allocates 400 MiB: the exec ends 137 with oom_killed, and
    the sandbox counts the OOM kill (running on, or terminated for oom if it died of it)."""
    with boxes.create_sandbox(f"small-{runtime}") as sb:
        result = sb.exec(["python3", "-c", "b = bytearray(400 << 20); print(len(b))"],
                         timeout=60)  # fmt: skip
        assert (result.exit_code, result.oom_killed) == (137, True), result
        info = sb.info()
        assert info.oom_kills >= 1
        if info.state is SandboxState.RUNNING:  # runc: the kernel killed the exec only
            assert sb.exec(["echo", "alive"]).stdout == b"alive\n"
        else:  # gVisor: the OOM killer took the Sentry, so the whole sandbox
            assert (info.state, result.sandbox_ended) == (SandboxState.TERMINATING, "oom")
            assert info.reason is not None and info.reason.value == "oom"
            deadline = time.monotonic() + 10
            while sb.info().state is not SandboxState.TERMINATED:
                assert time.monotonic() < deadline
                time.sleep(0.1)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_bad_ids_and_states(boxes: Sandpool, runtime: str) -> None:
    """Unknown sandbox or exec ids are SandboxNotFound; exec in a paused or terminated
    sandbox is a SandboxStateError naming the state."""
    with pytest.raises(SandboxNotFound, match="no sandbox with id 'sp-nope'"):
        boxes.sandboxes.get("sp-nope")
    sb = boxes.create_sandbox(runtime)
    with pytest.raises(SandboxNotFound, match="has no exec 'ex-nope'"):
        sb.wait("ex-nope")
    sb.pause()
    with pytest.raises(SandboxStateError, match="it is paused"):
        sb.exec(["true"])
    with pytest.raises(SandboxStateError, match="it is paused"):
        sb.files.read("/etc/hostname")
    sb.resume()
    assert sb.exec(["true"]).exit_code == 0
    final = sb.terminate()
    assert (final.state, final.reason and final.reason.value) == (SandboxState.TERMINATED,
                                                                  "killed")  # fmt: skip
    with pytest.raises(SandboxStateError, match="terminated"):
        sb.exec(["true"])
    assert sb.terminate().state is SandboxState.TERMINATED  # idempotent
