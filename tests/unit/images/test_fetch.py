"""skopeo command lines and the translation of its failures into errors naming the reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.errors import ImageError, ImageNotFound, InvalidImage
from sandpool.images import parse_reference
from sandpool.images.fetch import classify_failure, skopeo_copy_argv
from sandpool.images.tools import ToolFailed, run_tool


def _fatal(msg: str) -> str:
    return f'time="2026-01-01T00:00:00Z" level=fatal msg="{msg}"\n'


@pytest.mark.parametrize(
    ("stderr", "error", "fragment"),
    [
        ("open /x.tar: no such file or directory", ImageNotFound, "does not exist"),
        ('untarring file \\"/var/tmp/oci1\\": unexpected EOF', InvalidImage, "not an OCI archive"),
        ("loading tar component manifest.json: unexpected EOF", InvalidImage, "docker archive"),
        ('no descriptor found for reference \\"v9\\"', ImageNotFound, "no such tag"),
        ("reading manifest v9 in r/x: manifest unknown", ImageNotFound, "not in the registry"),
        ("dial tcp 127.0.0.1:1: connect: connection refused", ImageNotFound, "refused"),
        ("context deadline exceeded", ImageNotFound, "did not answer"),
        (
            "choosing image instance: no image found in manifest list for architecture amd64",
            InvalidImage,
            "platform",
        ),
        ("something nobody expected", InvalidImage, "not a usable image"),
    ],
)
def test_failures_are_classified(stderr: str, error: type[ImageError], fragment: str) -> None:
    ref = parse_reference("oci-archive:/x.tar")
    result = classify_failure(ref, ToolFailed(["skopeo"], 1, _fatal(stderr)))
    assert type(result) is error
    assert "'oci-archive:/x.tar'" in str(result)
    assert fragment in str(result)


def test_timeout_is_not_found() -> None:
    ref = parse_reference("docker://quay.io/a:b")
    result = classify_failure(ref, ToolFailed(["skopeo"], None, "x", timed_out=True))
    assert isinstance(result, ImageNotFound)
    assert "no answer in time" in str(result)


def test_loopback_registry_is_pulled_without_tls() -> None:
    ref = parse_reference("127.0.0.1:5000/a:b")
    argv = skopeo_copy_argv(ref, ref.key, Path("/l"), "t", timeout=30)
    assert "--src-tls-verify=false" in argv
    assert "--command-timeout=30s" in argv
    assert argv[-2:] == ["docker://127.0.0.1:5000/a:b", "oci:/l:t"]


def test_remote_registry_keeps_tls() -> None:
    ref = parse_reference("quay.io/a:b")
    assert "--src-tls-verify=true" in skopeo_copy_argv(ref, ref.key, Path("/l"), "t", timeout=9)


def test_runner_keeps_stderr_and_status() -> None:
    with pytest.raises(ToolFailed) as info:
        run_tool(["sh", "-c", "echo out; echo oops >&2; exit 3"], timeout=10)
    assert (info.value.status, info.value.detail) == (3, "oops")


def test_runner_reports_a_missing_tool() -> None:
    with pytest.raises(ToolFailed, match="not found"):
        run_tool(["/nonexistent/skopeo", "copy"], timeout=10)
