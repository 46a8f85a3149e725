"""Bad configuration values and files, as ``sandpool config validate`` and ``doctor`` see
them: refused at load time with the key path and where it came from, within bounded time and
memory, never echoing the file's contents (issue 13 items 2, 3, 9; issue 12 item 7)."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sandpool.cli.main import cli

MAX_CONFIG_BYTES = 1 << 20  # the documented cap (README, "Limits")
ALLOWED_FLAGS = [
    *("--debug", "--strace", "--strace-syscalls=open,read", "--strace-log-size=1024"),
    *("--strace-event", "--log-format=json", "--debug-log-format=text", "--oci-seccomp"),
    *("--cpu-num-from-quota", "--watchdog-action=log", "--file-access=shared"),
]

POOL = "worker:\n  pools:\n    p:\n"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SANDPOOL_")]:
        monkeypatch.delenv(name)


def validate(*files: str, env: dict[str, str] | None = None) -> Result:
    args = ["config", "validate"] + [a for f in files for a in ("-c", f)]
    return CliRunner().invoke(cli, args, env=env)


def refused(result: Result, *fragments: str) -> str:
    """Exit 2, one error, no traceback; every fragment in the message."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not result.stdout
    assert re.match(r"(ConfigFileError|ConfigValidationError): ", result.stderr)
    for fragment in fragments:
        assert fragment in result.stderr
    return result.stderr


def write(tmp_path: Path, text: str | bytes, name: str = "pools.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


# ---- values that used to validate and crash later -------------------------------------------


CORES = "expected a number of cores from 0.01 to 1024"
SECONDS = "expected a number of seconds from 0.001 to 31536000"
SIZE = "expected a size"
QUANTITY = "expected a Kubernetes quantity"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("containerDefaults.memory", "abc", SIZE),
        ("containerDefaults.memory", "'-5Mi'", SIZE),
        ("containerDefaults.memory", "99999Ti", SIZE),
        ("containerDefaults.cpu", ".nan", CORES),
        ("containerDefaults.cpu", ".inf", CORES),
        ("containerDefaults.cpu", "0.000001", CORES),
        ("containerDefaults.timeout", ".inf", SECONDS),
        ("containerDefaults.timeout", ".NaN", SECONDS),
        ("containerDefaults.pids", "100000000000", "expected a whole number of at most 4194304"),
        ("containerRuntimeConfig.gvisorRoot", "run/gvisor", "expected an absolute path"),
        ("poolSizing.defaultWorkerMemory", "lots", QUANTITY),
        ("tmpSizeLimit", "30 gigs", QUANTITY),
        ("priority", "99999999999", "expected a whole number of at most"),
    ],
)
def test_pool_values_are_checked_when_loaded(
    tmp_path: Path, key: str, value: str, expected: str
) -> None:
    *sections, name = key.split(".")
    body = "".join(f"{'  ' * (3 + i)}{section}:\n" for i, section in enumerate(sections))
    path = write(tmp_path, POOL + body + f"{'  ' * (3 + len(sections))}{name}: {value}\n")
    refused(validate(path), f"worker.pools.p.{key}: {expected}", f"[{path} line ")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("worker:\n  stateDir: relative/dir\n", "worker.stateDir: expected an absolute path"),
        ("worker:\n  stateDir: /var/../etc\n", "worker.stateDir: expected an absolute path"),
        ("worker:\n  stateDir: /\n", "worker.stateDir: expected an absolute path"),
        ("worker:\n  runcPath: bin/runc\n", "worker.runcPath: expected an absolute path"),
        ("worker:\n  cgroupParent: '..'\n", "worker.cgroupParent: expected one cgroup name"),
        ("worker:\n  pools:\n    'a b': {}\n", "worker.pools: a pool name is"),
    ],
)
def test_worker_values_are_checked_when_loaded(tmp_path: Path, text: str, fragment: str) -> None:
    refused(validate(write(tmp_path, text)), fragment)


DEFAULTS = "SANDPOOL_WORKER_POOLS_DEFAULT_CONTAINERDEFAULTS_"


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        (DEFAULTS + "MEMORY", "abc", "memory: expected a size"),
        ("SANDPOOL_WORKER_STATEDIR", "relative/dir", "stateDir: expected an absolute path"),
        (DEFAULTS + "CPU", "nan", "cpu: expected a number"),
        (DEFAULTS + "TIMEOUT", ".inf", "timeout: expected a number"),
        (DEFAULTS + "PIDS", "0", "pids: expected a whole number"),
    ],
)
def test_environment_values_are_checked_and_named(var: str, value: str, fragment: str) -> None:
    refused(validate(env={var: value}), fragment, f"[environment variable {var}]")


def test_doctor_reports_a_bad_value_instead_of_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, POOL + "      containerDefaults:\n        memory: abc\n")
    result = CliRunner().invoke(cli, ["doctor", "-c", path])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "containerDefaults.memory: expected a size" in result.output


def test_a_refused_state_dir_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"SANDPOOL_WORKER_STATEDIR": "relative/dir"}
    for args in (["doctor"], ["ps"], ["gc"], ["images", "ls"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code != 0 and "stateDir: expected an absolute path" in result.output
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


# ---- gvisorExtraArgs: an allowlist ----------------------------------------------------------


def extra_args(tmp_path: Path, args: str) -> Result:
    text = POOL + f"      containerRuntimeConfig:\n        gvisorExtraArgs: {args}\n"
    return validate(write(tmp_path, text))


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ("[--network=host]", "sandpool sets --network itself"),
        ("[--debug, --ignore-cgroups]", "item 1: --ignore-cgroups is not on the allowlist"),
        ("['--root=/tmp/x']", "sandpool sets --root itself"),
        ("['-platform=kvm']", "sandpool sets --platform itself"),
        ("[--nvproxy=true]", "sandpool sets --nvproxy itself"),
        ("[--net-raw]", "--net-raw is not on the allowlist"),
        ("[--host-uds=all]", "--host-uds is not on the allowlist"),
        ("[--rootless]", "--rootless is not on the allowlist"),
        ("[--debug-log=/etc/cron.d/x]", "--debug-log is not on the allowlist"),
        ("[--allow-flag-override]", "--allow-flag-override is not on the allowlist"),
        ("[--overlay2=root:self]", "--overlay2 is not on the allowlist"),
        ("[--debug=maybe]", "--debug takes true | false"),
        ("[--strace-syscalls]", "write --strace-syscalls=VALUE as one argument"),
        ("[do]", "not a runsc flag"),
        ("['--']", "not a runsc flag"),
    ],
)
def test_gvisor_extra_args_outside_the_allowlist_are_refused(
    tmp_path: Path, args: str, why: str
) -> None:
    text = refused(extra_args(tmp_path, args), "containerRuntimeConfig.gvisorExtraArgs: item ", why)
    assert "allowed flags: --debug, --strace" in text


def test_every_allowlisted_flag_validates(tmp_path: Path) -> None:
    args = ", ".join(f"'{arg}'" for arg in [*ALLOWED_FLAGS, "-debug=false", "--strace=true"])
    result = extra_args(tmp_path, f"[{args}]")
    assert result.exit_code == 0, result.output


def test_gvisor_extra_args_from_the_environment_are_checked() -> None:
    var = "SANDPOOL_WORKER_POOLS_DEFAULT_CONTAINERRUNTIMECONFIG_GVISOREXTRAARGS"
    refused(validate(env={var: "[--network=host]"}), "sandpool sets --network", var)


# ---- files: size, kind, encoding, contents --------------------------------------------------


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    results: list[Result] = []
    worker = threading.Thread(target=lambda: results.append(validate(str(fifo))), daemon=True)
    worker.start()
    worker.join(10)
    if not results:  # the old code blocks in open(): unblock it so the test run can go on
        with fifo.open("w"):
            pass
        worker.join(5)
        pytest.fail("reading a FIFO configuration blocked")
    refused(results[0], "is not a regular file")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_and_directories_are_refused(device: str, tmp_path: Path) -> None:
    refused(validate(device), "is not a regular file")
    refused(validate(str(tmp_path)), "is not a regular file")


def test_files_over_the_size_cap_are_refused(tmp_path: Path) -> None:
    fits = "worker: {}\n" + "#" * (MAX_CONFIG_BYTES - 12) + "\n"
    assert validate(write(tmp_path, fits)).exit_code == 0
    big = write(tmp_path, fits + "x", "big.yaml")
    refused(validate(big), "is larger than 1 MiB")


def test_a_long_comment_line_is_read_in_linear_time(tmp_path: Path) -> None:
    path = write(tmp_path, "# " + "x" * 1_000_000 + "\nworker: {}\n")  # was 19.5 s
    started = time.monotonic()
    assert validate(path).exit_code == 0
    assert time.monotonic() - started < 3


def test_an_alias_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path = write(tmp_path, "\n".join(lines) + "\nworker:\n  pools:\n    p:\n      gpuType: *a9\n")
    started = time.monotonic()
    refused(validate(path), "more than 10000 keys and values (aliases expanded)")
    assert time.monotonic() - started < 3


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    refused(validate(write(tmp_path, "worker: " + "[" * 50 + "]" * 50)), "nested too deeply")
    refused(validate(write(tmp_path, "worker: " + "[" * 5000, "deep.yaml")), "")


def test_merge_keys_still_work(tmp_path: Path) -> None:
    text = ("base: &base {containerRuntime: gvisor}\nworker:\n  pools:\n"
            "    p:\n      <<: *base\n      gpuType: T4\n")  # fmt: skip
    # `base` is no configuration key: refused, but only that key
    refused(validate(write(tmp_path, text)), "unknown key 'base'")
    text = "worker:\n  pools:\n    p: &p {containerRuntime: gvisor}\n    q:\n      <<: *p\n"
    result = validate(write(tmp_path, text, "merge.yaml"))
    assert result.exit_code == 0 and "q (gvisor)" in result.stdout


def test_non_utf8_is_named_by_line_not_byte(tmp_path: Path) -> None:
    path = write(tmp_path, b"worker:\n  pools:\n    p:\n      gpuType: T\xff4\n")
    text = refused(validate(path), f"{path} line 4 column 17: not UTF-8 text")
    assert "position" not in text and "0xff" not in text


def test_a_secret_file_is_not_echoed(tmp_path: Path) -> None:
    secret = "alice:$6$s3cr3tSalt$hashhashhash:20228:0:99999:7:::\n"
    for i, lines in enumerate([secret, secret * 2, "bob:*:1:0:9:7:::\n" + secret]):
        text = refused(validate(write(tmp_path, lines, f"shadow{i}")))
        assert "s3cr3t" not in text and "alice" not in text and "bob" not in text
        assert f"shadow{i} line " in text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "expected a mapping (key: value lines) at the top, got a list"),
        ("just text\n", "expected a mapping (key: value lines) at the top, got a text"),
        ("worker:\n  stateDir: [a, b]\n", "worker.stateDir: expected a string, got a list"),
        (POOL + "      gpuType: {a: 1}\n", "gpuType: expected a string, got a mapping"),
    ],
)
def test_messages_say_what_was_expected_not_internal_types(
    tmp_path: Path, text: str, fragment: str
) -> None:
    message = refused(validate(write(tmp_path, text)), fragment)
    assert "Commented" not in message and "dict" not in message and "<class" not in message


def test_many_problems_are_capped(tmp_path: Path) -> None:
    text = "".join(f"key{i}: 1\n" for i in range(500))
    message = refused(validate(write(tmp_path, text)), "(500 problems)", "... and 480 more")
    assert message.count("\n") < 30


def test_migrate_reads_within_the_same_bounds(tmp_path: Path) -> None:
    for path in ("/dev/zero", str(tmp_path)):
        result = CliRunner().invoke(cli, ["config", "migrate", path])
        assert result.exit_code == 2 and "Traceback" not in result.output
    comment = write(tmp_path, "# " + "x" * 1_000_000 + "\nworker:\n  pools:\n    p:\n"
                    "      runtimeConfig: {}\n")  # fmt: skip
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["config", "migrate", comment])
    assert result.exit_code == 0 and "containerRuntimeConfig: {}" in result.stdout
    assert time.monotonic() - started < 5
