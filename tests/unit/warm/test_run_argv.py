"""The thin client's parse of ``sandpool run``'s flags (``warm.run_argv``) against click's own:
whatever it parses, it parses as click does; what it does not know goes in-process (None)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sandpool.cli.run_cmd import RunUsageError, parse_run_args
from sandpool.warm.run_argv import parse_argv

PARSED = [
    ["--", "true"],
    ["true"],
    [],
    ["--pool", "p", "--", "echo", "--pool", "x"],
    ["--pool=p", "echo", "hi"],
    ["echo", "--pool", "x"],  # click takes options between arguments too
    ["-c", "a.yaml", "-cb.yaml", "--config", "c.yaml", "--config=d.yaml", "true"],
    ["--env", "-x=1", "--env=A=B", "--", "true"],  # a value is taken whatever it starts with
    ["--pool", "--json", "a"],
    ["--cpu", "2", "--memory", "64Mi", "--pids", "10", "--timeout", "1.5", "--gpu", "0",
     "--disk", "4Mi", "--workdir", "/tmp", "--image", "builtin:busybox", "--", "pwd"],
    ["--network", "allow", "--allow", "10.0.0.0/8", "--allow", "example.com:443", "--", "x"],
    ["--json", "--", "a", "-"],
    ["a", "-", "b"],
    ["--", "--"],
    ["--pool", "--", "true"],
    ["--cpu", "nan", "--", "true"],  # a number; its range is the server's to check
]  # fmt: skip
LEFT_TO_CLICK = [
    ["--help"],
    ["--pool", "p", "-h"],
    ["--bogus-flag", "--", "true"],
    ["--json=yes", "true"],
    ["--pool"],
    ["-x", "true"],
    ["--cpu", "lots", "--", "true"],
    ["--pids", "1.5", "--", "true"],
]


def click_fields(args: list[str]) -> dict[str, object]:
    parsed = parse_run_args(args)
    fields: dict[str, object] = {
        "pool": parsed.pool, "image": parsed.image, "cpu": parsed.cpu, "memory": parsed.memory,
        "pids": parsed.pids, "timeout": parsed.timeout, "env": list(parsed.env),
        "workdir": parsed.workdir, "gpus": parsed.gpus, "disk": parsed.disk,
        "network": parsed.network, "allow": list(parsed.allow), "json": parsed.as_json,
        "command": list(parsed.command), "config": list(parsed.config_files),
    }  # fmt: skip
    return fields


def with_defaults(fields: dict[str, object]) -> dict[str, object]:
    defaults: dict[str, object] = {
        "pool": "default", "image": None, "cpu": None, "memory": None, "pids": None,
        "timeout": None, "env": [], "workdir": None, "gpus": 0, "disk": None, "network": None,
        "allow": [], "json": False, "config": [],
    }  # fmt: skip
    return {**defaults, **fields}


@pytest.mark.parametrize("args", PARSED)
def test_what_the_thin_parser_parses_click_parses_the_same(args: list[str]) -> None:
    fields = parse_argv(args)
    assert fields is not None
    if args[:2] == ["--cpu", "nan"]:
        with pytest.raises(RunUsageError):  # click refuses it; so does the server
            parse_run_args(args)
        return
    assert with_defaults(fields) == click_fields(args)


@pytest.mark.parametrize("args", LEFT_TO_CLICK)
def test_what_it_does_not_know_is_left_to_click(args: list[str]) -> None:
    assert parse_argv(args) is None


def test_the_thin_client_imports_neither_click_nor_the_config_package() -> None:
    code = (
        "import sys, sandpool.warm.client; "
        "print(sorted(m for m in sys.modules if m in ('click', 'sandpool.config')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "[]"
