"""``parse_size``: the memory sizes users write, in bytes."""

from __future__ import annotations

import pytest

from sandpool.worker.cgroups import parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512Mi", 512 << 20), ("1G", 1 << 30), ("1Gi", 1 << 30), ("300m", 300 << 20),
     ("64MB", 64 << 20), ("2k", 2048), ("1048576", 1048576), ("1.5Gi", 3 << 29),
     (" 256Mi ", 256 << 20), ("1T", 1 << 40)],
)  # fmt: skip
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "12x", "Mi", "1..5G"])
def test_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size such as 512Mi"):
        parse_size(text)


@pytest.mark.parametrize("text", ["0", "-1M", "0Mi"])
def test_size_must_be_positive(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)
