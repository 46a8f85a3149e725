"""Quantities and numeric flags: what the configuration accepts, the run path can use, and
every numeric flag refuses NaN, infinities and out-of-range values (issue 13 item 4)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sandpool.cli.main import cli
from sandpool.cli.run_cmd import RunUsageError, parse_run_args
from sandpool.config.quantities import parse_size


@pytest.mark.parametrize(
    "text", ["", "abc", "-5Mi", "0", "0.0001k", "inf", "nan", "1e3", "1025Ti", "1Pi", "5 Mi",
             "1" * 70, "\uff11\uff12"],
)  # fmt: skip
def test_sizes_that_are_not_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--cpu", "nan"), ("--cpu", "inf"), ("--cpu", "1e999"), ("--cpu", "0.001"),
     ("--cpu", "2000"), ("--timeout", "nan"), ("--timeout", "-inf"), ("--timeout", "0"),
     ("--timeout", "1e12"), ("--memory", "inf"), ("--memory", "NaN"), ("--pids", "0"),
     ("--pids", "9" * 40), ("--pids", "1.5"), ("--gpu", "-1"), ("--gpu", "1e3")],
)  # fmt: skip
def test_run_flags_refuse_numbers_that_are_not_numbers(flag: str, value: str) -> None:
    with pytest.raises(RunUsageError) as info:
        parse_run_args([flag, value, "--", "true"])
    assert info.value.exit_code == 125
    assert f"'{flag}'" in info.value.format_message()


def test_run_flags_keep_their_ordinary_values() -> None:
    args = parse_run_args(["--cpu", "0.5", "--timeout", "2.5", "--memory", "64Mi", "--pids",
                           "64", "--gpu", "1", "--", "true"])  # fmt: skip
    assert (args.cpu, args.timeout, args.memory, args.pids, args.gpus) == (0.5, 2.5, "64Mi", 64, 1)


@pytest.mark.parametrize(
    "argv",
    [["doctor", "--smoke-timeout", "nan"], ["doctor", "--smoke-timeout", "inf"],
     ["images", "pull", "--timeout", "nan", "builtin:busybox"],
     ["worker", "--pool", "p", "--health-port", "70000"]],
)  # fmt: skip
def test_other_numeric_flags_refuse_them_too(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2 and "Invalid value for '--" in result.output
    assert "Traceback" not in result.output
