"""Reading the runtimes' logs and naming the setting behind a known start error."""

from __future__ import annotations

from pathlib import Path

from sandpool.worker.start_errors import (
    StartContext,
    explain,
    explain_death,
    first_error,
    sandbox_death,
    start_failure,
)

CONTEXT = StartContext("runc", "64Mi", 3, "/work", host_pids=200)
# As runsc writes it: the gofer's, the sandbox's and run's objects with no newline between.
RUNSC_LOG = (
    '{"msg":"Error setting up root FS: creating working directory \\"/etc/passwd\\": mkdir '
    '/proc/root/etc/passwd: not a directory","level":"error","time":"t"}'
    '{"msg":"Error reading mounts file","level":"error","time":"t"}'
    '{"msg":"running container: ... waiting for sandbox to start: EOF","level":"error"}'
)


def test_runscs_objects_without_newlines_are_read_and_the_first_error_is_the_cause(
    tmp_path: Path,
) -> None:
    log = tmp_path / "runtime.log"
    log.write_text(RUNSC_LOG)
    assert first_error(log) == (
        'Error setting up root FS: creating working directory "/etc/passwd": '
        "mkdir /proc/root/etc/passwd: not a directory"
    )


def test_runc_lines_and_noise_are_read(tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    log.write_text('not json\n{"level":"info","msg":"x"}\n{"level":"error","msg":"boom"}\n')
    assert first_error(log) == "boom"
    assert first_error(tmp_path / "missing.log") is None


def test_sandbox_death_is_the_panic_line(tmp_path: Path) -> None:
    panic = tmp_path / "runtime-panic.log"
    assert sandbox_death(panic) is None
    panic.write_text("unable to read from the sync descriptor: 0, error EOF\n")
    assert sandbox_death(panic) is None
    panic.write_text("\npanic: error initializing first thread: resource temporarily "
                     "unavailable\n\ngoroutine 45 [running]:\n")  # fmt: skip
    assert sandbox_death(panic) == (
        "panic: error initializing first thread: resource temporarily unavailable"
    )


def test_known_start_errors_name_the_setting() -> None:
    eof = "unable to start container process: can't get final child's PID from pipe: EOF"
    said = explain(eof, CONTEXT)
    assert said.startswith("runc could not create the container's processes: the pids limit "
                           "(3) or the memory limit (64Mi) is too small")  # fmt: skip
    assert said.endswith(f"(runc: {eof})")
    assert explain("mkdir /work: not a directory", CONTEXT).startswith(
        "the working directory '/work' is not a directory"
    )
    assert explain("something else", CONTEXT) == "something else"


def test_a_missing_mandatory_controller_says_who_can_give_it() -> None:
    """runsc refuses a cgroup root without cpuset (a pod whose parent did not delegate it)."""
    runsc = 'mandatory cgroup controller "cpuset" is missing for "/sp/sp-1/ctr"'
    said = explain(runsc, StartContext("runsc", "64Mi", 3, "/"))
    assert said.startswith("runsc needs that cgroup controller at the cgroup root sandpool sees")
    assert "cgroup.subtree_control" in said and said.endswith(f"(runsc: {runsc})")


def test_a_death_by_host_pids_names_the_host_limit() -> None:
    said = explain_death("panic: creating stub process: resource temporarily unavailable",
                         CONTEXT)  # fmt: skip
    assert said.startswith("the gVisor sandbox died: panic: creating stub process")
    assert "reached 200 pids, the host limit for --pids 3" in said
    assert explain_death("panic: other", CONTEXT) == "the gVisor sandbox died: panic: other"


def test_a_start_failure_is_a_commands_status_or_a_line() -> None:
    missing = 'error finding executable "nosuch" in PATH: no such file or directory'
    assert start_failure(missing, CONTEXT, oom=False) == (127, missing)
    assert start_failure("exec /etc/passwd: permission denied", CONTEXT, oom=False)[0] == 126
    code, line = start_failure("read init-p: connection reset by peer", CONTEXT, oom=False)
    assert code is None and "the pids limit (3) or the memory limit (64Mi)" in line
    assert start_failure(missing, CONTEXT, oom=True) == (None, (
        "the memory limit (64Mi) is too small for runc to start the container: it ran out of "
        "memory while starting"))  # fmt: skip


def test_a_go_thread_failure_keeps_its_cause(tmp_path: Path) -> None:
    panic = tmp_path / "runtime-panic.log"
    panic.write_text("runtime: failed to create new OS thread (have 2 already; errno=11)\n"
                     "runtime: may need to increase max user processes (ulimit -u)\n"
                     "fatal error: newosproc\n")  # fmt: skip
    death = sandbox_death(panic)
    assert death == ("fatal error: newosproc (runtime: failed to create new OS thread "
                     "(have 2 already; errno=11))")  # fmt: skip
    assert "the host limit for --pids 3" in explain_death(death, CONTEXT)
