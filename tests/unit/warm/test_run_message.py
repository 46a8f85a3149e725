"""A served run's fields checked by the server (``warm.run_message``) as click checks the flags,
and the server's side of the code base never importing the CLI (issue 16, "One daemon")."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sandpool.cli.run_cmd import RunUsageError, parse_run_args
from sandpool.warm.messages import BadMessage, RunMessage
from sandpool.warm.run_message import run_args, run_environ


def message(run: dict[str, object], config: tuple[str, ...] = ()) -> RunMessage:
    return RunMessage(run, config, "/srv", {"SANDPOOL_CONFIG": "rel.yaml", "SANDPOOL_X": "1"})


def test_a_full_request_becomes_the_run_args_click_would_give() -> None:
    run = {"pool": "p", "image": "builtin:busybox", "cpu": 2, "memory": "64Mi", "pids": 10,
           "timeout": 1.5, "env": ["A=B"], "workdir": "/tmp", "gpus": 0, "disk": "4Mi",
           "network": "allow", "allow": ["10.0.0.0/8"], "json": True,
           "command": ["pwd"]}  # fmt: skip
    args = run_args(message(run, ("a.yaml", "/abs/b.yaml")))
    flags = ["--pool", "p", "--image", "builtin:busybox", "--cpu", "2", "--memory", "64Mi",
             "--pids", "10", "--timeout", "1.5", "--env", "A=B", "--workdir", "/tmp",
             "--gpu", "0", "--disk", "4Mi", "--network", "allow", "--allow", "10.0.0.0/8",
             "--json", "-c", "/srv/a.yaml", "-c", "/abs/b.yaml", "--", "pwd"]  # fmt: skip
    assert args == parse_run_args(flags)
    assert run_args(message({})) == parse_run_args([])
    assert run_environ(message({}))["SANDPOOL_CONFIG"] == "/srv/rel.yaml"


@pytest.mark.parametrize(
    ("run", "flags"),
    [({"cpu": float("nan")}, ["--cpu", "nan"]), ({"cpu": 5000}, ["--cpu", "5000"]),
     ({"memory": "lots"}, ["--memory", "lots"]), ({"disk": "10k"}, ["--disk", "10k"]),
     ({"pids": 0}, ["--pids", "0"]), ({"gpus": 2000}, ["--gpu", "2000"]),
     ({"timeout": 0}, ["--timeout", "0"]), ({"env": ["x"]}, ["--env", "x"]),
     ({"network": "bad"}, ["--network", "bad"]), ({"allow": ["::bad"]}, ["--allow", "::bad"])],
)  # fmt: skip
def test_a_bad_value_gets_clicks_words(run: dict[str, object], flags: list[str]) -> None:
    with pytest.raises(RunUsageError) as clicks:
        parse_run_args(flags)
    with pytest.raises(BadMessage) as ours:
        run_args(message(run))
    assert str(ours.value) == clicks.value.format_message().rstrip(".")


@pytest.mark.parametrize(
    ("run", "needle"),
    [({"argv": ["x"]}, "run has unknown fields ['argv']"),
     ({"pool": 7}, "--pool must be a string, not int"),
     ({"pids": 1.5}, "Invalid value for '--pids': expected a whole number"),
     ({"cpu": True}, "Invalid value for '--cpu'"), ({"cpu": "2"}, "Invalid value for '--cpu'"),
     ({"json": 1}, "json must be true or false"),
     ({"command": "ls"}, "command must be a list of strings"),
     ({"command": ["a\0b"]}, "entry 0 of command contains a NUL byte"),
     ({"env": ["A=x\0y"]}, "entry 0 of --env contains a NUL byte"),
     ({"command": [""] * 70000}, "more than 65536")],
)  # fmt: skip
def test_a_bad_field_is_one_line_naming_it(run: dict[str, object], needle: str) -> None:
    with pytest.raises(BadMessage) as caught:
        run_args(message(run))
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_the_servers_never_import_the_cli() -> None:
    """`warm.server` parsed the client's argv with the CLI's own click command: the one
    import from the server back up into `sandpool.cli`."""
    code = ("import sys, sandpool.warm.server, sandpool.service.server; "
            "print(sorted(m for m in sys.modules if m.startswith('sandpool.cli')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "[]"
